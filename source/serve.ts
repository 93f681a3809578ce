import createHttpError from 'http-errors'
import type { Context, Middleware, Next } from 'koa'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream'
import type { Readable } from 'node:stream'
import { debug } from './debug.ts'
import { Download, markAnswered, markTaken, releaseFile, responseDownload, toDownload } from './download.ts'
import type { DownloadBody } from './download.ts'
import { DownloadError, toHttpError } from './errors.ts'
import { FileStream, lendTo } from './file-stream.ts'
import { END_TIMEOUT, guardStream, isLengthGuarded, settledBeforeSent } from './guarded-stream.ts'
import { firstRead, multipartFromReader, multipartStream, planMultipart } from './multipart.ts'
import { FILE_CHUNK_SIZE, isChunkSize, lendingReaderOf, rangeReaderOf } from './path-file.ts'
import { decoderFor, planResponse } from './plan.ts'
import type { DecodableCoding } from './plan.ts'
import { conditionalHeaders } from './preconditions.ts'
import type { PlanOptions } from './plan.ts'
import { DEFAULT_CACHE_CONTROL, presentationHeaders } from './presentation.ts'
import { statUncached, statWasCached } from './stat-cache.ts'
import type { FileStat, OpenOptions, StatOptions } from './types.ts'

export interface ServeOptions {
  /**
   * Responses up to this many bytes are read into one buffer and written at once, instead of being
   * streamed (for sources that offer `read()`): fewer syscalls and no stream machinery per request.
   * @default 65536
   */
  bufferSize?: number | undefined
  /**
   * Bytes per read when a local file is streamed (passed to `open()` as `chunkSize`; each stream
   * reuses two or three such buffers). 256 KiB moves large files with a quarter of the syscalls of
   * Node's 64 KiB (bench/: 1.5–1.6× the best Node peer at 1 MiB, 2.1–2.3× at 256 MiB); 64 KiB holds
   * less memory while many slow downloads run (bench/: 32 slow clients grew the process by 8 MiB
   * instead of 19–23). 1 KiB to 8 MiB.
   * @default 262144
   */
  chunkSize?: number | undefined
  /** Send ETag and honour If-Match / If-None-Match / If-Range with it. @default true */
  etag?: boolean | undefined
  /** Send Last-Modified and honour the date preconditions. @default true */
  lastModified?: boolean | undefined
  /** Serve Range requests (single and multipart). @default true */
  ranges?: boolean | undefined
  /**
   * Most ranges one multipart response may carry, after overlapping and nearby ranges are merged;
   * more → the whole file (200). @default 32
   */
  maxRanges?: number | undefined
  /**
   * Milliseconds a source of known size (a generated stream with its `size`, a custom wrapper, a
   * part of a multipart response) may take to end once it has sent all its bytes; its last byte is
   * held back until then, so that a source longer than it said never completes the response. One
   * that never ends (a stream never `end()`ed, a cleanup that hangs) is then cut, and the client sees
   * an incomplete transfer instead of waiting one byte short for good. 1 to 2147483647.
   * @default 30000
   */
  endTimeout?: number | undefined
  /**
   * A single range of a local file within `bufferSize` (8 KiB and up) is read into memory that is
   * taken back once the response has written it out, for the next such range, instead of new memory
   * each time (bench/: random 64 KiB ranges, 55–60 MiB less peak RSS and 7–35 % less CPU per
   * response in four A/B runs). Taken back only when nothing but Koa's own respond() read that
   * buffer from the response (every read of `ctx.body`, `ctx.response.body`, Koa's `_body`, or a
   * spread of `ctx.response` is counted: one), to send it as the whole body of a plain HTTP/1
   * response, which finished: a middleware, cache, tee or logger that reads the 206 body, replaces it or sends it
   * itself (`ctx.respond = false`) keeps a buffer of its own. To count, the app's `app.response`
   * gets a `_body` accessor at its first such range (which is not lent). What is taken back (in
   * the turn after the response's 'close': a 'finish' or 'close' listener's read is counted) is
   * moved out of its ArrayBuffer at once, so a reference to it read later than that finds it
   * empty. A middleware that writes `ctx.res` itself must set `ctx.respond = false`, as Koa asks.
   * `false`: a new buffer for every range.
   * @default true
   */
  reuseBuffers?: boolean | undefined
}

const serveOptionNames = new Set(['bufferSize', 'chunkSize', 'etag', 'lastModified', 'ranges', 'maxRanges', 'endTimeout', 'reuseBuffers'])

export interface ResolvedServeOptions {
  bufferSize: number
  chunkSize: number
  endTimeout: number
  reuseBuffers: boolean
  plan: PlanOptions
  /** For a status the route chose itself: the whole file (none for 204/205/304), no validators, ranges or preconditions. */
  chosen: PlanOptions
}

// The plan options of the innermost serve() still on this request's way back (undefined when none
// is): set while its downstream runs, then restored to the outer one's.
const PLAN = Symbol.for('koa-downloads.serve-plan')

// Set on a request whose Download a serve() (or downloads()) took: presignedRedirect() mounted
// outside them tells "it answered before me" from "this request had no download at all".
const ANSWERED = Symbol.for('koa-downloads.serve-answered')

/** True when a serve() (or downloads()) has taken a Download on this request to answer it. */
export function servedDownload (ctx: Context): boolean {
  return (ctx as unknown as Record<symbol, boolean | undefined>)[ANSWERED] === true
}

/** True when a serve() middleware is on this request's way back (sendfile() then leaves the body to it). */
export function isServed (ctx: Context): boolean {
  return servedPlan(ctx) !== undefined
}

