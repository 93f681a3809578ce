import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { isHeaderSafe } from '../../source/download.ts'
import { DownloadError, upstreamStatusCode } from '../../source/errors.ts'
import { debug, redactUrl } from '../../source/debug.ts'
import { parseEntityTag } from '../../source/etag.ts'
import { formatHttpDate, parseHttpDate } from '../../source/http-date.ts'
import type { ByteRange, DownloadFile, FileStat, OpenOptions, StatOptions } from '../../source/types.ts'
import { guardStream } from '../../source/guarded-stream.ts'
import { looksPresigned } from '../../source/offload-rule.ts'
import { parseContentRange } from '../../source/range.ts'
import { ReadAhead, readToStart, samePart } from '../../source/read-ahead.ts'
import { upstreamRequest } from './upstream-request.ts'

export interface HttpFileOptions {
  /** The download name. @default the last path segment of the URL, percent-decoded */
  name?: string | undefined
  /**
   * Request headers sent upstream (e.g. Authorization, X-Api-Key). Every one of them is dropped when
   * a redirect leads to another origin (scheme, host or port) — and stays dropped for the rest of
   * that chain; a redirect within the origin keeps them.
   */
  headers?: Readonly<Record<string, string>> | undefined
  /**
   * Milliseconds to wait for the upstream's response headers (connection and redirects included: one
   * wait per request, not per hop; a HEAD and its GET are two requests), and the longest silence
   * between body chunks while the client is reading. Either → 504 before the headers, an
   * aborted transfer after.
   * @default 30000
   */
  timeout?: number | undefined
  /** Redirects followed before giving up (502). @default 5 */
  maxRedirects?: number | undefined
  /**
   * Whether offload rules (a `sourceUrl` rule, an nginx `remote` rule) may hand the URL to the
   * proxy, which then fetches it itself — **without** the `headers` option. `false`: `file.url` is
   * undefined, so no rule covers the file and Node streams it.
   * @default true without `headers`, false with them (an Authorization or API key the proxy would
   * not send); set `true` when the proxy adds the credential itself (`proxy_set_header` in the
   * generated location) or the origin answers the same without it
   */
  offloadable?: boolean | undefined
}

