import type { RawResponse } from './raw-http.ts'

/** What the test knows about the file it served: its bytes and current validators. */
export interface Served {
  bytes: Buffer
  etag: string | undefined
  /** Last-Modified in ms (whole seconds), when the file has one. */
  lastModified: number | undefined
  /**
   * `false`: the source cannot read a part (an origin that ignores Range, a storage driver without
   * ranged reads), so Range is ignored: every answer is the whole file, with `Accept-Ranges: none`.
   */
  ranges?: false | undefined
  /**
   * `false`: the size is unknown until the body ends (an origin that sends it chunked, without
   * Content-Length): a 200 is chunked, without Content-Length, and Range is ignored.
   */
  sized?: false | undefined
}

export interface Sent {
  method: 'GET' | 'HEAD'
  headers: Record<string, string>
}

/**
 * An independent, deliberately small reading of RFC 9110 for download responses: it shares no code
 * with the library. Returns every problem found (empty = valid).
 */
export function checkResponse (sent: Sent, res: RawResponse, file: Served): string[] {
  const problems: string[] = []
  const h = res.headers
  const has = (name: string): boolean => sent.headers[name] !== undefined
  const size = file.bytes.length
  const allowed = new Set([200])
  // A date field that is not one HTTP-date is ignored (§13.1.3, §13.1.4): it cannot cause a 304 or 412.
  const validDate = (name: string): boolean => sent.headers[name] !== undefined && parseDate(sent.headers[name] ?? '') !== undefined
  // If-None-Match allows a 304 when it is `*` or one of its members is the current ETag (a reader
  // may skip a malformed member, never read one: `*x` is not `*`, `"tag" junk` not "tag").
  if (noneMatchMayMatch(sent.headers['if-none-match'], file.etag) || validDate('if-modified-since')) allowed.add(304)
  if (has('if-match') || validDate('if-unmodified-since')) allowed.add(412)
  const rangeable = file.ranges !== false && file.sized !== false
  const latitude = sent.method === 'GET' && rangeable ? rangeLatitude(sent.headers.range, size) : 'ignore'
  if (latitude !== 'ignore') allowed.add(206)
  if (latitude === 'either') allowed.add(416)
  if (!allowed.has(res.status)) problems.push(`status ${res.status} is not one of ${[...allowed].join(', ')} for this request${latitude === 'honour' && res.status === 416 ? ' (one satisfiable byte range: honour it or send the whole file)' : ''}`)
  if (res.status >= 500) problems.push(`a ${res.status}`)
  if (!res.complete) problems.push('the body is shorter than its framing promised')

  // Exact statuses that follow from the request alone.
  const inm = sent.headers['if-none-match']
  const unconditional = !has('if-match') && !has('if-unmodified-since')
  if (unconditional && inm !== undefined && file.etag !== undefined && listHas(inm, file.etag, true) && res.status !== 304) {
    problems.push(`If-None-Match lists the current ETag ${file.etag}: expected 304, got ${res.status}`)
  }
  if (sent.headers['if-match'] === '*' && res.status === 412 && !has('if-unmodified-since')) problems.push('If-Match: * failed on an existing file')
  if (has('if-match') && file.etag !== undefined && listHas(sent.headers['if-match'] ?? '', file.etag, false) && res.status === 412) {
    problems.push('If-Match lists the current strong ETag, yet 412')
  }
  // If-Range (§13.1.5): the part only when it names the current representation by a strong
  // validator; a weak or another tag, a date that is not Last-Modified (or none) → the whole file.
  const ifRange = sent.headers['if-range']
  if (res.status === 206 && ifRange !== undefined && !ifRangeMatches(ifRange, file)) problems.push(`206 although If-Range ${ifRange} does not name the current representation strongly`)

  const disposition = h['content-disposition']
  if (disposition !== undefined) problems.push(...checkDisposition(disposition))
  if (/[^\x20-\x7e\t]/.test(res.head.split('\r\n').slice(1).join(''))) problems.push('a header with a byte outside visible ASCII')

  switch (res.status) {
    case 200: {
      if (file.sized === false) {
        if (h['content-length'] !== undefined) problems.push(`200 of a source of unknown size with Content-Length ${h['content-length']}`)
        if (sent.method === 'GET' && h['transfer-encoding']?.toLowerCase() !== 'chunked') problems.push('200 of a source of unknown size, not chunked')
      } else if (h['content-length'] !== String(size)) {
        problems.push(`200: Content-Length ${h['content-length']} is not the size ${size}`)
      }
      if (!rangeable && h['accept-ranges'] !== 'none') problems.push(`200 of a source without ranges with Accept-Ranges ${h['accept-ranges']}`)
      if (sent.method === 'GET' && !res.body.equals(file.bytes)) problems.push('200: the body is not the file')
      if (h['content-range'] !== undefined) problems.push('200 with Content-Range')
      if (h['content-type'] === undefined) problems.push('200 without Content-Type')
      if (file.etag !== undefined && h.etag !== file.etag) problems.push(`200: ETag ${h.etag} is not ${file.etag}`)
      break
    }
    case 206: {
      if (sent.method !== 'GET') problems.push('206 to a HEAD')
      if (h['content-length'] !== String(res.body.length)) problems.push(`206: Content-Length ${h['content-length']} is not the body length ${res.body.length}`)
      const type = h['content-type'] ?? ''
      const boundary = /^multipart\/byteranges; ?boundary=("?)([0-9A-Za-z'()+_,\-./:=? ]{1,70})\1$/i.exec(type)?.[2]
      if (boundary !== undefined) {
        if (h['content-range'] !== undefined) problems.push('multipart 206 with a top-level Content-Range')
        problems.push(...checkMultipart(res.body, boundary, file.bytes))
      } else {
        const range = parseContentRange(h['content-range'])
        if (range === undefined || range.size !== size || range.first > range.last || range.last >= size) {
          problems.push(`206: Content-Range ${h['content-range']} is not bytes a-b/${size}`)
        } else {
          if (range.last - range.first + 1 !== res.body.length) problems.push(`206: Content-Range ${h['content-range']} does not match the body length ${res.body.length}`)
          if (!res.body.equals(file.bytes.subarray(range.first, range.last + 1))) problems.push(`206: the body is not bytes ${range.first}-${range.last} of the file`)
        }
      }
      break
    }
    case 416: {
      if (h['content-range'] !== `bytes */${size}`) problems.push(`416: Content-Range ${h['content-range']} is not bytes */${size}`)
      checkErrorHygiene(sent, res, problems)
      break
    }
    case 304: {
      if (res.body.length !== 0) problems.push('304 with a body')
      for (const name of ['content-type', 'content-length', 'content-range', 'content-disposition', 'transfer-encoding']) {
        if (h[name] !== undefined) problems.push(`304 with ${name}`)
      }
      if (file.etag !== undefined && h.etag !== file.etag) problems.push(`304 without the current ETag (${h.etag})`)
      break
    }
    case 412: {
      checkErrorHygiene(sent, res, problems)
      break
    }
  }
  return problems
}

/**
 * What a response must agree on with the plain 200 of the same file (`reference`: the headers of an
 * unconditional GET): a 200 or 206 carries the same validators, Cache-Control, Content-Disposition,
 * Accept-Ranges and Content-Encoding (and Content-Type, but for the multipart one); a 304 the
 * ETag and Cache-Control the 200 would (§15.4.5), and its Last-Modified when there is no ETag.
 */
export function checkConsistency (res: RawResponse, reference: Record<string, string>): string[] {
  const problems: string[] = []
  const h = res.headers
  const same = (name: string): void => {
    if (h[name] !== reference[name]) problems.push(`${res.status}: ${name} ${h[name]} is not the 200's ${reference[name]}`)
  }
  if (res.status === 200 || res.status === 206) {
    for (const name of ['etag', 'last-modified', 'cache-control', 'content-disposition', 'accept-ranges', 'content-encoding']) same(name)
    if (h['content-type']?.startsWith('multipart/byteranges') !== true) same('content-type')
  } else if (res.status === 304) {
    same('etag')
    same('cache-control')
    if (reference.etag === undefined || h['last-modified'] !== undefined) same('last-modified')
  }
  return problems
}

/** Fields that may differ between two responses to the same request: the connection's, the framing's, the clock's. */
const unrelated = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])