/**
 * `next` for a middleware that acts on the Download on the way back and so must run inside serve()
 * (offload(), presignedRedirect()): mounted outside, it would find serve()'s stream where the
 * Download was and do nothing, silently. Said once, as a process warning (`message`, `code`), when
 * a serve() below it did answer a Download: a request that had none (a health check on a route
 * serve() is not mounted for) says nothing of the order.
 */
export function nextInsideServe (message: string, code: string): (ctx: Context, next: Next) => Promise<void> {
  let warned = false
  return async function nextChecked (ctx: Context, next: Next): Promise<void> {
    const outside = !warned && servedPlan(ctx) === undefined
    await next()
    if (outside && !warned && servedDownload(ctx)) {
      warned = true
      process.emitWarning(message, { type: 'KoaDownloadsWarning', code })
    }
  }
}

/**
 * The plan options (`etag`, `lastModified` …) of the innermost serve() on this request's way back:
 * the one that answers what offload() leaves in `ctx.body`. Undefined without serve().
 */
export function servedPlan (ctx: Context): PlanOptions | undefined {
  return (ctx as unknown as Record<symbol, PlanOptions | undefined>)[PLAN]
}

/**
 * The streaming step: after the downstream middleware ran, a Download (or a bare file wrapper) in
 * `ctx.body` is answered with full HTTP semantics — validators, preconditions (304/412), ranges
 * (206 single and multipart, 416), HEAD — opening the source only when bytes are actually sent.
 */
export function serve (options: ServeOptions = {}): Middleware {
  return serveWith(resolveServeOptions(options, 'serve()'))
}

/**
 * serve() with options already checked (downloads() checks them under its own name). `first`:
 * a step run once the downstream has, before this one, with this serve()'s plan options still
 * set (downloads()' offload step).
 */
export function serveWith (resolved: ResolvedServeOptions, first?: (ctx: Context) => Promise<void>): Middleware {
  return async function serveDownload (ctx: Context, next: Next): Promise<void> {
    uncompressedDownloads(ctx)
    // This serve() is on the request's way back while its downstream runs: offload() judges with its
    // plan options, and a sendfile() called by a middleware above every serve() (an SPA fallback,
    // an error page) finds none and streams the file itself.
    const marks = ctx as unknown as Record<symbol, PlanOptions | undefined>
    const outer = marks[PLAN]
    marks[PLAN] = resolved.plan
    try {
      await next()
      if (first !== undefined) await first(ctx)
    } finally {
      marks[PLAN] = outer
    }
    const body = ctx.body
    if (body === null || typeof body !== 'object') return
    const download = responseDownload(ctx)
    if (download !== undefined) await sendDownload(ctx, download, resolved)
  }
}

const COMPRESS = Symbol('koa-downloads.compress')
let lastContext: object | null = null
const contexts = new WeakSet<object>()

/**
 * koa-compress mounted between downloads() and the route (`app.use(downloads()); app.use(compress())`)
 * runs on the way back before serve(), and compressed the Download itself: serve() then found a gzip
 * stream, nothing answered the file, and every GET hung without a status line. `ctx.compress`, the
 * switch koa-compress reads, reads `false` while the body is a download, on the app's context
 * prototype (once per app: no per-request cost); what the app or a middleware assigns is kept and
 * read back for every other body. An accessor someone else put there is left alone.
 */
function uncompressedDownloads (ctx: Context): void {
  const proto = Object.getPrototypeOf(ctx) as object | null
  if (proto === lastContext || proto === null) return
  lastContext = proto
  if (contexts.has(proto)) return
  contexts.add(proto)
  const own = Object.getOwnPropertyDescriptor(proto, 'compress')
  if (own !== undefined && (own.get !== undefined || own.set !== undefined || own.configurable !== true)) return
  const fallback: unknown = own?.value
  Object.defineProperty(proto, 'compress', {
    configurable: true,
    enumerable: false,
    get (this: Context & { [COMPRESS]?: unknown }): unknown {
      if (toDownload(this.body) !== undefined) return false
      return COMPRESS in this ? this[COMPRESS] : fallback
    },
    set (this: Context & { [COMPRESS]?: unknown }, value: unknown) {
      this[COMPRESS] = value
    }
  })
}

export function resolveServeOptions (options: ServeOptions, where: string): ResolvedServeOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`${where}: options must be an object`)
  for (const key of Object.keys(options)) {
    if (!serveOptionNames.has(key)) throw new TypeError(`${where}: unknown option "${key}" (allowed: ${where === 'downloads()' ? 'rules, ' : ''}${[...serveOptionNames].join(', ')})`)
  }
  const { bufferSize = 65536, chunkSize = FILE_CHUNK_SIZE, etag = true, lastModified = true, ranges = true, maxRanges = 32, endTimeout = END_TIMEOUT, reuseBuffers = true } = options
  if (!Number.isSafeInteger(bufferSize) || bufferSize < 0) throw new TypeError(`${where}: bufferSize must be a non-negative integer`)
  if (!isChunkSize(chunkSize)) throw new TypeError(`${where}: chunkSize must be an integer from 1024 to 8388608 (bytes)`)
  if (!Number.isSafeInteger(maxRanges) || maxRanges < 1) throw new TypeError(`${where}: maxRanges must be a positive integer`)
  if (!Number.isSafeInteger(endTimeout) || endTimeout < 1 || endTimeout > 2_147_483_647) throw new TypeError(`${where}: endTimeout must be an integer from 1 to 2147483647 (ms)`)
  for (const [name, value] of [['etag', etag], ['lastModified', lastModified], ['ranges', ranges], ['reuseBuffers', reuseBuffers]] as const) {
    if (typeof value !== 'boolean') throw new TypeError(`${where}: ${name} must be a boolean`)
  }
  const rangeLimits = { maxParts: maxRanges }
  return { bufferSize, chunkSize, endTimeout, reuseBuffers, plan: { etag, lastModified, ranges, rangeLimits }, chosen: { etag: false, lastModified: false, ranges: false, rangeLimits } }
}

