import type { Transform } from 'node:stream'
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import type { IncomingHttpHeaders } from 'node:http'
import { wellFormedEtag } from './etag.ts'
import { formatHttpDate, parseHttpDate } from './http-date.ts'
import { evaluatePreconditions, ifRangeAllows } from './preconditions.ts'
import type { Validators } from './preconditions.ts'
import { NOSNIFF, SANDBOX } from './presentation.ts'
import type { Presentation } from './presentation.ts'
import { parseRange } from './range.ts'
import type { RangeLimits } from './range.ts'
import type { ByteRange, FileStat } from './types.ts'

export interface PlanOptions {
  /** Send ETag (and evaluate ETag preconditions). @default true */
  etag: boolean
  /** Send Last-Modified (and evaluate date preconditions). @default true */
  lastModified: boolean
  /** Serve Range requests. @default true */
  ranges: boolean
  rangeLimits: RangeLimits
}

/**
 * What to answer, decided from the request headers, the file's stat and its presentation alone —
 * before anything is opened. `headers` are the response headers to set (null = remove).
 */
export type ResponsePlan =
  | { status: 304, headers: Record<string, string | null>, reason: string }
  | { status: 412, reason: string }
  | { status: 416, size: number, reason: string }
  | {
    status: 200 | 206
    headers: Record<string, string | null>
    /** undefined = the whole file; one range = single-part 206; several = multipart 206 */
    ranges: ByteRange[] | undefined
    /** Content-Length of a single body, undefined when unknown (chunked) or multipart */
    length: number | undefined
    /** The stored coding to undo, for a client that does not accept it (the body is decoded, its length unknown). */
    decode?: DecodableCoding | undefined
    reason: string
  }