/**
 * HEAD (§9.3.2): the status and header fields the GET of the same request gets — without its
 * Range and If-Range, which a HEAD ignores (§14.2) —, Content-Length included, and no body.
 */
export function checkHeadMatchesGet (head: RawResponse, get: RawResponse): string[] {
  const problems: string[] = []
  if (head.status !== get.status) return [`HEAD ${head.status}, GET ${get.status}`]
  if (head.body.length !== 0) problems.push('HEAD with a body')
  for (const name of new Set([...Object.keys(head.headers), ...Object.keys(get.headers)])) {
    if (unrelated.has(name)) continue
    if (head.headers[name] !== get.headers[name]) problems.push(`${name}: HEAD ${head.headers[name]}, GET ${get.headers[name]}`)
  }
  return problems
}

function checkErrorHygiene (sent: Sent, res: RawResponse, problems: string[]): void {
  for (const name of ['etag', 'last-modified', 'content-disposition', 'accept-ranges']) {
    if (res.headers[name] !== undefined) problems.push(`${res.status} with ${name}`)
  }
  // HEAD carries the Content-Length the GET's error body would have, and no body.
  if (sent.method === 'GET' && res.headers['content-length'] !== String(res.body.length)) problems.push(`${res.status}: Content-Length is not the error body's length`)
  if (sent.method === 'HEAD' && res.body.length !== 0) problems.push(`${res.status} to a HEAD with a body`)
}