/** Answers `download` on `ctx`. Errors before the headers are thrown as http-errors (Koa writes them with no file headers). */
export async function sendDownload (ctx: Context, download: DownloadBody, options: ResolvedServeOptions): Promise<void> {
  const signal = abortSignalOf(ctx)
  quietClientAborts(ctx, signal)
  const file = download.file
  ;(ctx as unknown as Record<symbol, boolean | undefined>)[ANSWERED] = true
  if (download instanceof Download) markTaken(download)
  const opened: OpenOptions = { signal, chunkSize: options.chunkSize, stat: undefined }
  const statOptions = readIntent(ctx, options.plan, signal)
  // A status the route set itself (a 404 page, a 410, a 201 export) is kept: the whole file, with no
  // validators, ranges or preconditions, which describe a 200 (RFC 9110 §13.2.1: preconditions are
  // ignored when the response would not be 2xx; a 206 stands in for a 200 only). "Set itself" is
  // Koa's own flag: not its default 404 (a sendfile() with no body yet), nor the 200 a body implies.
  // A 206 is not kept either: it needs the Content-Range of a requested range (RFC 9110 §15.3.7),
  // so it is the Range header's to decide, as for a 200.
  const status = ctx.status
  const chosen = (ctx.response as { _explicitStatus?: boolean })._explicitStatus === true && status !== 200 && status !== 206 ? status : undefined
  // Whether the response took the file's bytes; if not, what the wrapper holds is released.
  let handedOver = false
  try {
    if (chosen !== undefined && BODILESS.has(chosen)) {
      // A 204, 205 or 304 the route chose carries no body (Koa drops it): nothing is stat'ed or
      // opened, and nothing describing the representation is sent (Content-Type, -Length,
      // -Disposition, Accept-Ranges; a chosen status never gets the file's validators). The
      // download's Cache-Control is kept, as on a 304 of our own; so is every header the route set.
      debug('%s %s: %d, the route\'s own bodiless status', ctx.method, ctx.path, chosen)
      const cacheControl = download.options.cacheControl
      // Setting the status drops the body (Koa destroys a Download) and its type and length.
      applyHeaders(ctx, chosen, cacheControl === undefined ? {} : { 'Cache-Control': cacheControl })
      return
    }
    // A plan made from what a StatCache remembered may be refused by the file itself (a 416 on an
    // old size, E_CHANGED from the open): the file is then looked at once more, uncached, and
    // that look is not one of the attempts E_CHANGED may use up.
    let lookedAgain = false
    for (let attempt = 1; ; attempt++) {
      let stat: FileStat
      let cached = false
      try {
        stat = lookedAgain ? await statUncached(file, statOptions) : await file.stat(statOptions)
        cached = !lookedAgain && statWasCached(file)
        // A custom wrapper's size becomes Content-Length, Content-Range and the range arithmetic:
        // one that is not a byte count (-1, 1.5, NaN, Infinity, past 2^53) is the source's fault.
        const size = stat.size
        if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) throw new DownloadError('E_UPSTREAM', `stat() gave the size ${String(size)}, not a byte count`)
      } catch (error) {
        const failure = failed(ctx, error, 'stat', signal)
        if (leftMeanwhile(ctx, download, signal, failure)) return
        throw failure
      }
      opened.stat = stat
      const presentation = presentationHeaders(download, stat)
      const plan = planResponse(ctx.method, chosen === undefined ? conditionalHeaders(ctx.req) : noHeaders, stat, presentation, chosen === undefined ? options.plan : options.chosen, Date.now())
      if (chosen === undefined) debug('%s %s: %d, %s', ctx.method, ctx.path, plan.status, plan.reason)
      else debug('%s %s: %d, the route\'s own status, with %s', ctx.method, ctx.path, chosen, plan.reason)
      if (plan.status === 412) {
        clearForError(ctx)
        throw createHttpError(412)
      }
      if (plan.status === 416) {
        // A size a StatCache remembered may be old (the file grew since): a 416 is only sent for
        // the file's current size.
        if (cached) {
          lookedAgain = true
          attempt--
          continue
        }
        clearForError(ctx)
        // On the response too, for an error handler that renders its own page (Koa's own one
        // clears the headers and applies the error's).
        const unsatisfied = `bytes */${plan.size}`
        ctx.set('Content-Range', unsatisfied)
        throw createHttpError(416, { headers: { 'Content-Range': unsatisfied } })
      }

      if (plan.status === 304 || ctx.method === 'HEAD') {
        // HEAD: a Download is the body; Koa's respond() ends a HEAD without reading it.
        // 304: setting the status drops any body, so the stream-body setup is skipped (bench/).
        if (plan.status !== 304) answeredWithoutBody(ctx, download)
        applyHeaders(ctx, chosen ?? plan.status, plan.headers)
        if (plan.status !== 304) {
          if (plan.length !== undefined) ctx.length = plan.length
          else ctx.remove('Content-Length')
        }
        return
      }
      // The client left while the file was described: nothing is opened for nobody (a storage
      // request, a generator started), here or by an outer serve() on the way back.
      if (signal.aborted) {
        answeredWithoutBody(ctx, download)
        return
      }
      let body: Body
      try {
        body = await openBody(download, plan, stat, opened, options)
      } catch (error) {
        if (cached && error instanceof DownloadError && error.code === 'E_CHANGED') {
          debug('%s: the file changed since the cached look at it; planning again', ctx.path)
          lookedAgain = true
          attempt--
          continue
        }
        if (attempt === 1 && error instanceof DownloadError && error.code === 'E_CHANGED') {
          debug('%s: the file changed while being opened; planning again', ctx.path)
          continue
        }
        const failure = failed(ctx, error, 'open', signal)
        if (leftMeanwhile(ctx, download, signal, failure)) return
        throw failure
      }
      try {
        applyHeaders(ctx, chosen ?? plan.status, plan.headers)
        if (body.contentType !== undefined) ctx.res.setHeader('Content-Type', body.contentType)
      } catch (error) {
        // Every value is checked before it gets here (a wrapper's malformed ETag is left out, an
        // unsafe Content-Type replaced); should Node still refuse one, the opened source is
        // closed, not left to leak with the error response.
        if (!Buffer.isBuffer(body.data)) body.data.destroy()
        throw error
      }
      ctx.body = body.data
      handedOver = true
      if (body.lent === true) lendTo(ctx.res, body.data as Buffer, watchBody(ctx, body.data as Buffer))
      if (!Buffer.isBuffer(body.data)) {
        body.data.prependOnceListener('error', noteSourceFailure.bind(ctx, signal, body.data))
        body.data.prependOnceListener('close', noteSourceClose.bind(ctx, signal, body.data, file.name))
      }
      // The client left while the source was being opened: nothing will pipe the body, and over
      // HTTP/2 neither Koa's respond() nor its on-finished hook destroys a body set on a closed
      // response (a stream reset before the headers leaked its descriptor or generator each time).
      if (signal.aborted) {
        if (!Buffer.isBuffer(body.data)) body.data.destroy()
        return
      }
      // koa-compress (and middleware following its convention) leave the body as it is: a
      // compressed body would carry the identity bytes' ETag and ranges (RFC 9110 §8.8.3, §14),
      // so a resumed download would splice gzip into plain bytes.
      ctx.compress = false
      // Koa gave a buffer body its length, and took it from a stream body.
      if (body.length !== undefined && !Buffer.isBuffer(body.data)) ctx.length = body.length
      else if (body.length === undefined && !Buffer.isBuffer(body.data) && ctx.req.httpVersionMajor === 1 && ctx.req.httpVersionMinor === 0) resetOnFailure(ctx, body.data)
      return
    }
  } finally {
    if (!handedOver) releaseFile(file)
  }
}

