import { createHash } from 'node:crypto'
import type { Agent, IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { File, Storage, StorageOptions } from '@google-cloud/storage'
import type { DriverContract } from 'flydrive/types'
import { DownloadError } from '../../source/errors.ts'
import type { ByteRange, FileStat, OpenOptions } from '../../source/types.ts'
import { expireAfterPoll, guardStream } from '../../source/guarded-stream.ts'
import type { GuardOptions } from '../../source/guarded-stream.ts'
import { parseContentRange } from '../../source/range.ts'
import type { Backend, BackendOptions, StorageObject } from './backend.ts'
import { byteCount, statFromMetaData } from './backend.ts'
import { encodeKey } from './storage-key.ts'
import { storageError } from './storage-error.ts'
import { abortError, gone, within } from './waits.ts'
import { debug } from '../../source/debug.ts'
import { upstreamRequest } from '../http/upstream-request.ts'

export type GcsDriverLike = DriverContract & {
  options: { bucket: string, storage?: Storage, visibility?: string } & StorageOptions
}

/** The object generation a stat() saw, on the FileStat it returned (kept by StorageFile's spread). */
const generationOf = Symbol('gcs generation')
type GcsStat = FileStat & { [generationOf]?: string }

/**
 * GCS disks: metadata through the SDK's `getMetadata()`, as flydrive's getMetaData() makes it (the
 * opaque etag, quoted) plus the object's generation; bytes through a media read of that generation
 * sent as the SDK would, with its authorization, but over a request of our own (readMedia(): the
 * SDK's read stream resets every other GCS transfer of the process when one is given up). The body
 * is guarded by an idle timeout and an exact length, and a whole read is checked against the hash
 * GCS sends with it before its last byte goes on. open() waits for the response status, so a
 * missing object is still a 404 before any header.
 *
 * The SDK gives no handle on a metadata request before its response, and takes no abort signal.
 * Only its per-request `timeout` (node-fetch's, 60 s by default) aborts the request itself. So a
 * metadata request carries a `timeout` of idleTimeout plus a second (boundedFile()): a storage that
 * never answers has its request closed soon after we give up on it, and a request left behind by a
 * client that went away lasts no longer. Our wait for it ends at once on the client's abort. A
 * media read is ours: the client's abort, or idleTimeout with no response, closes it at once.
 *
 * Pinning the generation keeps an object replaced since stat() from being sent under the old
 * validators. A media read asks for the generation stat() saw: without object versioning a replaced
 * generation no longer exists (404), and that 404 means E_CHANGED (serve() plans again: the new
 * object, or a 404 if it was deleted). With versioning the old generation is read, which its
 * validators describe.
 */
export function gcsBackend (driver: GcsDriverLike): Backend {
  const { bucket } = driver.options
  let storage: Promise<Storage> | undefined
  const getStorage = async (): Promise<Storage> => {
    storage ??= driver.options.storage !== undefined
      ? Promise.resolve(driver.options.storage)
      : import('@google-cloud/storage').then(({ Storage }) => new Storage(driver.options))
    return await storage
  }
  const base = publicBase(driver.options.storage?.apiEndpoint ?? driver.options.apiEndpoint)
  // The bucket as the SDK spells it (it takes `gs://media` and `media/` for `media`), which reads
  // use: the public URL names the same bucket (flydrive's getUrl() does the same).
  const bucketName = bucket.replace(/^gs:\/\//, '').replace(/\/+$/, '')
  return {
    kind: 'gcs',
    object (key: string, options: BackendOptions): StorageObject {
      const what = `gcs ${bucket}/${key}`
      return {
        // A private disk's objects are not readable unsigned: no URL for a proxy to fetch.
        url: driver.options.visibility === 'private' ? undefined : `${base}/${encodeKey(bucketName)}/${encodeKey(key)}`,
        async stat (signal?: AbortSignal): Promise<FileStat> {
          // A client gone before the call (over HTTP/2, reset while the route decided): no request,
          // which the SDK would keep open until it timed out.
          if (gone(signal)) throw abortError(signal as AbortSignal)
          try {
            const file = boundedFile((await getStorage()).bucket(bucket).file(key), options.idleTimeout)
            const [meta] = await within(file.getMetadata(), options.idleTimeout, signal)
            const stat: GcsStat = statFromMetaData({ contentType: meta.contentType, contentLength: byteCount(meta.size), etag: meta.etag, lastModified: new Date(meta.updated ?? ''), contentEncoding: meta.contentEncoding })
            const generation = String(meta.generation ?? '')
            // The SDK turns it into a number: one past 2^53 would name another generation.
            if (/^\d+$/.test(generation) && Number.isSafeInteger(Number(generation))) stat[generationOf] = generation
            return stat
          } catch (error) {
            throw storageError(error, what)
          }
        },
        async open (stat: FileStat, range: ByteRange | undefined, openOptions?: OpenOptions): Promise<Readable> {
          const signal = openOptions?.signal
          if (gone(signal)) throw abortError(signal as AbortSignal)
          const generation = (stat as GcsStat)[generationOf]
          const client = await getStorage()
          const retry = retryPolicy(client.retryOptions)
          // The client's own `timeout`, when shorter, bounds the wait for a response as it bounds the SDK's.
          const wait = typeof client.timeout === 'number' && client.timeout > 0 && client.timeout < options.idleTimeout ? client.timeout : options.idleTimeout
          for (let attempt = 0; ; attempt++) {
            let response: IncomingMessage
            try {
              // One deadline for the attempt, as the SDK's one request timeout was: the authorization,
              // the response's head, and an error response's body all within it.
              const deadline = Date.now() + wait
              response = await readMedia(client, { bucket, key, generation, range, deadline, signal })
              await accepted(response, range === undefined ? undefined : { ...range, size: stat.size }, deadline, what)
            } catch (error) {
              if (signal?.aborted === true) throw abortError(signal)
              const delay = retry(error, attempt)
              if (delay !== undefined) {
                debug('%s: %s, read again in %d ms (retry %d)', what, (error as Error | null)?.message ?? String(error), delay, attempt + 1)
                await pause(delay, signal)
                continue
              }
              const failure = storageError(error, what)
              if (generation !== undefined && failure instanceof DownloadError && failure.code === 'E_NOT_FOUND') {
                throw new DownloadError('E_CHANGED', `${what}: generation ${generation} is gone (replaced or deleted since its metadata was read)`, { cause: error })
              }
              throw failure
            }
            const expected = range === undefined ? stat.size : range.end - range.start + 1
            // The stored bytes, checked against the hash GCS gives for a whole read (a part has none).
            const digest = range === undefined ? hashCheck(response.headers, client) : undefined
            return guardStream(response, { expected, idleTimeout: options.idleTimeout, what, digest })
          }
        }
      }
    }
  }
}

/**
 * Added to idleTimeout for the SDK's own request timeout: our wait gives its verdict after one more
 * poll for I/O (within()), node-fetch's timer does not, so a response that arrived while the event
 * loop was held up past idleTimeout must not be cut by the SDK first.
 */
const SDK_TIMEOUT_GRACE = 1000

/**
 * `file` with every request it sends carrying a node-fetch `timeout` of at most idleTimeout + grace:
 * the only way to have the SDK abort a request that has no response yet (the timer runs from the
 * socket to the end of a metadata response's JSON body). A shorter `timeout` of the Storage client
 * is kept.
 */
function boundedFile (file: File, idleTimeout: number): File {
  const timeout = idleTimeout + SDK_TIMEOUT_GRACE
  const request = (reqOpts: { timeout?: number }): { timeout?: number } => {
    const own = reqOpts.timeout
    reqOpts.timeout = typeof own === 'number' && own > 0 && own < timeout ? own : timeout
    return reqOpts
  }
  file.interceptors.push({ request: request as unknown as NonNullable<File['interceptors'][number]['request']> })
  return file
}

type RetryOptions = Storage['retryOptions']

/**
 * The Storage client's own retry settings, applied by open() to its media reads as the SDK applies
 * them to its own. A failed read is tried again while `autoRetry` is on, fewer than `maxRetries`
 * retries were made and the client's `retryableErrorFn` accepts the error — the API's error (its
 * `code` the status) or the connection's (ECONNRESET …); by default: 408, 429, 500, 502, 503, 504
 * and a connection reset before the response —, after the SDK's delay: retryDelayMultiplier^retry
 * seconds plus up to one second of jitter, at most `maxRetryDelay`, and never past `totalTimeout`
 * from the first read. Returns that delay in ms, or undefined: no retry. A timeout (no response
 * within idleTimeout) and a wrong answer (another part) are not retried.
 */
function retryPolicy (options: RetryOptions | undefined): (error: unknown, attempt: number) => number | undefined {
  const started = Date.now()
  return (error, attempt) => {
    if (options === undefined || options.autoRetry === false) return undefined
    if (attempt >= (options.maxRetries ?? 3)) return undefined
    // upstreamRequest() reports a failed connection as E_UPSTREAM, caused by the system error.
    const cause = error instanceof DownloadError ? (error.code === 'E_UPSTREAM' ? error.cause : undefined) : error
    if (cause === undefined || options.retryableErrorFn?.(cause as Parameters<NonNullable<RetryOptions['retryableErrorFn']>>[0]) !== true) return undefined
    const delay = Math.pow(options.retryDelayMultiplier ?? 2, attempt) * 1000 + Math.floor(Math.random() * 1000)
    const left = (options.totalTimeout ?? 600) * 1000 - (Date.now() - started)
    const wait = Math.min(delay, (options.maxRetryDelay ?? 64) * 1000, left)
    return wait > 0 ? wait : undefined
  }
}

/** Resolves after `ms`, or rejects at once with the client's abort. */
async function pause (ms: number, signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortError(signal))
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(abortError(signal as AbortSignal))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** The ms left until `deadline`, at least 1. */
function left (deadline: number): number {
  return Math.max(1, deadline - Date.now())
}

/** A media read: a GET of `?alt=media` on the object (one generation of it), all of it or a part. */
interface MediaRead {
  bucket: string
  key: string
  generation: string | undefined
  range: ByteRange | undefined
  /** When (ms since the epoch) the wait for the authorization headers and then the response's head ends. */
  deadline: number
  signal: AbortSignal | undefined
}

type SdkRequest = Parameters<Storage['makeAuthenticatedRequest']>[0] & { uri: string, qs: Record<string, unknown>, headers: Record<string, string> }

/**
 * Sends a media read to the URL the SDK's `createReadStream()` would, with the headers that decide
 * the answer (Range, Accept-Encoding, Cache-Control), the Storage client's request interceptors,
 * its authorization (none on a custom endpoint unless `useAuthWithCustomEndpoint`) and its
 * `userAgent` — but over a request of our own (upstreamRequest(): node:http(s), Node's global agent
 * or the environment's proxy). Resolves with the response, whatever its status.
 *
 * Not the SDK's stream: @google-cloud/storage 7 destroys the agent of a read whose stream fails or
 * is destroyed (a workaround for node-fetch 2 keeping the socket open), and that agent is
 * teeny-request's keep-alive pool, which every request of the process shares. One client leaving a
 * download reset every other GCS transfer in progress. A request of our own is closed alone, at once,
 * by the client's abort or by destroying its response; its socket goes back to the pool when its body
 * was read to the end. It also needs no guard against the SDK's stream hanging when the connection
 * drops (guardStream()'s idle timeout remains), nor against the SDK piping a late response into a
 * stream already given up (an uncaught ERR_STREAM_UNABLE_TO_PIPE).
 */
async function readMedia (client: Storage, read: MediaRead): Promise<IncomingMessage> {
  const headers: Record<string, string> = { 'Accept-Encoding': 'gzip', 'Cache-Control': 'no-store' }
  if (read.range !== undefined) headers.Range = `bytes=${read.range.start}-${read.range.end}`
  if (typeof client.providedUserAgent === 'string') headers['User-Agent'] = client.providedUserAgent
  // `bucket(name).name`: the SDK's spelling of the bucket (a `gs://` prefix and trailing slashes removed).
  let request: SdkRequest = {
    uri: `${client.baseUrl.replace(/\/+$/, '')}/b/${client.bucket(read.bucket).name}/o/${encodeURIComponent(read.key)}`,
    qs: read.generation === undefined ? { alt: 'media' } : { alt: 'media', generation: read.generation },
    headers
  }
  for (const intercept of client.getRequestInterceptors()) request = (intercept as (options: SdkRequest) => SdkRequest)(request)
  const authorized = await within(authorize(client, request), left(read.deadline), read.signal)
  const query = new URLSearchParams(Object.entries(authorized.qs ?? {}).map(([name, value]) => [name, String(value)])).toString()
  const url = query === '' ? authorized.uri : `${authorized.uri}?${query}`
  const { response } = await upstreamRequest(url, {
    method: 'GET',
    headers: authorized.headers ?? {},
    agent: proxyAgent(url),
    timeout: left(read.deadline),
    maxRedirects: 0,
    signal: read.signal
  })
  return response
}

let proxyAgents: { http: Agent, https: Agent } | undefined | false

/**
 * The agent that sends through the proxy the environment names, as teeny-request sends the SDK's
 * own requests: a deployment whose only way out is a proxy reaches GCS for media reads as for
 * metadata. teeny-request takes `HTTP_PROXY`, `http_proxy`, `HTTPS_PROXY`, `https_proxy`, the
 * first one set, for every URL (https ones too); so does this, through Node's own proxy support
 * (`proxyEnv`, Node ≥ 24.5), which also reads `NO_PROXY` (its matching, not teeny-request's).
 * Undefined (Node's global agents) when none is set. Read once.
 */
function proxyAgent (url: string): Agent | undefined {
  if (proxyAgents === undefined) {
    const env = process.env
    const proxy = [env.HTTP_PROXY, env.http_proxy, env.HTTPS_PROXY, env.https_proxy].find((value) => value !== undefined && value !== '')
    const noProxy = env.NO_PROXY ?? env.no_proxy
    const proxyEnv = { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, ...(noProxy === undefined ? {} : { NO_PROXY: noProxy }) }
    proxyAgents = proxy !== undefined && {
      http: new (process.getBuiltinModule('node:http').Agent)({ keepAlive: true, proxyEnv }),
      https: new (process.getBuiltinModule('node:https').Agent)({ keepAlive: true, proxyEnv })
    }
  }
  if (proxyAgents === false) return undefined
  return url.startsWith('https:') ? proxyAgents.https : proxyAgents.http
}

/** `request` with the client's authorization headers, without sending it. */
async function authorize (client: Storage, request: SdkRequest): Promise<SdkRequest> {
  return await new Promise<SdkRequest>((resolve, reject) => {
    client.makeAuthenticatedRequest(request, {
      onAuthenticated: (error, authorized) => {
        if (error !== null && error !== undefined) reject(error)
        else resolve((authorized ?? request) as SdkRequest)
      }
    })
  })
}

/** Bytes of an error response's body kept for its message; a longer body is dropped with its connection. */
const errorBodyBytes = 64 * 1024

/**
 * Resolves when `response` is the read asked for: 200 for the whole object; for a part, 206 with
 * exactly that part (as S3's is: an endpoint that ignores Range sends the object from byte 0, which
 * the length guard would only stop after those wrong bytes went out under the part's
 * Content-Range). An error status rejects with the API's error, as the SDK would give it: its
 * `code` the status (which storageError() and the client's `retryableErrorFn` read), its message
 * the JSON error's; the body is read (up to 64 KiB, until `deadline`) so that the connection can be
 * used again.
 */
async function accepted (response: IncomingMessage, part: (ByteRange & { size: number | undefined }) | undefined, deadline: number, what: string): Promise<void> {
  const status = response.statusCode ?? 0
  if (status < 200 || status >= 300) {
    const body = await errorBody(response, left(deadline))
    let details: { message?: unknown, errors?: unknown } | undefined
    try {
      details = (JSON.parse(body) as { error?: { message?: unknown, errors?: unknown } }).error
    } catch {}
    const message = typeof details?.message === 'string' ? details.message : (response.statusMessage ?? `status ${status}`)
    throw Object.assign(new Error(message), { code: status, errors: Array.isArray(details?.errors) ? details.errors : [] })
  }
  if (part === undefined) {
    if (status === 200) return
    response.destroy()
    throw new DownloadError('E_UPSTREAM', `${what}: asked for the whole object, got ${status}`)
  }
  const header = response.headers['content-range']
  const sent = status === 206 ? parseContentRange(header) : undefined
  if (sent === undefined || sent.start !== part.start || sent.end !== part.end || (part.size !== undefined && sent.size !== part.size)) {
    response.destroy()
    throw new DownloadError('E_UPSTREAM', `${what}: asked for bytes ${part.start}-${part.end}, got ${status} ${header ?? '(no Content-Range)'}`)
  }
}

/** The start of an error response's body (see accepted()); never rejects. */
async function errorBody (response: IncomingMessage, timeout: number): Promise<string> {
  return await new Promise<string>((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    const finish = (): void => {
      cancel()
      resolve(Buffer.concat(chunks).toString('utf8'))
    }
    const cancel = expireAfterPoll(timeout, () => {
      response.destroy()
      finish()
    })
    response.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= errorBodyBytes) {
        chunks.push(chunk)
        return
      }
      response.destroy()
      finish()
    })
    response.once('end', finish)
    response.once('close', finish)
    response.once('error', finish)
  })
}