/**
 * What RFC 9110 lets a server do with a GET's Range, read from the value alone. `'ignore'`: no
 * Range, or a unit other than `bytes` — an unknown unit MUST be ignored (§14.2): the whole file
 * only. `'honour'`: one valid byte range, satisfiable (§14.1.1), of a non-empty file, its unit in
 * any case (units are case-insensitive, §14.1): the part, or the whole file (a server MAY ignore
 * Range), never 416. `'either'`: anything else — an invalid or unsatisfiable range set, or several
 * ranges, which a server MAY reject (§14.2) —: the part, the whole file or 416. Numbers of any
 * length count: a last-pos or suffix-length past 64 bits still makes a satisfiable range
 * (§14.1.2), which offload() streams where the proxies would answer 416.
 */
function rangeLatitude (value: string | undefined, size: number): 'ignore' | 'honour' | 'either' {
  if (value === undefined) return 'ignore'
  const unit = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)=/.exec(value)?.[1]
  if (unit !== undefined && unit.toLowerCase() !== 'bytes') return 'ignore'
  const single = /^bytes=(?:(\d+)-(\d*)|-(\d+))$/i.exec(value)
  if (single === null || size === 0) return 'either'
  const [, first, last, suffix] = single
  if (suffix !== undefined) return BigInt(suffix) > 0n ? 'honour' : 'either'
  if (first === undefined) return 'either'
  if (last !== undefined && last !== '' && BigInt(last) < BigInt(first)) return 'either'
  return BigInt(first) < BigInt(size) ? 'honour' : 'either'
}

/** Whether If-Range's value names `file` by its strong ETag, or by exactly its Last-Modified. */
function ifRangeMatches (value: string, file: Served): boolean {
  if (value.startsWith('"') || value.startsWith('W/')) return file.etag !== undefined && !file.etag.startsWith('W/') && value === file.etag
  return file.lastModified !== undefined && parseDate(value) === file.lastModified
}

const monthNames = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** The three HTTP-date forms of §5.6.7, strictly (ms), else undefined. The weekday is not checked. */
export function parseDate (value: string): number | undefined {
  let fields: [day: string, month: string, year: number, time: string] | undefined
  const imf = /^[A-Z][a-z]{2}, (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d:\d\d:\d\d) GMT$/.exec(value)
  const rfc850 = /^[A-Z][a-z]+day, (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d:\d\d:\d\d) GMT$/.exec(value)
  const asctime = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d\d:\d\d:\d\d) (\d{4})$/.exec(value)
  if (imf !== null) fields = [imf[1] ?? '', imf[2] ?? '', Number(imf[3]), imf[4] ?? '']
  if (rfc850 !== null) {
    // A two-digit year more than 50 years ahead is in the past century.
    const year = 2000 + Number(rfc850[3])
    fields = [rfc850[1] ?? '', rfc850[2] ?? '', year > new Date().getUTCFullYear() + 50 ? year - 100 : year, rfc850[4] ?? '']
  }
  if (asctime !== null) fields = [asctime[2] ?? '', asctime[1] ?? '', Number(asctime[4]), asctime[3] ?? '']
  if (fields === undefined) return undefined
  const [day, month, year, time] = [Number(fields[0]), monthNames.indexOf(fields[1]), fields[2], fields[3].split(':').map(Number)]
  const [hours = 0, minutes = 0, seconds = 0] = time
  if (month === -1 || day < 1 || day > 31 || hours > 23 || minutes > 59 || seconds > 60) return undefined
  return Date.UTC(year, month, day, hours, minutes, seconds)
}

/** Whether a comma list of entity-tags contains `etag` (weak comparison when `weak`; strong: neither side W/). */
function noneMatchMayMatch (list: string | undefined, etag: string | undefined): boolean {
  if (list === undefined) return false
  if (/^[ \t]*\*[ \t]*$/.test(list)) return true
  if (etag === undefined) return false
  const opaque = (tag: string): string => tag.replace(/^W\//, '')
  // Members: an entity-tag followed by OWS and a comma or the end; anything else is skipped to
  // the next comma (a tag may hold commas itself: `"a,b"`).
  const member = /[ \t,]*((?:W\/)?"[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)|[ \t,]*[^,]*,?/y
  for (let m = member.exec(list); m !== null && m[0] !== ''; m = member.exec(list)) {
    if (m[1] !== undefined && opaque(m[1]) === opaque(etag)) return true
  }
  return false
}

function listHas (list: string, etag: string, weak: boolean): boolean {
  const tags = list.match(/(?:W\/)?"[^"]*"/g) ?? []
  // Only count it when the whole header is a clean list, as a strict reader would.
  if (!/^\s*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"\s*)?(?:,\s*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"\s*)?)*$/.test(list)) return false
  const opaque = (tag: string): string => tag.replace(/^W\//, '')
  return tags.some((tag) => weak ? opaque(tag) === opaque(etag) : tag === etag && !etag.startsWith('W/'))
}

export function parseContentRange (value: string | undefined): { first: number, last: number, size: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value ?? '')
  if (m === null) return undefined
  return { first: Number(m[1]), last: Number(m[2]), size: Number(m[3]) }
}

