import type { RawResponse } from './raw-http.ts'

/** What the test knows about the file it served: its bytes and current validators. */
export interface Served {
  bytes: Buffer
  etag: string | undefined
  /** Last-Modified in ms (whole seconds), when the file has one. */
  lastModified: number | undefined
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
  if (has('if-none-match') || has('if-modified-since')) allowed.add(304)
  if (has('if-match') || has('if-unmodified-since')) allowed.add(412)
  if (sent.method === 'GET' && has('range')) { allowed.add(206); allowed.add(416) }
  if (!allowed.has(res.status)) problems.push(`status ${res.status} is not one of ${[...allowed].join(', ')} for this request`)
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

  const disposition = h['content-disposition']
  if (disposition !== undefined) problems.push(...checkDisposition(disposition))
  if (/[^\x20-\x7e\t]/.test(res.head.split('\r\n').slice(1).join(''))) problems.push('a header with a byte outside visible ASCII')

  switch (res.status) {
    case 200: {
      if (h['content-length'] !== String(size)) problems.push(`200: Content-Length ${h['content-length']} is not the size ${size}`)
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

function checkErrorHygiene (sent: Sent, res: RawResponse, problems: string[]): void {
  for (const name of ['etag', 'last-modified', 'content-disposition', 'accept-ranges']) {
    if (res.headers[name] !== undefined) problems.push(`${res.status} with ${name}`)
  }
  // HEAD carries the Content-Length the GET's error body would have, and no body.
  if (sent.method === 'GET' && res.headers['content-length'] !== String(res.body.length)) problems.push(`${res.status}: Content-Length is not the error body's length`)
  if (sent.method === 'HEAD' && res.body.length !== 0) problems.push(`${res.status} to a HEAD with a body`)
}

/** Whether a comma list of entity-tags contains `etag` (weak comparison when `weak`; strong: neither side W/). */
function listHas (list: string, etag: string, weak: boolean): boolean {
  const tags = list.match(/(?:W\/)?"[^"]*"/g) ?? []
  // Only count it when the whole header is a clean list, as a strict reader would.
  if (!/^\s*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"\s*)?(?:,\s*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"\s*)?)*$/.test(list)) return false
  const opaque = (tag: string): string => tag.replace(/^W\//, '')
  return tags.some((tag) => weak ? opaque(tag) === opaque(etag) : tag === etag && !etag.startsWith('W/'))
}

function parseContentRange (value: string | undefined): { first: number, last: number, size: number } | undefined {
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