/** On a Koa response: its body, kept here (not enumerable) behind the `_body` accessor of countReads(). */
const BODY = Symbol('koa-downloads.body')
/** On a Koa response whose body is lent: how often its `_body` has been read since (countReads()). */
const LENT = Symbol('koa-downloads.lent-body')
interface LentBody { reads: number }
type Watched = object & { [LENT]?: LentBody, [BODY]?: unknown }

/**
 * For lendTo(): whether, once the response has finished, Koa's respond() alone had the lent `body`.
 * Koa keeps a response's body in `_body`: `ctx.body`, `ctx.response.body`, its inspect(), code that
 * reads `_body` itself, and a spread, `Object.assign()` or clone of the response all get it from
 * there. From now on every read of it is counted (countReads()), and respond() makes one, to send
 * it. A second read (a middleware after next(), a cache, a tee, a logger's 'finish' listener before
 * lendTo()'s) may have handed the buffer to a write still under way, or kept it; the body replaced,
 * or `ctx.respond = false` (the app sends what it read itself), rules lending out too. A response
 * whose `_body` is not countReads()' (one made before it ran, or given an accessor of someone
 * else's), or a Koa that keeps the body elsewhere, never lends.
 */
function watchBody (ctx: Context, body: Buffer): () => boolean {
  const response = ctx.response as unknown as Watched
  if (!countReads(Object.getPrototypeOf(response) as object | null) || !countsOwnReads(response) || response[BODY] !== body) return () => false
  const watch: LentBody = { reads: 0 }
  response[LENT] = watch
  return () => watch.reads === 1 && countsOwnReads(response) && response[BODY] === body && ctx.respond !== false
}

function countsOwnReads (response: Watched): boolean {
  return Object.getOwnPropertyDescriptor(response, '_body')?.get === readBody
}

function readBody (this: Watched): unknown {
  const lent = this[LENT]
  if (lent !== undefined) lent.reads++
  return this[BODY]
}

function writeBody (this: Watched, value: unknown): void {
  this[BODY] = value
}

/** What each response of a counting app gets as its own `_body` when Koa first sets it: enumerable, as Koa's was. */
const ownBody: PropertyDescriptor = { get: readBody, set: writeBody, configurable: true, enumerable: true }

/** The response prototypes whose `_body` accessor counts reads of a lent body, and those that refused one. */
const counting = new WeakSet<object>()
const refused = new WeakSet<object>()

/**
 * Gives the responses of an app (its `app.response`, once) a `_body` accessor in place of the data
 * property Koa's setter would make: on the first set, each response gets an own accessor (the same
 * two functions for all) over a symbol that holds the body. Koa's behaviour is otherwise the same,
 * and a read of a response with a lent body counts one. Not when something already answers to
 * `_body` there, or the prototype refuses a property (sealed, frozen): no lending then. Counting
 * with an accessor defined on each lent response after Koa had set its body (a data property
 * reconfigured per response object, two closures each) grew V8's heap from 54 to 167 MiB under
 * random ranges (bench/).
 */
function countReads (prototype: object | null): boolean {
  if (prototype === null || refused.has(prototype)) return false
  if (counting.has(prototype)) return true
  if ('_body' in prototype) {
    refused.add(prototype)
    return false
  }
  try {
    Object.defineProperty(prototype, '_body', {
      // A response without a `_body` of its own (none set yet, or deleted) has no body, as before.
      get: () => undefined,
      set (this: Watched, value: unknown) {
        Object.defineProperty(this, BODY, { value, writable: true, configurable: true, enumerable: false })
        Object.defineProperty(this, '_body', ownBody)
      },
      configurable: true,
      enumerable: false
    })
  } catch {
    refused.add(prototype)
    return false
  }
  counting.add(prototype)
  return true
}

