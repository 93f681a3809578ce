import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { RequestLog, resetIfDown, sendWithFault } from './request-log.ts'

export interface OriginObject {
  bytes: Buffer
  contentType?: string | undefined
  etag?: string | undefined
  lastModified?: Date | undefined
  /** `false`: ignores Range (answers 200) and sends no Accept-Ranges. @default true */
  ranges?: boolean | undefined
  /** Send the body chunked, without Content-Length. @default false */
  chunked?: boolean | undefined
  /** `false`: answers HEAD with 405 (some origins and signed-URL services refuse HEAD). @default true */
  head?: boolean | undefined
  /** Extra response headers (to prove that they do not reach the client). */
  headers?: OutgoingHttpHeaders | undefined
  /**
   * `false`: ignores If-Match and If-None-Match (as many dynamic origins do), so that a version put()
   * between a HEAD and a GET is sent under its own headers instead of a 412. @default true
   */
  conditionals?: boolean | undefined
}

export interface Origin {
  url: string
  log: RequestLog
  /** Serves `bytes` at `path` (a raw, already encoded URL path). */
  put (path: string, object: Partial<Omit<OriginObject, 'bytes'>> & { bytes: string | Buffer }): void
  /** Answers `from` with `status` and `Location: to`. */
  redirect (from: string, to: string, status?: number): void
  /** Answers `path` with `status` and a short text body. */
  fail (path: string, status: number): void
  /**
   * Called with every request before it is answered (after it is logged): a test may put() another
   * version there, e.g. on the first GET after a HEAD. Cleared by the test that sets it.
   */
  onRequest: ((req: IncomingMessage) => void) | undefined
  stop (): Promise<void>
}

/**
 * A local HTTP origin for HttpFile: GET and HEAD, a single Range (206 / 416), If-Match (412),
 * If-None-Match (304) — unless an object ignores them —, a hook to change objects between requests, redirects, fixed error statuses, and the faults of RequestLog. Every request
 * is logged with its Range header and whether its response was cut short.
 */
export async function startOrigin (): Promise<Origin> {
  const objects = new Map<string, OriginObject>()
  const redirects = new Map<string, { to: string, status: number }>()
  const failures = new Map<string, number>()
  const log = new RequestLog()

  const server = createServer((req, res) => {
    log.record(req, res)
    if (resetIfDown(req, log.fault)) return
    self.onRequest?.(req)
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const redirect = redirects.get(path)
    if (redirect !== undefined) {
      res.writeHead(redirect.status, { Location: redirect.to, 'Content-Length': 0 }).end()
      return
    }
    const failure = failures.get(path)
    if (failure !== undefined) {
      res.writeHead(failure, { 'Content-Type': 'text/plain', 'Set-Cookie': 'upstream=secret' }).end(`upstream ${failure}\n`)
      return
    }
    const object = objects.get(path)
    if (object === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 10 }).end('not found\n')
      return
    }
    answer(req, res, object, log)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const self: Origin = {
    url: `http://127.0.0.1:${port}`,
    log,
    put (path, object) {
      const bytes = Buffer.from(object.bytes)
      objects.set(path, {
        etag: `"${createHash('sha1').update(bytes).digest('hex').slice(0, 16)}"`,
        lastModified: new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000),
        contentType: 'application/octet-stream',
        ...object,
        bytes
      })
    },
    redirect (from, to, status = 302) { redirects.set(from, { to, status }) },
    fail (path, status) { failures.set(path, status) },
    onRequest: undefined,
    async stop () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  return self
}

function answer (req: IncomingMessage, res: ServerResponse, object: OriginObject, log: RequestLog): void {
  const { bytes, etag, lastModified, contentType, ranges = true, chunked = false, head = true, conditionals = true } = object
  if (!head && req.method === 'HEAD') {
    res.writeHead(405, { Allow: 'GET', 'Content-Length': 0 }).end()
    return
  }
  const size = bytes.length
  const validators: OutgoingHttpHeaders = {}
  if (etag !== undefined) validators.ETag = etag
  if (lastModified !== undefined) validators['Last-Modified'] = lastModified.toUTCString()
  const ifMatch = conditionals ? req.headers['if-match'] : undefined
  if (ifMatch !== undefined && ifMatch !== '*' && (etag === undefined || etag.startsWith('W/') || !ifMatch.split(',').map((s) => s.trim()).includes(etag))) {
    res.writeHead(412, { 'Content-Length': 0 }).end()
    return
  }
  const ifNoneMatch = conditionals ? req.headers['if-none-match'] : undefined
  if (ifNoneMatch !== undefined && etag !== undefined && ifNoneMatch.split(',').map((s) => s.trim().replace(/^W\//, '')).includes(etag.replace(/^W\//, ''))) {
    res.writeHead(304, validators).end()
    return
  }
  const headers: OutgoingHttpHeaders = { ...object.headers, ...validators }
  if (contentType !== undefined) headers['Content-Type'] = contentType
  if (ranges) headers['Accept-Ranges'] = 'bytes'
  let status = 200
  let body = bytes
  const match = ranges && req.method === 'GET' ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null
  if (match !== null) {
    const start = Number(match[1])
    const end = Math.min(match[2] === '' || match[2] === undefined ? size - 1 : Number(match[2]), size - 1)
    if (start >= size || end < start) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': 0 }).end()
      return
    }
    status = 206
    body = bytes.subarray(start, end + 1)
    headers['Content-Range'] = `bytes ${start}-${end}/${size}`
  }
  if (!chunked) headers['Content-Length'] = body.length
  res.writeHead(status, headers)
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  sendWithFault(res, body, log.fault)
}