/**
 * The check of a whole read against the hash GCS sent with it (`x-goog-hash`, possibly one header
 * per hash, which Node joins): MD5 when given (every object but composite ones; node:crypto, about
 * five times as fast here as the SDK's CRC32C in JavaScript), else CRC32C with the client's
 * `crc32cGenerator`. Like the SDK, only when the bytes come as stored: `identity`, or gzip and sent
 * gzip-coded. Unlike the SDK, whose check failed after the last byte had gone on, the body's last
 * byte is held until the check passes (guardStream()): a corrupt body never reaches the client whole.
 */
function hashCheck (headers: IncomingHttpHeaders, client: Storage): GuardOptions['digest'] {
  const stored = headers['x-goog-stored-content-encoding']
  if (!(stored === 'identity' || (stored === 'gzip' && headers['content-encoding'] === 'gzip'))) return undefined
  const hashes = new Map<string, string>()
  for (const pair of String(headers['x-goog-hash'] ?? '').split(',')) {
    const at = pair.indexOf('=')
    if (at > 0) hashes.set(pair.slice(0, at).trim().toLowerCase(), pair.slice(at + 1).trim())
  }
  const md5 = hashes.get('md5')
  if (md5 !== undefined && md5 !== '') {
    const hash = createHash('md5')
    return {
      update: (bytes) => { hash.update(bytes) },
      mismatch: () => {
        const got = hash.digest('base64')
        return got === md5 ? undefined : `the bytes read have the MD5 ${got}, GCS gave ${md5}`
      }
    }
  }
  const crc32c = hashes.get('crc32c')
  if (crc32c !== undefined && crc32c !== '') {
    const validator = client.crc32cGenerator()
    return {
      update: (bytes) => { validator.update(bytes) },
      mismatch: () => validator.validate(crc32c) ? undefined : `the bytes read have the CRC32C ${validator.toString()}, GCS gave ${crc32c}`
    }
  }
  return undefined
}

/** What the SDK's `file.publicUrl()` uses: the API endpoint (https://storage.googleapis.com by default). */
function publicBase (endpoint: string | undefined): string {
  if (typeof endpoint === 'string' && endpoint !== '') {
    const withScheme = /^https?:\/\//.test(endpoint) ? endpoint : `https://${endpoint}`
    return withScheme.replace(/\/+$/, '')
  }
  return 'https://storage.googleapis.com'
}