/**
 * Leaves `ctx.body` a Download marked answered, for a response that sends none of the file (a HEAD,
 * a client gone): reading it ends at once, and no outer serve() or offload() answers it again. A
 * bare wrapper must not stay the body: Koa would send the length of its JSON as Content-Length.
 */
function answeredWithoutBody (ctx: Context, download: DownloadBody): void {
  if (!(ctx.body instanceof Download)) ctx.body = new Download(download.file, download.options)
  markAnswered(ctx.body as Download)
}

const noHeaders: IncomingHttpHeaders = Object.freeze({})

/** The statuses that never carry a body (Koa's statuses.empty): RFC 9110 §15.3.5, §15.3.6, §15.4.5. */
const BODILESS: ReadonlySet<number> = new Set([204, 205, 304])

/**
 * Whether the bytes will surely be read right after stat() (see StatOptions.willRead): a GET
 * without any precondition can only end in 200, or in 206/416 when it asks for one Range.
 */
function readIntent (ctx: Context, plan: PlanOptions, signal: AbortSignal): StatOptions {
  const headers = ctx.req.headers
  if (ctx.method !== 'GET' || headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined ||
    headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined) return { signal }
  const range = headers.range
  if (!plan.ranges || range === undefined) return { signal, willRead: 'whole' }
  // Several ranges: a multipart body opens each part on its own (the first before the headers).
  if (range.includes(',')) return { signal }
  return { signal, willRead: 'range', range: headers['if-range'] === undefined && SINGLE_RANGE.test(range) ? range : undefined }
}

/** One plain byte range, as a remote source may forward it upstream verbatim. */
const SINGLE_RANGE = /^bytes=(?:\d{1,15}-\d{0,15}|-\d{1,15})$/

type Plan200 = Extract<ReturnType<typeof planResponse>, { status: 200 | 206 }>
/** `lent`: `data` is a buffer from borrow(), to be lent to the response (lendTo()). */
interface Body { data: Buffer | Readable, length: number | undefined, contentType?: string, lent?: boolean }

/**
 * The plan's status and headers. The values are strings made here, so they go to Node's setHeader
 * directly: Koa's ctx.set builds two arrays per call to normalise values (bench/: 15 % of the
 * bytes allocated per 4 KiB response).
 */