export function planResponse (method: string, request: IncomingHttpHeaders, stat: FileStat, presentation: Presentation, options: PlanOptions, now: number): ResponsePlan {
  const coding = storedCoding(stat)
  // Stored coded (an object uploaded gzip-compressed) for a client that does not accept the coding
  // (Accept-Encoding: identity — wget —, or gzip;q=0): the bytes are decoded, as GCS's own
  // "decompressive transcoding" does (RFC 9110 §12.5.3). Another representation: its own ETag,
  // no length, no ranges.
  const decode = codingToUndo(coding, request['accept-encoding'])
  const etag = options.etag ? wellFormedEtag(stat.etag) : undefined
  const validators: Validators = {
    etag: decode === undefined || etag === undefined ? etag : decodedEtag(etag),
    lastModified: options.lastModified ? lastModifiedOf(stat, now) : undefined
  }
  const size = decode === undefined ? stat.size : undefined
  const rangeable = options.ranges && size !== undefined && stat.ranges !== false

  const precondition = evaluatePreconditions(method, request, validators)
  if (precondition.status === 412) return { status: 412, reason: precondition.reason }

  const headers: Record<string, string | null> = {}
  // A Last-Modified of this very second (a file just written, or one dated in the future): the
  // Date is set to the same second. Node's own Date comes from a cache that a timer renews each
  // second, so under load it can still name the previous one, earlier than Last-Modified.
  if (validators.lastModified !== undefined && validators.lastModified === Math.floor(now / 1000) * 1000) headers.Date = formatHttpDate(validators.lastModified)
  if (validators.etag !== undefined) headers.ETag = validators.etag
  if (presentation.cacheControl !== undefined) headers['Cache-Control'] = presentation.cacheControl
  // Coded and decoded are two representations, chosen by Accept-Encoding: caches must key on it.
  if (coding !== undefined) headers.Vary = 'Accept-Encoding'
  if (precondition.status === 304) {
    // RFC 9110 §15.4.5: the validators and caching headers a 200 would carry, Last-Modified only without an ETag.
    if (validators.etag === undefined && validators.lastModified !== undefined) headers['Last-Modified'] = formatHttpDate(validators.lastModified)
    // (nor one the route set: the 200 carries the file's, and a cache would merge the route's in)
    else headers['Last-Modified'] = null
    // No representation metadata (§15.4.5): a Content-Disposition the route set (ctx.attachment())
    // goes too. The 200 carries the download's own, and a cache merges a 304's fields into the
    // stored 200: the route's name would replace it there.
    headers['Content-Disposition'] = null
    // But the sandbox of an inline page stays: a cache replaces the stored Content-Security-Policy
    // with a 304's (RFC 9111 §3.2), so a 304 carrying only the app's own policy (a site-wide CSP,
    // koa-helmet's) took the sandbox off the stored page, whose script then ran in the app's origin
    // on the next visit (measured with Chromium). Attachments skip the type lookup.
    if (presentation.sandboxed) headers['Content-Security-Policy'] = SANDBOX
    return { status: 304, headers, reason: precondition.reason }
  }

  if (validators.lastModified !== undefined) headers['Last-Modified'] = formatHttpDate(validators.lastModified)
  headers['Content-Type'] = presentation.contentType
  headers['Content-Disposition'] = presentation.contentDisposition
  headers['X-Content-Type-Options'] = NOSNIFF
  if (presentation.sandboxed) headers['Content-Security-Policy'] = SANDBOX
  headers['Accept-Ranges'] = rangeable ? 'bytes' : 'none'
  if (decode !== undefined) return { status: 200, headers, ranges: undefined, length: undefined, decode, reason: `${decode}-coded, decoded for a client that does not accept ${decode}` }
  if (coding !== undefined) headers['Content-Encoding'] = coding

  const range = request.range
  if (method === 'GET' && range !== undefined && rangeable) {
    const ifRange = request['if-range']
    // Node joins repeated headers it does not know with ', '; the array form only appears for set-cookie.
    const ifRangeValue = ifRange === undefined || typeof ifRange === 'string' ? ifRange : ifRange.join(', ')
    if (ifRangeValue !== undefined && !ifRangeAllows(ifRangeValue, validators, now)) {
      // The date of the file's Last-Modified, refused as weak (of the current second): the whole
      // file, without that Last-Modified. A server in front that applies ranges itself (lighttpd
      // runs its range code on every complete 200 it proxies, comparing If-Range to Last-Modified
      // alone) would otherwise match the date and cut the range out of this 200 (measured with
      // lighttpd 1.4.69: a small file's 206 of the new version, for a resume of the old).
      if (validators.lastModified !== undefined && parseHttpDate(ifRangeValue) === Math.floor(validators.lastModified / 1000) * 1000) {
        delete headers['Last-Modified']
        return full(headers, size, 'If-Range names a Last-Modified of the current second (weak): the whole file, without it')
      }
      return full(headers, size, 'If-Range does not match: the whole file')
    }
    const parsed = parseRange(range, size, options.rangeLimits)
    if (parsed.type === 'unsatisfiable') return { status: 416, size, reason: `no satisfiable range in ${JSON.stringify(range)}` }
    if (parsed.type === 'ranges') {
      const ranges = parsed.ranges
      const first = ranges[0]
      if (ranges.length === 1 && first !== undefined) {
        headers['Content-Range'] = `bytes ${first.start}-${first.end}/${size}`
        return { status: 206, headers, ranges, length: first.end - first.start + 1, reason: `range ${first.start}-${first.end} of ${size}` }
      }
      // A coding describes the whole body; the parts of a multipart body have no header for it.
      if (coding !== undefined) return full(headers, size, `several ranges of ${coding}-coded bytes: the whole file`)
      return { status: 206, headers, ranges, length: undefined, reason: `${ranges.length} ranges of ${size} (multipart)` }
    }
    return full(headers, size, `Range ignored: ${parsed.reason}`)
  }
  return full(headers, size, method === 'HEAD' ? 'HEAD' : 'the whole file')
}

function full (headers: Record<string, string | null>, size: number | undefined, reason: string): ResponsePlan {
  return { status: 200, headers, ranges: undefined, length: size, reason }
}

const CODING = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** The stored codings serve() can undo (node:zlib), one at a time. */
export type DecodableCoding = 'gzip' | 'x-gzip' | 'deflate' | 'br'

export function isDecodable (coding: string): coding is DecodableCoding {
  return coding === 'gzip' || coding === 'x-gzip' || coding === 'deflate' || coding === 'br'
}

/** The node:zlib stream that undoes `coding` (serve()'s decoding, and `check` comparing a compressed body). */
export function decoderFor (coding: DecodableCoding): Transform {
  // Bytes after the end of a deflate or brotli stream are not what the coding says: zlib would drop
  // them and end well, so they are refused (the option is Node 24.19's; an older Node ignores it).
  // Gunzip refuses them itself, unless they are further gzip members, which RFC 1952 allows, or
  // zero bytes (padding), which it passes.
  return coding === 'br' ? createBrotliDecompress({ rejectGarbageAfterEnd: true }) : coding === 'deflate' ? createInflate({ rejectGarbageAfterEnd: true }) : createGunzip()
}