/** Parses a multipart/byteranges body strictly and compares each part with the file. */
export function checkMultipart (body: Buffer, boundary: string, file: Buffer): string[] {
  const problems: string[] = []
  const delimiter = Buffer.from(`--${boundary}`, 'latin1')
  let parts = 0
  // RFC 2046 §5.1.1: multipart-body := [preamble CRLF] dash-boundary …; nginx and Apache send an
  // empty preamble (the body starts with CRLF--boundary). Any other preamble is not taken.
  let at = body.subarray(0, 2).toString('latin1') === '\r\n' ? 2 : 0
  if (!body.subarray(at, at + delimiter.length).equals(delimiter)) return ['multipart: the body does not start with --boundary']
  at += delimiter.length
  for (;;) {
    if (body.subarray(at, at + 2).toString('latin1') === '--') {
      if (body.subarray(at + 2).toString('latin1') !== '\r\n' && at + 2 !== body.length) problems.push('multipart: bytes after the closing delimiter')
      break
    }
    if (body.subarray(at, at + 2).toString('latin1') !== '\r\n') return [...problems, `multipart: no CRLF after a delimiter at ${at}`]
    const headEnd = body.indexOf('\r\n\r\n', at + 2)
    if (headEnd === -1) return [...problems, 'multipart: a part without a header end']
    const fields = body.subarray(at + 2, headEnd).toString('latin1').split('\r\n')
    const range = parseContentRange(fields.find((f) => /^content-range:/i.test(f))?.replace(/^content-range:\s*/i, ''))
    if (!fields.some((f) => /^content-type:\s*\S/i.test(f))) problems.push(`multipart: part ${parts} without Content-Type`)
    if (range === undefined || range.size !== file.length || range.first > range.last || range.last >= file.length) {
      return [...problems, `multipart: part ${parts} has a bad Content-Range (${fields.join(' | ')})`]
    }
    const start = headEnd + 4
    const end = start + range.last - range.first + 1
    if (!body.subarray(start, end).equals(file.subarray(range.first, range.last + 1))) problems.push(`multipart: part ${parts} is not bytes ${range.first}-${range.last}`)
    const next = Buffer.concat([Buffer.from('\r\n'), delimiter])
    if (!body.subarray(end, end + next.length).equals(next)) return [...problems, `multipart: part ${parts} not followed by CRLF--boundary`]
    at = end + next.length
    parts++
  }
  if (parts < 2) problems.push(`multipart with ${parts} part(s): a single range must not be multipart`)
  return problems
}

/** RFC 6266 + 8187, read independently: pure ASCII, a type, an optional quoted fallback and filename*. */
export function checkDisposition (value: string): string[] {
  const problems: string[] = []
  if (!/^[\x20-\x7e]*$/.test(value)) problems.push(`Content-Disposition is not printable ASCII: ${JSON.stringify(value)}`)
  const m = /^(attachment|inline)(?:; filename="((?:[^"\\]|\\.)*)")?(?:; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*))?$/.exec(value)
  if (m === null) return [...problems, `Content-Disposition does not parse: ${JSON.stringify(value)}`]
  const fallback = m[2]?.replace(/\\(.)/g, '$1')
  const extended = m[3]
  if (fallback !== undefined) {
    if (/[%/\\]/.test(fallback)) problems.push(`fallback filename with %, / or \\: ${JSON.stringify(fallback)}`)
    if (fallback === '' || fallback === '.' || fallback === '..') problems.push(`fallback filename ${JSON.stringify(fallback)}`)
  }
  if (extended !== undefined) {
    if (fallback === undefined) problems.push('filename* without the fallback filename first')
    if (/%(?![0-9A-F]{2})/.test(extended)) problems.push(`filename* with a bad escape: ${extended}`)
    let name: string | undefined
    try { name = decodeURIComponent(extended) } catch { problems.push(`filename* is not UTF-8: ${extended}`) }
    if (name !== undefined) {
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069/\\]/.test(name)) problems.push(`filename* decodes to a name with a control, bidi or separator: ${JSON.stringify(name)}`)
      if (name === '' || name === '.' || name === '..') problems.push(`filename* decodes to ${JSON.stringify(name)}`)
      if (name !== name.normalize('NFC')) problems.push('filename* is not NFC')
    }
  }
  return problems
}