function applyHeaders (ctx: Context, status: number, headers: Record<string, string | null>): void {
  ctx.status = status
  const res = ctx.res
  if (res.headersSent) return
  for (const name in headers) {
    const value = headers[name]
    if (value === null || value === undefined) res.removeHeader(name)
    // A policy the app set stays, and the sandbox goes beside it: browsers enforce every policy.
    else if (name === 'Content-Security-Policy' && res.hasHeader(name)) appendPolicy(res, value)
    // So does a Vary the app set (CORS's Origin): a cache must key on both.
    else if (name === 'Vary' && res.hasHeader(name)) appendVary(res, value)
    else res.setHeader(name, value)
  }
  // Neither the download's options nor the route named a Cache-Control: a shared cache must not keep it.
  if (!res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', DEFAULT_CACHE_CONTROL)
}

/** Adds `policy` to the response's Content-Security-Policy lines, once. */
export function appendPolicy (res: ServerResponse, policy: string): void {
  const existing = res.getHeader('Content-Security-Policy')
  const lines = Array.isArray(existing) ? existing : existing === undefined ? [] : [String(existing)]
  if (!lines.includes(policy)) res.setHeader('Content-Security-Policy', [...lines, policy])
}

/** Adds `field` to the response's Vary, unless it is there already (or `*` is). */
function appendVary (res: ServerResponse, field: string): void {
  const existing = res.getHeader('Vary')
  const value = Array.isArray(existing) ? existing.join(', ') : String(existing ?? '')
  const fields = value.split(',').map((part) => part.trim().toLowerCase())
  if (!fields.includes(field.toLowerCase()) && !fields.includes('*')) res.setHeader('Vary', value.trim() === '' ? field : `${value}, ${field}`)
}

/** Responses whose connection resetOnFailure() reset. */
const resetBySource = new WeakSet<ServerResponse>()

/** What a response's body failed with while its client was still there: the source's own failure. */
const sourceFailures = new WeakMap<object, Error>()

/**
 * The body's first 'error' listener (bound to the request, before Koa pipes it): a failure while
 * the client is still connected is the source's, whatever its code. A source that is the app's own
 * upstream response, reset by its origin, fails with ECONNRESET, the code a client leaving gives.
 * When the client leaves first, its 'close' has aborted the signal before the pipe destroys the
 * body. (resetOnFailure(), for an HTTP/1.0 body of unknown length, has reset the connection just
 * before: that is this failure's doing.)
 */
function noteSourceFailure (this: Context, signal: AbortSignal, stream: Readable, error: unknown): void {
  const res = this.res
  if (signal.aborted || !(error instanceof Error)) return
  if (resetBySource.has(res) || (!res.destroyed && res.socket?.destroyed !== true)) sourceFailures.set(stream, error)
}

/**
 * The body's first 'close' listener: a body closed before its end, with no error, while its client
 * was there (a cursor closed, a child process killed: `destroy()` with nothing to say) failed too.
 * (A sized one is guarded: it fails with an error of its own.)
 */
function noteSourceClose (this: Context, signal: AbortSignal, stream: Readable, name: string): void {
  if (stream.readableEnded || (stream.errored !== null && stream.errored !== undefined) || sourceFailures.has(stream)) return
  noteSourceFailure.call(this, signal, stream, new DownloadError('E_UPSTREAM', `${JSON.stringify(name)}: the source closed before its end`))
}

/**
 * A body of unknown length to an HTTP/1.0 client — nginx's default towards its upstreams — has no
 * chunked framing: it ends with the connection, so a failure mid-body, closing the connection as
 * the end would, reached the client as a complete file (and nginx passed it on as one, RFC 9112
 * §6.3). A failing body resets the connection instead (RST), which clients and proxies report as
 * a cut transfer. Listeners put first: Koa's pipeline closes the socket (FIN) on the same events.
 */
function resetOnFailure (ctx: Context, stream: Readable): void {
  const res = ctx.res
  const socket = res.socket
  const reset = (): void => {
    // (Not a body a middleware replaced: Koa closes the old stream, and the new body is sent whole.)
    if (socket === null || socket.destroyed || stream.readableEnded || ctx.body !== stream) return
    // The reset closes the response, which aborts the download's signal as a client leaving
    // would: the failure is still the source's, and reported (onDownloadError).
    resetBySource.add(res)
    // Only a TCP handle can be reset: a TLS socket (HTTPS, HTTP/2 with allowHTTP1) or a Unix
    // socket throws ERR_INVALID_HANDLE_TYPE, which would crash the process from this listener.
    // Those are closed instead: TLS without its close_notify (clients that check it see the cut),
    // a Unix socket with nothing to tell the end from a failure (docs/reliability.md).
    try {
      socket.resetAndDestroy()
    } catch {
      socket.destroy()
    }
  }
  stream.prependOnceListener('error', reset)
  stream.prependOnceListener('close', reset)
}

/** Opens exactly the bytes the plan sends, touching nothing on ctx, so that a failure can still become a clean 404/5xx. */
async function openBody (download: DownloadBody, plan: Plan200, stat: FileStat, opened: OpenOptions, options: ResolvedServeOptions): Promise<Body> {
  const file = download.file
  const ranges = plan.ranges
  if (ranges !== undefined && ranges.length > 1) {
    const multipart = planMultipart(ranges, stat.size ?? 0, plan.headers['Content-Type'] ?? 'application/octet-stream')
    const contentType = `multipart/byteranges; boundary=${multipart.boundary}`
    // The first part is opened before the headers, as a single range is: a source that fails there
    // (gone, changed since stat(): planned again) is a clean error, not a cut-off 206. The others
    // open while the body is sent; a local file's parts are all read from the descriptor opened
    // here (32 one-byte parts: about a quarter of the CPU of an open, check and close per part;
    // docs/benchmarks.md item 51), nearby small ones with one read (the first of them before the
    // headers too).
    const openReader = rangeReaderOf(file)
    if (openReader !== undefined) {
      const reader = await openReader(opened)
      const chunkSize = options.chunkSize
      const { position, length } = firstRead(multipart, chunkSize)
      let first: Buffer
      try {
        first = await reader.read(position, length)
      } catch (error) {
        reader.close()
        throw error
      }
      return { data: multipartFromReader(reader, multipart, first, chunkSize), length: multipart.length, contentType }
    }
    // A small multipart body of a source that reads ranges into buffers (in memory, a storage
    // object) is read whole before the headers, as a small single range is: one write, and a
    // source failing on a later part is still a clean error (32 one-byte parts of an in-memory
    // file: a stream and a timer per part cost 11× one range).
    if (multipart.length <= options.bufferSize && typeof file.read === 'function') {
      const pieces: Uint8Array[] = []
      for (const { range, head } of multipart.parts) {
        // A client gone stops the reads here, whether or not the wrapper's read() heeds the signal.
        opened.signal?.throwIfAborted()
        pieces.push(head, heldTo(await file.read(range, opened), range.end - range.start + 1))
      }
      pieces.push(multipart.tail)
      return { data: Buffer.concat(pieces, multipart.length), length: multipart.length, contentType }
    }
    const first = await file.open(multipart.parts[0]?.range, opened)
    await firstBytes(first, opened.signal)
    return { data: multipartStream(file, multipart, opened, first, options.endTimeout), length: multipart.length, contentType }
  }
  if (plan.decode !== undefined) return { data: await decodedBody(file, plan.decode, opened), length: undefined }
  const range = ranges?.[0]
  const length = plan.length
  if (length !== undefined && length <= options.bufferSize && typeof file.read === 'function' && stat.ranges !== false) {
    // A single range of a local file: into memory the response gives back once it has sent it.
    const lending = range !== undefined && options.reuseBuffers ? lendingReaderOf(file) : undefined
    if (lending !== undefined && range !== undefined) return { data: heldTo(await lending(range, opened), length) as Buffer, length, lent: true }
    const bytes = heldTo(await file.read(range, opened), length)
    return { data: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), length }
  }
  const stream = await file.open(range, opened)
  // Our own file stream counts exactly; any other source is held to the length we announce.
  // Its first read is already in the thread pool, which a client's abort could not cancel anyway:
  // no abort listener (one EventTarget add + remove, about 1 µs per response, bench/).
  if (stream instanceof FileStream) {
    await firstBytes(stream, undefined)
    return { data: stream, length }
  }
  // The source's own errors pass as they are (a generator's failure is the app's 500 with or
  // without a declared size); a wrong length is the 502 of a source that broke its word.
  const data = isLengthGuarded(stream) || length === undefined ? stream : guardStream(stream, { expected: length, what: JSON.stringify(file.name), keepSourceErrors: true, endTimeout: options.endTimeout })
  await firstBytes(data, opened.signal)
  await settledInMemory(data)
  return { data, length }
}