const optionNames = new Set(['name', 'headers', 'timeout', 'maxRedirects', 'offloadable'])
/** Headers the caller may not set: they would break the byte accounting or the framing. */
const reservedHeaders = new Set(['range', 'if-range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'accept-encoding', 'host', 'content-length', 'transfer-encoding', 'connection'])

/**
 * A remote file, streamed from its URL.
 *
 * - `stat()` is one HEAD request (none of the body is fetched, so HEAD, 304, 412 and 416 never
 *   start a transfer). Only size, type, ETag and Last-Modified are kept: no other upstream header
 *   reaches the client. If the origin refuses HEAD (405/501, or 403 to a presigned URL, which is
 *   signed for GET only), a `Range: bytes=0-0` GET stands in
 *   (its 416 with `Content-Range: bytes *\/0` is an empty file).
 * - `open(range)` is one GET for exactly those bytes (`Range: bytes=s-e`, only a 206 with the same
 *   Content-Range is accepted, never sliced locally), with `Accept-Encoding: identity` and
 *   `If-Match` (or `If-Unmodified-Since`) so that a file that changed since stat() is E_CHANGED,
 *   never sent under the old validators. An origin that ignores those is caught by the response
 *   itself: another Content-Length (or complete length in Content-Range), ETag or Last-Modified than
 *   the stat() the response was planned with is E_CHANGED too, before any header (serve() plans
 *   once more; a HEAD and GET that keep disagreeing → E_UPSTREAM). A body without a length has its
 *   last planned byte held until its end, so a longer one is cut, never completed.
 * - An origin that announces ranges but answers a ranged GET with 200 gets the whole file: the
 *   stat() becomes `ranges: false`, open() throws E_CHANGED so that serve() plans a 200, and the
 *   next open() takes that 200 body (at most one request more than a ranged read).
 * - When serve() announces the read (`willRead`: a GET with no precondition, whole or one plain
 *   range), stat() is that GET instead — the metadata come from its headers and open() takes its
 *   body when the range planned from the size is the one the upstream sent: one request per
 *   download instead of two. Anything else (an upstream 416, a different part) falls back to the
 *   HEAD + GET above; a body nobody took is aborted at the end of the turn.
 * - One instance may serve many requests: each asks the origin for itself (see `#lookups`), so
 *   none answers from another's metadata, redirect target, failure or abort.
 * - The client's conditional headers are evaluated by serve() against the upstream's validators.
 * - Upstream 404/410 → 404; 5xx, other statuses, network errors → 502 (429, 503 → 503); timeouts,
 *   and an upstream 408 or 504, → 504. A body that is not the file's bytes as they are (a
 *   Content-Encoding, a transfer coding other than chunked) → 502, from the HEAD already.
 * - The client going away aborts the upstream request (the signal of `open()`).
 * - Redirects are followed; one to another origin drops every header of the `headers` option.
 * - `url` (what offload rules match) is the remote URL, or undefined with `headers` (see
 *   `offloadable`): the proxy would fetch it without them.
 */
export class HttpFile implements DownloadFile {
  readonly name: string
  /** The remote URL (without fragment) for offload rules; undefined when not `offloadable`. */
  readonly url: string | undefined
  /** The remote URL fetched. */
  readonly #href: string
  readonly #headers: OutgoingHttpHeaders
  /** The URL for log lines and error messages: without its query (a presigned URL's signature). */
  readonly #shown: string
  /** The names of the app's headers (lower case): dropped on a redirect to another origin. */
  readonly #originBound: ReadonlySet<string>
  readonly #timeout: number
  readonly #maxRedirects: number
  /**
   * What each request learnt: its stat() and where that HEAD (or GET) ended after redirects, by the
   * AbortSignal serve() gives the request, or by the instance for calls without one (a route's own
   * stat()). An instance shared by requests thus asks the origin for each of them (a file that
   * changed, a redirect whose signed target expired), and one request's failure or abort is not
   * another's.
   */
  readonly #lookups = new WeakMap<object, Lookup>()
  /** The signals that had a lookup: a request planning again (E_CHANGED) asks the origin itself. */
  readonly #planned = new WeakSet<AbortSignal>()
  /**
   * The body of the GET that stat() made for an announced read (or of a ranged GET answered 200),
   * until open() takes it: only for a response planned with the same `stat`.
   */
  readonly #ahead = new ReadAhead<{ response: IncomingMessage, range: ByteRange | undefined, stat: FileStat }>(({ response }) => { response.destroy() })

  constructor (url: string | URL, options: HttpFileOptions = {}) {
    validate(options)
    const parsed = typeof url === 'string' && URL.canParse(url) ? new URL(url) : url instanceof URL ? new URL(url.href) : undefined
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new TypeError('HttpFile(): url must be an absolute http: or https: URL')
    }
    parsed.hash = ''
    this.#href = parsed.href
    this.#shown = redactUrl(parsed.href)
    this.name = options.name ?? nameOf(parsed)
    this.#headers = { ...options.headers }
    this.#originBound = new Set(Object.keys(this.#headers).map((name) => name.toLowerCase()))
    this.#timeout = options.timeout ?? 30_000
    this.#maxRedirects = options.maxRedirects ?? 5
    this.url = (options.offloadable ?? this.#originBound.size === 0) ? parsed.href : undefined
    this.sendsStoredCoding = looksPresigned(parsed.href)
  }

  /**
   * Whether the origin may send its stored coding whatever the client accepts: S3 and GCS do, so a
   * presigned URL of theirs counts (any other origin is taken to honour the client's
   * Accept-Encoding, which the proxy forwards). Offloaded to a proxy that fetches the URL, such a
   * body reached a client refusing gzip (wget's `Accept-Encoding: identity`) as gzip bytes under the
   * file's name: for such a client (and no Range) the offload asks the origin first (its metadata:
   * a HEAD, which a presigned URL refuses, then a one-byte GET) and leaves a coded file to serve(),
   * which refuses it (502) as when it streams. Clients that take gzip cost nothing.
   */
  readonly sendsStoredCoding: boolean

  /**
   * A file wrapper is not data: one that reaches a JSON serialiser (no `downloads()` mounted, or a
   * JSON middleware between the route and it) fails loudly instead of publishing its URL (a
   * presigned one carries its signature).
   */
  toJSON (): never {
    throw new TypeError('koa-downloads: an HttpFile reached a JSON serialiser; mount downloads() or serve() before the route (and body-transforming middleware before it)')
  }

  async stat (options?: StatOptions): Promise<FileStat> {
    const signal = options?.signal
    let lookup = this.#lookups.get(signal ?? this)
    // (A signal lives as long as its request; one the app keeps longer gets no older answers either.)
    if (lookup !== undefined && !lookup.fresh()) lookup = undefined
    if (lookup === undefined && signal !== undefined && !this.#planned.has(signal)) {
      // A stat() made without a signal a moment ago (the route's own, checking the size first, or
      // offload()'s), taken over once by the first stat() of a request, so that the request asks the
      // origin once. Never by a request planning again: the file changed since.
      const own = this.#lookups.get(this)
      if (own?.fresh() === true) {
        this.#lookups.delete(this)
        lookup = own
      }
    }
    if (signal !== undefined) this.#planned.add(signal)
    if (lookup !== undefined && signal !== undefined) this.#lookups.set(signal, lookup)
    if (lookup === undefined) {
      const scope = signal ?? this
      const fresh = new Lookup()
      const start = readToStart(options)
      fresh.settle(start !== undefined ? this.#getAhead(fresh, start.range, signal) : this.#head(fresh, signal))
      // A failure is not kept: the next stat() asks again.
      fresh.stat.catch(() => { if (this.#lookups.get(scope) === fresh) this.#lookups.delete(scope) })
      this.#lookups.set(scope, fresh)
      lookup = fresh
    }
    return await lookup.stat
  }

  async open (range?: ByteRange, options?: OpenOptions): Promise<Readable> {
    // The stat() this response was planned with: what the bytes opened now must match.
    const stat = options?.stat ?? await this.stat(options)
    const expected = range === undefined ? stat.size : range.end - range.start + 1
    let held = this.#ahead.take()
    if (held !== undefined && !sameStat(held.stat, stat)) {
      held.response.destroy()
      held = undefined
    }
    if (held !== undefined && samePart(held.range, range)) return body(held.response, expected, this.#timeout, this.#shown)
    // A whole body in hand while a part is asked for (the origin answered the forwarded Range with
    // 200): kept aside until the part's own request shows whether the origin serves ranges at all.
    let aside = held?.range === undefined ? held?.response : undefined
    if (aside === undefined) held?.response.destroy()
    try {
      const scope = options?.signal ?? this
      const lookup = this.#lookups.get(scope)
      const target = lookup?.resolved ?? { url: this.#href, headers: this.#headers }
      const headers: OutgoingHttpHeaders = { ...target.headers, 'accept-encoding': 'identity' }
      if (range !== undefined) headers.range = `bytes=${range.start}-${range.end}`
      if (stat.etag !== undefined && !stat.etag.startsWith('W/')) headers['if-match'] = stat.etag
      else if (stat.lastModified !== undefined) headers['if-unmodified-since'] = formatHttpDate(stat.lastModified)
      const { response } = await upstreamRequest(target.url, { method: 'GET', headers, originBound: this.#originBound, timeout: this.#timeout, maxRedirects: this.#maxRedirects, signal: options?.signal })
      const status = response.statusCode ?? 0
      const part = status === 206 ? parseContentRange(response.headers['content-range']) : undefined
      const length = response.headers['content-length']
      // Another length or other validators than the plan's: the file changed and the origin ignored
      // If-Match / If-Unmodified-Since. Caught here, before any header is sent.
      const differs = status >= 200 && status < 300 ? contradiction(response, stat) : undefined
      const encoded = encodingProblem(response)
      let problem: DownloadError | undefined
      if (status === 412 || status === 416) {
        problem = new DownloadError('E_CHANGED', `${this.#shown}: changed since HEAD (${status})`)
        this.#lookups.delete(scope)
      } else if (status >= 300 || status < 200) {
        problem = statusError(this.#shown, status)
      } else if (encoded !== undefined) {
        problem = new DownloadError('E_UPSTREAM', `${this.#shown}: ${encoded}`)
      } else if (differs !== undefined) {
        problem = this.#changed(stat, differs, options?.signal)
      } else if (range !== undefined && status === 200) {
        // The origin announced ranges but sends the whole file: planned again as a 200 with the
        // whole body (RFC 9110 §14.2; never sliced here), the body in hand taken by the next open().
        const whole: FileStat = { ...stat, ranges: false }
        const replanned = new Lookup()
        replanned.resolved = lookup?.resolved
        replanned.settle(Promise.resolve(whole))
        this.#lookups.set(scope, replanned)
        if (aside === undefined) {
          this.#ahead.hold({ response, range: undefined, stat: whole })
        } else {
          response.destroy()
          this.#ahead.hold({ response: aside, range: undefined, stat: whole })
          aside = undefined
        }
        debug('http GET %s: a Range answered 200: planning the whole file', JSON.stringify(this.#shown))
        throw new DownloadError('E_CHANGED', `${this.#shown}: the origin ignores Range (200 for bytes=${range.start}-${range.end}); planning again as a whole file`)
      } else if (range !== undefined && (status !== 206 || part?.start !== range.start || part.end !== range.end || (length !== undefined && Number(length) !== expected))) {
        problem = new DownloadError('E_UPSTREAM', `${this.#shown}: asked for bytes ${range.start}-${range.end}, got ${status} ${response.headers['content-range'] ?? ''} (Content-Length ${length ?? 'none'})`)
      } else if (range === undefined && status !== 200) {
        problem = new DownloadError('E_UPSTREAM', `${this.#shown}: a full GET answered ${status}`)
      }
      if (problem !== undefined) {
        response.destroy()
        debug('http GET %s: %s', JSON.stringify(this.#shown), problem.message)
        throw problem
      }
      return body(response, expected, this.#timeout, this.#shown)
    } finally {
      aside?.destroy()
    }
  }

  /**
   * Small responses as one buffer (serve() asks for those under its `bufferSize`): the ranged GET
   * collected, so that an upstream dying mid-body is still a clean 502 before any header.
   */
  async read (range?: ByteRange, options?: OpenOptions): Promise<Uint8Array> {
    const chunks: Buffer[] = []
    for await (const chunk of await this.open(range, options)) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  /**
   * stat() as the GET itself (whole, or the client's one plain range): the metadata from its
   * headers, the body kept for open(). An error status is the same answer a HEAD would give; an
   * upstream 416, a 206 without a usable Content-Range or an encoded body → the HEAD route.
   */
  async #getAhead (lookup: Lookup, range: string | undefined, signal: AbortSignal | undefined): Promise<FileStat> {
    const headers: OutgoingHttpHeaders = { ...this.#headers, 'accept-encoding': 'identity' }
    if (range !== undefined) headers.range = range
    const { response, url, headers: sent } = await upstreamRequest(this.#href, { method: 'GET', headers, originBound: this.#originBound, timeout: this.#timeout, maxRedirects: this.#maxRedirects, signal })
    const status = response.statusCode ?? 0
    const part = status === 206 ? contentRangeOf(response) : undefined
    if ((status !== 200 && (status !== 206 || part === undefined)) || encodingProblem(response) !== undefined) {
      response.destroy()
      if (status >= 400 && status !== 416) throw statusError(this.#shown, status)
      debug('http GET %s: %d %s: asking with HEAD', JSON.stringify(this.#shown), status, response.headers['content-range'] ?? '')
      return await this.#head(lookup, signal)
    }
    const { 'accept-encoding': _, range: __, ...kept } = sent
    lookup.resolved = { url, headers: kept }
    // A plain `bytes=a-b` forwarded and answered 200: the origin ignores ranges, so the response is
    // planned as the whole file it already holds (no second request, and serve()'s one re-plan is
    // kept for a file that really changes). A suffix or open range answered 200 says less (some
    // origins only lack those): the planned part is then asked for itself. So does an empty file's
    // 200: it has no byte to range over (nginx answers any Range of it so), and its HEAD's
    // Accept-Ranges stands.
    const ignoresRanges = range !== undefined && status === 200 && /^bytes=\d+-\d+$/.test(range) && response.headers['content-length'] !== '0'
    const stat = ignoresRanges ? { ...statFromHeaders(response), ranges: false } : statFromHeaders(response)
    this.#ahead.hold({ response, range: part, stat })
    debug('http GET %s: %d, size %s, etag %s (metadata and body in one request)', JSON.stringify(this.#shown), status, stat.size ?? '?', stat.etag ?? '-')
    return stat
  }

  async #head (lookup: Lookup, signal: AbortSignal | undefined): Promise<FileStat> {
    const common = { timeout: this.#timeout, maxRedirects: this.#maxRedirects, signal, originBound: this.#originBound }
    const headers: OutgoingHttpHeaders = { ...this.#headers, 'accept-encoding': 'identity' }
    let { response, url, headers: sent } = await upstreamRequest(this.#href, { ...common, method: 'HEAD', headers })
    response.resume()
    let stat: FileStat | undefined
    // (Presigned where the redirects ended: a link of the app's that leads to a signed URL.)
    if (response.statusCode === 405 || response.statusCode === 501 || (response.statusCode === 403 && (looksPresigned(this.#href) || looksPresigned(url)))) {
      // No HEAD here: one byte of a GET gives the same headers (and the size, from Content-Range).
      // 403 too for a presigned URL (S3, GCS, Azure): it is signed for GET, its method included, so
      // the storage refuses a HEAD of it (403) and serves the GET. A GET refused as well is the same
      // 502. Any other 403 is the origin's answer: no second request (a counted or one-time link).
      ({ response, url, headers: sent } = await upstreamRequest(this.#href, { ...common, method: 'GET', headers: { ...headers, range: 'bytes=0-0' } }))
      response.destroy()
      // An empty file has no byte 0: RFC 9110 §15.5.17 answers 416 with `Content-Range: bytes */0`.
      if (response.statusCode === 416 && /^bytes \*\/0$/.test(response.headers['content-range'] ?? '')) stat = emptyStat(response)
    }
    const status = response.statusCode ?? 0
    if (stat === undefined && status !== 200 && status !== 206) throw statusError(this.#shown, status)
    // The GET would be refused for such a body (502): so is the HEAD that announces it, so that a
    // HEAD, a 304 or a 412 answer as the GET does.
    const encoded = stat === undefined ? encodingProblem(response) : undefined
    if (encoded !== undefined) {
      debug('http HEAD %s: %s', JSON.stringify(this.#shown), encoded)
      throw new DownloadError('E_UPSTREAM', `${this.#shown}: ${encoded}`)
    }
    const { 'accept-encoding': _, range: __, ...kept } = sent
    lookup.resolved = { url, headers: kept }
    stat ??= statFromHeaders(response)
    debug('http HEAD %s: %d, size %s, etag %s', JSON.stringify(this.#shown), status, stat.size ?? '?', stat.etag ?? '-')
    return stat
  }

  /**
   * A GET contradicted the stat() it was planned with: E_CHANGED, and serve() plans again with a
   * fresh stat(). If that stat() is the same as the contradicted one, the origin's HEAD and GET
   * disagree for good (not a file that changed): E_UPSTREAM, a 502.
   */
  #changed (stat: FileStat, differs: string, signal: AbortSignal | undefined): DownloadError {
    this.#lookups.delete(signal ?? this)
    // Per request (its abort signal): another request sharing this instance may have been planned
    // with the same cached stat() and must get its own re-plan, not this one's verdict.
    const key = signal ?? this
    const previous = contradictedStats.get(key)
    contradictedStats.set(key, stat)
    const again = previous !== undefined && sameStat(previous, stat)
    return again
      ? new DownloadError('E_UPSTREAM', `${this.#shown}: the GET disagrees with the HEAD again (${differs})`)
      : new DownloadError('E_CHANGED', `${this.#shown}: changed since stat() (${differs})`)
  }
}

/**
 * One request's stat() and the URL its redirects led to. A lookup made without a request's signal
 * (a route's own stat()) serves again only while it is pending or a second old: an instance the
 * app keeps does not answer from what the origin said long ago.
 */
class Lookup {
  stat: Promise<FileStat> = Promise.resolve({})
  resolved: { url: string, headers: OutgoingHttpHeaders } | undefined
  #settledAt: number | undefined

  settle (stat: Promise<FileStat>): void {
    this.stat = stat
    stat.then(() => { this.#settledAt = Date.now() }, () => { this.#settledAt = Date.now() })
  }

  fresh (): boolean {
    return this.#settledAt === undefined || Date.now() - this.#settledAt < 1000
  }
}

/** The last stat() a GET contradicted, per request (its abort signal; the instance without one): see #changed(). */
const contradictedStats = new WeakMap<object, FileStat>()

/**
 * Only size, type and validators are taken from the upstream: nothing else reaches the client. Of
 * a response whose body is the file's bytes (an encoded one is refused before: encodingProblem()).
 */
function statFromHeaders (response: IncomingMessage): FileStat {
  const h = response.headers
  let size: number | undefined
  if (response.statusCode === 206) {
    size = parseContentRange(h['content-range'])?.size
  } else if (/^\d+$/.test(h['content-length'] ?? '')) {
    size = Number(h['content-length'])
  }
  if (size !== undefined && !Number.isSafeInteger(size)) size = undefined
  const etag = h.etag !== undefined && parseEntityTag(h.etag) !== undefined && isHeaderSafe(h.etag) ? h.etag : undefined
  const modified = h['last-modified'] === undefined ? undefined : parseHttpDate(h['last-modified'])
  const type = h['content-type']
  return {
    size,
    etag,
    lastModified: modified === undefined || modified < 1000 ? undefined : new Date(modified),
    contentType: type !== undefined && type !== '' && isHeaderSafe(type) ? type : undefined,
    // Without Accept-Ranges: bytes (or with `none`) the file is always sent whole.
    ranges: size !== undefined && response.statusCode === 206 ? true : /\bbytes\b/i.test(h['accept-ranges'] ?? '') && size !== undefined
  }
}

/** An empty file, from the 416 (`bytes *\/0`) that answered `Range: bytes=0-0`: its validators, not its Content-Type (that of the error body). */
function emptyStat (response: IncomingMessage): FileStat {
  const { etag, lastModified } = statFromHeaders(response)
  return { size: 0, etag, lastModified, contentType: undefined, ranges: true }
}

/**
 * How a GET's headers contradict the stat() its response was planned with, or undefined: the
 * length (a 200's Content-Length, a 206's complete length in Content-Range), then the ETag (weak
 * comparison: another opaque tag is another representation), else — no ETag on one side —
 * Last-Modified. A header absent on either side is no contradiction.
 */
function contradiction (response: IncomingMessage, stat: FileStat): string | undefined {
  const h = response.headers
  if (stat.size !== undefined) {
    const size = response.statusCode === 206
      ? parseContentRange(h['content-range'])?.size
      : /^\d+$/.test(h['content-length'] ?? '') ? Number(h['content-length']) : undefined
    if (size !== undefined && size !== stat.size) return `${size} bytes, ${stat.size} planned`
  }
  const etag = h.etag === undefined ? undefined : parseEntityTag(h.etag)
  const planned = stat.etag === undefined ? undefined : parseEntityTag(stat.etag)
  if (etag !== undefined && planned !== undefined) {
    return etag.opaque === planned.opaque ? undefined : `ETag ${h.etag ?? ''}, ${stat.etag ?? ''} planned`
  }
  const modified = h['last-modified'] === undefined ? undefined : parseHttpDate(h['last-modified'])
  if (modified !== undefined && modified >= 1000 && stat.lastModified !== undefined && modified !== stat.lastModified.getTime()) {
    return `Last-Modified ${h['last-modified'] ?? ''}, ${stat.lastModified.toUTCString()} planned`
  }
  return undefined
}

/** Whether two stat() results describe the same bytes (size and validators). */
function sameStat (a: FileStat, b: FileStat): boolean {
  return a === b || (a.size === b.size && a.etag === b.etag && a.lastModified?.getTime() === b.lastModified?.getTime() && a.ranges === b.ranges)
}

/**
 * The response body, held to `expected` bytes: fewer or more is an error, and the byte that
 * completes them waits for the upstream's end (guardStream()). Without a Content-Length (chunked)
 * the upstream's length is only known at that end, so a body longer than planned (a file that
 * grew, under no validator) is cut short, never completed as if it were the file.
 */
function body (response: IncomingMessage, expected: number | undefined, timeout: number, url: string): Readable {
  return guardStream(response, { expected, idleTimeout: timeout, what: `http ${url}` })
}

/** The part a 206 carries (`Content-Range: bytes a-b/size`, a ≤ b < size, its length matching), else undefined. */
function contentRangeOf (response: IncomingMessage): ByteRange | undefined {
  const part = parseContentRange(response.headers['content-range'])
  if (part === undefined) return undefined
  const { start, end } = part
  const length = response.headers['content-length']
  if (length !== undefined && Number(length) !== end - start + 1) return undefined
  return { start, end }
}

/**
 * Why the body is not the file's bytes as they are, or undefined: a Content-Encoding other than
 * identity (Accept-Encoding: identity asked for none), or a transfer coding other than chunked.
 * Node undoes the chunked framing only: the body of a `Transfer-Encoding: gzip, chunked` (no TE
 * header asks for one) would reach the client still compressed, as if it were the file.
 */
function encodingProblem (response: IncomingMessage): string | undefined {
  const encoding = response.headers['content-encoding']
  if (encoding !== undefined && encoding !== '' && encoding.toLowerCase() !== 'identity') {
    return `Content-Encoding ${encoding} despite Accept-Encoding: identity`
  }
  const transfer = response.headers['transfer-encoding']
  if (transfer !== undefined && transfer.split(',').some((coding) => !/^\s*(chunked)?\s*$/i.test(coding))) {
    return `Transfer-Encoding ${transfer}: a transfer coding other than chunked`
  }
  return undefined
}

/** An origin's error status as the storages' and the generated proxy configurations' (UPSTREAM_STATUS_CODES). */
function statusError (url: string, status: number): DownloadError {
  return new DownloadError(upstreamStatusCode(status), `${url}: upstream ${status}`)
}

/** The last path segment, percent-decoded (a malformed escape is kept as is); query and fragment dropped. */
function nameOf (url: URL): string {
  const segment = url.pathname.slice(url.pathname.lastIndexOf('/') + 1)
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

function validate (options: HttpFileOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('HttpFile(): options must be an object')
  for (const key of Object.keys(options)) {
    if (!optionNames.has(key)) throw new TypeError(`HttpFile(): unknown option "${key}" (allowed: ${[...optionNames].join(', ')})`)
  }
  const { name, headers, timeout, maxRedirects, offloadable } = options
  if (name !== undefined && typeof name !== 'string') throw new TypeError('HttpFile(): name must be a string')
  if (offloadable !== undefined && typeof offloadable !== 'boolean') throw new TypeError('HttpFile(): offloadable must be a boolean')
  // setTimeout() takes at most 2^31 - 1 ms: a longer delay fires at once (every request a 504).
  if (timeout !== undefined && (!Number.isSafeInteger(timeout) || timeout < 1 || timeout > 2_147_483_647)) throw new TypeError('HttpFile(): timeout must be an integer from 1 to 2147483647 (ms)')
  if (maxRedirects !== undefined && (!Number.isSafeInteger(maxRedirects) || maxRedirects < 0)) throw new TypeError('HttpFile(): maxRedirects must be a non-negative integer')
  if (headers !== undefined) {
    // A Map or a fetch Headers holds its entries where Object.entries() sees none: no header would
    // be sent (the origin's 401 a 502), and the file would count as offloadable.
    const prototype = headers === null || typeof headers !== 'object' ? undefined : Object.getPrototypeOf(headers) as unknown
    if (prototype !== Object.prototype && prototype !== null) throw new TypeError('HttpFile(): headers must be a plain object of strings (not a Map or a fetch Headers: pass Object.fromEntries(headers))')
    for (const [header, value] of Object.entries(headers)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header) || typeof value !== 'string' || !isHeaderSafe(value)) {
        throw new TypeError(`HttpFile(): headers["${header}"] must be a valid header name with a header-safe string value`)
      }
      if (reservedHeaders.has(header.toLowerCase())) throw new TypeError(`HttpFile(): headers may not set ${header} (HttpFile manages it)`)
    }
  }
}
