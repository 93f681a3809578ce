import type { Agent, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { DownloadError, isExhaustion } from '../../source/errors.ts'
import { debug, loggableUrl, redactUrl } from '../../source/debug.ts'
import { expireAfterPoll } from '../../source/guarded-stream.ts'

// node:http and node:https through getBuiltinModule, not ES imports: see source/file-stream.ts
// (node:http's ES wrapper loads undici); node:https (and TLS) is loaded by the first https URL.
// request() is looked up on each call, so that a tracer wrapping it after this module loaded sees it.
const http = process.getBuiltinModule('node:http')

export interface UpstreamRequest {
  method: 'GET' | 'HEAD'
  headers: OutgoingHttpHeaders
  /**
   * Names (lower case) of the headers meant for the first origin only — those the app passed —,
   * dropped with Authorization, Cookie and Proxy-Authorization when a redirect leaves that origin.
   */
  originBound?: ReadonlySet<string> | undefined
  /** Longest wait (ms) for the response headers, connection and redirects included. */
  timeout: number
  /** The agent to send through (default: Node's global agent of the URL's protocol). */
  agent?: Agent | undefined
  maxRedirects: number
  signal?: AbortSignal | undefined
}

export interface UpstreamResponse {
  response: IncomingMessage
  /** The URL that answered, after redirects. */
  url: string
  /** The request headers sent to it (the origin-bound ones dropped if a redirect changed the origin). */
  headers: OutgoingHttpHeaders
}

const redirectStatuses = new Set([301, 302, 303, 307, 308])
/**
 * Credentials meant for the first origin are not sent to another one (as fetch does for
 * Authorization) — these, and every header the caller names as origin-bound (an app's X-Api-Key,
 * Private-Token… cannot be told from harmless ones by their names).
 */
const credentialHeaders = new Set(['authorization', 'cookie', 'proxy-authorization'])

/**
 * One upstream request with node:http(s), following up to `maxRedirects` redirects. node:http rather
 * than fetch: the body arrives as raw bytes (fetch transparently decodes gzip, after which the
 * upstream Content-Length no longer describes them), a truncated body is an error on the stream, and
 * the socket is destroyed at once on abort (koa#1834). Rejects with a DownloadError for network
 * failures (E_UPSTREAM) and timeouts (E_TIMEOUT); any status resolves.
 */
export async function upstreamRequest (url: string, options: UpstreamRequest): Promise<UpstreamResponse> {
  let current = new URL(url)
  let headers = options.headers
  // One wait for the whole request, redirects included: a chain of slow hops is not a longer wait.
  const deadline = Date.now() + options.timeout
  for (let hop = 0; ; hop++) {
    const response = await once(current, { ...options, headers }, false, deadline)
    const status = response.statusCode ?? 0
    const location = response.headers.location
    if (!redirectStatuses.has(status) || location === undefined) return { response, url: current.href, headers }
    discard(response)
    if (hop >= options.maxRedirects) {
      throw new DownloadError('E_UPSTREAM', `${redactUrl(url)}: more than ${options.maxRedirects} redirects`)
    }
    let next: URL
    try {
      next = new URL(location, current)
    } catch (error) {
      throw new DownloadError('E_UPSTREAM', `${redactUrl(url)}: invalid redirect Location`, { cause: error })
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new DownloadError('E_UPSTREAM', `${redactUrl(url)}: redirect to a ${next.protocol} URL refused`)
    }
    if (next.origin !== current.origin) {
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => {
        const lower = name.toLowerCase()
        return !credentialHeaders.has(lower) && options.originBound?.has(lower) !== true
      }))
    }
    debug('http %s %s: %d → %s', options.method, loggableUrl(current.href), status, loggableUrl(next.href))
    current = next
  }
}

/** How much of a redirect's body is read so that its connection can serve another request: bytes, ms. */
const redirectBodyBytes = 16 * 1024
const redirectBodyMs = 1000

/**
 * A redirect's body is not wanted, only its connection: a short one (the "Found. Redirecting to …"
 * page of most servers) is read to its end so that the agent can reuse the socket, as resume()
 * does. A longer one (by its Content-Length or by what arrives), or one still unfinished after a
 * second, is destroyed with its connection: an endless or stalled body would otherwise keep the app
 * reading it, its socket open, long after the client got its file.
 */
function discard (response: IncomingMessage): void {
  const length = Number(response.headers['content-length'] ?? 0)
  if (!(length <= redirectBodyBytes)) {
    response.destroy()
    return
  }
  let read = 0
  const timer = setTimeout(() => { response.destroy() }, redirectBodyMs)
  timer.unref()
  response.once('close', () => { clearTimeout(timer) })
  response.on('data', (chunk: Buffer) => {
    read += chunk.length
    if (read > redirectBodyBytes) response.destroy()
  })
}

/**
 * One request. Node's agent keeps connections to an origin open between requests; an origin may
 * close one just as a request goes out on it (its idle timeout, without a `Keep-Alive: timeout`
 * hint for the agent to heed: S3, nginx), and the request is lost unanswered — reset, or closed
 * before any response. Such a GET or HEAD is sent once more, on a new connection, as Caddy does
 * and Node's documentation of `request.reusedSocket` advises; any other failure is final.
 */
async function once (url: URL, options: UpstreamRequest, fresh = false, deadline = Date.now() + options.timeout): Promise<IncomingMessage> {
  const request = url.protocol === 'https:' ? process.getBuiltinModule('node:https').request : http.request
  return await new Promise<IncomingMessage>((resolve, reject) => {
    // Sent again: on a new connection — but through a given agent (a proxy's) as before, which may
    // take another socket from its pool (a reset there is the caller's to retry).
    const agent = options.agent ?? (fresh ? false : undefined)
    const req = request(url, { method: options.method, headers: options.headers, ...(options.signal === undefined ? {} : { signal: options.signal }), ...(agent === undefined ? {} : { agent }) })
    // A request sent again has what is left of the first one's wait.
    const cancel = expireAfterPoll(Math.max(1, deadline - Date.now()), () => {
      req.destroy(new DownloadError('E_TIMEOUT', `${redactUrl(url.href)}: no response in ${options.timeout} ms`))
    })
    let answered = false
    req.once('response', (response) => {
      answered = true
      cancel()
      resolve(response)
    })
    req.once('error', (error) => {
      cancel()
      if (error instanceof DownloadError || error.name === 'AbortError') {
        reject(error)
        return
      }
      const code = (error as { code?: string }).code
      if (!answered && !fresh && req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')) {
        debug('http %s %s: %s on a reused connection: sent again on a new one', options.method, loggableUrl(url.href), code)
        once(url, options, true, deadline).then(resolve, reject)
        return
      }
      debug('http %s %s: %s', options.method, loggableUrl(url.href), error.message)
      // Out of descriptors for the socket or the name lookup: this process's state, not the
      // origin's (503, not 502).
      const failure = code === 'ETIMEDOUT' ? 'E_TIMEOUT' : isExhaustion(code) ? 'E_UNAVAILABLE' : 'E_UPSTREAM'
      reject(new DownloadError(failure, `${redactUrl(url.href)}: ${code ?? error.message}`, { cause: error }))
    })
    req.end()
  })
}