/**
 * What a wrapper's read() gave, held to the `length` planned: more or fewer bytes mean a file that
 * changed since stat() (planned again once, then a 503), never a body of another length.
 */
function heldTo (bytes: Uint8Array, length: number): Uint8Array {
  if (bytes.byteLength !== length) throw new DownloadError('E_CHANGED', `read() returned ${bytes.byteLength} bytes instead of ${length}`)
  return bytes
}

async function decodedBody (file: DownloadBody['file'], coding: DecodableCoding, opened: OpenOptions): Promise<Readable> {
  const source = await file.open(undefined, opened)
  const decoder = decoderFor(coding)
  // The decoder's own failure (zlib's Z_*, brotli's ERR__* codes), as opposed to the source's. The
  // pipeline hands the first failure to the other stream too (a storage's E_CHANGED must stay one:
  // planned again; the decoder's reaches a source still open as well), so the first one seen tells
  // whose it is.
  let undecodable: unknown
  let sourceFailed = false
  source.once('error', () => { if (undecodable === undefined) sourceFailed = true })
  decoder.once('error', (error: Error & { status?: number, expose?: boolean }) => {
    if (sourceFailed) return
    undecodable = error
    // After the headers, Koa reports it as it is: marked as the storage's fault (a 502, like a
    // storage failing mid-body), not the app's.
    if (error instanceof Error && !(error instanceof DownloadError)) Object.assign(error, { status: 502, expose: false })
  })
  // A failure of either destroys both; Koa's pipeline reports the one after the headers.
  const decoded = pipeline(source, decoder, ignore)
  try {
    await firstBytes(decoded, opened.signal)
    await settledInMemory(decoded)
  } catch (error) {
    source.destroy()
    throw error === undecodable && !(error instanceof DownloadError) ? new DownloadError('E_UPSTREAM', `${JSON.stringify(file.name)}: the stored ${coding} bytes do not decode`, { cause: error }) : error
  }
  return decoded
}

/**
 * Resolves once the stream has bytes (or has ended), and rejects if it fails first, the stream
 * destroyed — so that a source failing before its first byte still becomes a clean 4xx/5xx instead
 * of a dropped connection. The listener it leaves for 'error' keeps a failure in the gap before Koa
 * pipes the body from crashing the process; Koa's pipeline reports it. A client that leaves while
 * the source is still silent (a generated export preparing its first row) rejects it too: the
 * source is destroyed then, not held until it produces bytes nobody will read (or forever).
 */
async function firstBytes (stream: Readable, signal: AbortSignal | undefined): Promise<void> {
  stream.on('error', ignore)
  try {
    // A stream that failed or was destroyed before it got here (a route that awaited something
    // while its upstream failed) has emitted its 'error' and 'close' already; one read to its end
    // (with autoDestroy off, nothing else tells) sent its bytes elsewhere. One with bytes still
    // buffered has its first bytes, unless it failed with autoDestroy off: the failure comes first.
    if (stream.readableLength > 0 && (stream.errored === null || stream.errored === undefined)) return
    const settled = settledBeforeSent(stream)
    if (settled !== undefined) throw settled
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        stream.off('readable', onReadable)
        stream.off('error', settle)
        stream.off('close', onClose)
        signal?.removeEventListener('abort', onAbort)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onReadable = (): void => { settle() }
      const onClose = (): void => { settle(stream.errored ?? (stream.readableEnded ? undefined : new DownloadError('E_UPSTREAM', 'the source closed before sending anything'))) }
      const onAbort = (): void => { settle(signal?.reason as Error) }
      stream.on('readable', onReadable)
      stream.once('error', settle)
      stream.once('close', onClose)
      if (signal?.aborted === true) onAbort()
      else signal?.addEventListener('abort', onAbort, { once: true })
    })
  } catch (error) {
    stream.destroy()
    throw error
  }
}

/**
 * After the first bytes of a source other than a local file: one turn of the event loop, so that a
 * source whose bytes are all in memory (a generator, a web stream, a buffered upstream body) has
 * delivered them, and a length guard has judged them, before Koa writes the headers. A sized
 * stream that ends short at once is then a clean 502, not a connection dropped before any status
 * line. A failure after this is one in the middle of the body, answered by aborting it.
 */
async function settledInMemory (stream: Readable): Promise<void> {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
  // Failed (destroyed or, with autoDestroy off, only errored), or closed before its end. One that
  // reached its end while waited for, destroyed at it or not, was empty: nothing read it but this.
  if (stream.errored !== null && stream.errored !== undefined) throw stream.errored
  if (stream.destroyed && !stream.readableEnded) throw new DownloadError('E_UPSTREAM', 'the source closed before the response started')
}

function ignore (): void {}

/** The error serve() throws instead of the download (see clearForError). */
function failed (ctx: Context, error: unknown, stage: string, signal: AbortSignal): Error {
  clearForError(ctx)
  const httpError = toHttpError(error)
  // A stat or open that the client's leaving aborted is no failure: the error handler says it left.
  if (httpError.status >= 500 && !signal.aborted) debug('%s %s: %s failed: %s', ctx.method, ctx.path, stage, (error as Error)?.message ?? String(error))
  return httpError
}

/**
 * A stat() or open() that failed after the client left (one the abort cut short, or one that
 * failed meanwhile) answers nothing: there is nobody to answer, and an error handler mounted
 * before downloads() must not see a server error (a 502 "client went away") for every download a
 * user cancelled. The download counts as answered (an outer serve() opens nothing), and the debug
 * line says the client went away, once, as for a client leaving mid-body.
 */
function leftMeanwhile (ctx: Context, download: DownloadBody, signal: AbortSignal, failure: Error): boolean {
  if (!signal.aborted) return false
  answeredWithoutBody(ctx, download)
  ctx.onerror(failure)
  return true
}