/**
 * The stored coding (a contentCodingOf() value) that serve() undoes for a client whose
 * Accept-Encoding refuses it; undefined when the client accepts it, or when it is none or several.
 */
export function codingToUndo (coding: string | undefined, acceptEncoding: string | string[] | undefined): DecodableCoding | undefined {
  if (coding === undefined || !isDecodable(coding) || acceptsCoding(acceptEncoding, coding)) return undefined
  // A field that refuses identity too (`identity;q=0`, `*;q=0`) accepts nothing the server has:
  // it is disregarded (§12.1; §12.5.3 sends the bytes uncoded "unless the identity coding is
  // indicated as unacceptable"), and the stored bytes go out as stored.
  return acceptEncoding !== undefined && qualityOf(acceptEncoding, ['identity']) === 0 ? undefined : coding
}

/**
 * Whether Accept-Encoding accepts `coding` (RFC 9110 §12.5.3): no field accepts any coding; an
 * empty one none; else the coding's own member (`x-gzip` and `gzip` are one), or `*`, with a
 * qvalue above 0. A member that is not `token[;q=…]` is skipped.
 */
export function acceptsCoding (field: string | string[] | undefined, coding: string): boolean {
  if (field === undefined) return true
  return (qualityOf(field, coding === 'gzip' || coding === 'x-gzip' ? ['gzip', 'x-gzip'] : [coding]) ?? 0) > 0
}

/** The qvalue Accept-Encoding gives one of `names` (their own member, else `*`); undefined when neither is listed. */
function qualityOf (field: string | string[], names: readonly string[]): number | undefined {
  let own: number | undefined
  let any: number | undefined
  for (const member of (Array.isArray(field) ? field.join(',') : field).split(',')) {
    const match = ACCEPT_MEMBER.exec(member)
    if (match === null) continue
    const name = (match[1] as string).toLowerCase()
    const q = match[2] === undefined ? 1 : Number(match[2])
    if (names.includes(name)) own = Math.max(own ?? 0, q)
    else if (name === '*') any = q
  }
  return own ?? any
}

const ACCEPT_MEMBER = /^[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*(?:;[ \t]*[qQ][ \t]*=[ \t]*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)[ \t]*)?$/

/** The ETag of the decoded representation: another opaque-tag than the coded one's, as weak or strong as it. */
function decodedEtag (etag: string): string {
  const weak = etag.startsWith('W/')
  return `${weak ? 'W/' : ''}"${etag.slice(weak ? 3 : 1, -1)}-decoded"`
}

/** The coding `stat` says its bytes are stored with (contentCodingOf() of its contentEncoding), if any. */
export function storedCoding (stat: FileStat): string | undefined {
  return stat.contentEncoding === undefined ? undefined : contentCodingOf(stat.contentEncoding)
}

/**
 * A stored coding as a Content-Encoding value (RFC 9110 §8.4): lower-cased tokens, without
 * `identity` (no coding) and `aws-chunked` (an upload framing some S3-compatible stores keep in the
 * metadata, not a coding of the stored bytes). Anything else that is not a token list: none.
 */
export function contentCodingOf (value: string): string | undefined {
  const codings: string[] = []
  for (const part of value.split(',')) {
    const coding = part.trim().toLowerCase()
    if (coding === '' || coding === 'identity' || coding === 'aws-chunked') continue
    if (!CODING.test(coding)) return undefined
    codings.push(coding)
  }
  return codings.length === 0 ? undefined : codings.join(', ')
}

/**
 * Whole seconds (HTTP dates have no more); none when unknown or at the Unix epoch. A time after
 * `now` (a clock ahead, a file touched into the future) is `now`: RFC 9110 §8.8.2.1 forbids a
 * Last-Modified later than the response's Date, and the date preconditions compare with what is
 * sent (a future date would keep answering If-Modified-Since with 304 after the file changed).
 */
export function lastModifiedOf (stat: FileStat, now: number): number | undefined {
  // A wrapper's number or string where a Date belongs says nothing sure: no Last-Modified (not a 500).
  const modified = stat.lastModified as { getTime?: unknown } | undefined
  const time = typeof modified?.getTime === 'function' ? (modified as Date).getTime() : undefined
  if (typeof time !== 'number' || Number.isNaN(time) || time < 1000) return undefined
  return Math.floor(Math.min(time, now) / 1000) * 1000
}