/**
 * Before serve() throws instead of sending the download: the Content-Type Koa gave the body (binary
 * for a Download, JSON for a bare wrapper) or the route gave the file goes, so that an error handler
 * rendering a page of its own (`ctx.body = '…'`) does not send it under that type (a browser would
 * save the 404 page as a file). Koa's own error handler clears every header anyway.
 */
export function clearForError (ctx: Context): void {
  ctx.remove('Content-Type')
}

/**
 * Koa logs every ERR_STREAM_PREMATURE_CLOSE of a piped body with a stack; for a download, a client
 * that goes away is normal. Only the abort is silenced: real source errors are still reported.
 */
function quietClientAborts (ctx: Context, signal: AbortSignal): void {
  // A bound module function, not a function literal assigned to ctx.onerror: V8 allocates a
  // closure written straight into a property in the old generation (a parser heuristic for
  // methods), and from there its scope — ctx, so the whole request — outlived every young-generation
  // GC until a full one. Under load from a fresh start, the requests were promoted that way and the
  // new space grew to its maximum (bench/: 252 → 160 MiB peak RSS of a fresh server at 4 KiB).
  // test/young-generation.test.ts checks every function serve() leaves on a request.
  ctx.onerror = onDownloadError.bind(ctx, { original: ctx.onerror, signal, reported: undefined, wentAway: false })
}

interface QuietState {
  readonly original: Context['onerror']
  readonly signal: AbortSignal
  /** Koa reports a failing stream body twice (its pipeline and the body's 'error' listener). */
  reported: unknown
  /** Whether the debug line for a client that left was written (once per request, whatever Koa reports after it). */
  wentAway: boolean
}

function clientWentAway (ctx: Context, state: QuietState, error: unknown): void {
  if (state.wentAway) return
  state.wentAway = true
  // The HTTP error serve() threw names only its status: the reason is its cause's.
  const reason = (error as { cause?: { message?: unknown } } | null)?.cause?.message ?? (error as Error | null)?.message ?? String(error)
  debug('%s: client went away (%s)', ctx.path, reason)
}

function onDownloadError (this: Context, state: QuietState, error: Error): void {
  // Koa's own handler ignores a call without an error.
  if (error === null || error === undefined) {
    state.original.call(this, error)
    return
  }
  if (error === state.reported) return
  const code = (error as { code?: string } | null)?.code
  const pipeCode = code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'EPIPE'
  // A body that failed while its client was there: what Koa passes on for it — the pipe's
  // premature close or a reset, or anything once the headers went out — is its consequence, and
  // the source's own failure is reported instead, once, whatever its code. Before the headers, any
  // other error (a middleware that threw after next()) is the response's outcome: sent and
  // reported as it is.
  // (The failure is looked up by the body itself: one a middleware put in its place has none.)
  if (this.res.headersSent || pipeCode) {
    const body: unknown = this.body
    const sourceFailure = typeof body === 'object' && body !== null ? sourceFailures.get(body) : undefined
    if (sourceFailure !== undefined) {
      if (sourceFailure === state.reported) return
      state.reported = sourceFailure
      state.original.call(this, sourceFailure)
      return
    }
    if (this.res.headersSent && state.reported !== undefined) return
  }
  // The client left first: whatever failed after that (an upstream request aborted by this very
  // signal, a stat or open that lost its caller) is a consequence of the abort, not a server fault.
  // A connection resetOnFailure() reset was the source's failure (one that closed without ending).
  const sourceReset = resetBySource.has(this.res)
  if (state.signal.aborted && !sourceReset) {
    clientWentAway(this, state, error)
    return
  }
  if (!sourceReset && pipeCode) {
    // A client that resets its connection while the download is still being prepared (an upstream
    // request, a generated stream's first bytes): Koa passes on the socket's ECONNRESET before the
    // response's 'close' aborts our signal, and before the request counts as destroyed.
    // (Not `req.destroyed`: a request whose body was read to its end is destroyed too, its client
    // still there, and the error must get its response.)
    if (this.res.headersSent || this.req.socket?.destroyed === true || clientGone(this.res)) {
      clientWentAway(this, state, error)
      return
    }
  }
  state.reported = error
  state.original.call(this, error)
}

/**
 * Whether the client has left already, its 'close' past: the HTTP/1 response, or the HTTP/2 stream
 * (Koa on node:http2's compatibility API: the response itself has no `destroyed`), is destroyed.
 */
export function clientGone (res: Context['res']): boolean {
  return (res as { destroyed?: boolean }).destroyed === true || (res as { stream?: { destroyed?: boolean } }).stream?.destroyed === true
}

/** An AbortSignal that fires when the client disconnects before the response is complete. */
function abortSignalOf (ctx: Context): AbortSignal {
  const controller = new AbortController()
  const res = ctx.res
  // The client may have left before serve() got the request (the route awaited a permission
  // check meanwhile): its 'close' is past, and over HTTP/2 nothing else would destroy what is
  // opened for it (a descriptor per reset request, for good). Then the HTTP/1 response, or the
  // HTTP/2 stream, is destroyed. (Not writableFinished: an HTTP/2 HEAD's stream has ended its
  // writable side from the start.)
  if (clientGone(res)) {
    controller.abort(new DownloadError('E_UPSTREAM', 'client went away'))
    return controller.signal
  }
  res.once('close', () => {
    // Over HTTP/2 (Koa on node:http2's compatibility API) a stream the client reset before the
    // response ended closes with writableFinished already true: writableEnded tells that apart.
    if (!res.writableFinished || !res.writableEnded) controller.abort(new DownloadError('E_UPSTREAM', 'client went away'))
  })
  return controller.signal
}
