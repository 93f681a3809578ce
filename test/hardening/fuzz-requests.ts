import fc from 'fast-check'
import type { Sent, Served } from './rfc9110-check.ts'

// The request generators of the RFC 9110 fuzz tests (fuzz-headers: local and in-memory files;
// fuzz-sources: storage and remote sources; fuzz-offload: the same requests through each real
// proxy), aimed at one file's validators.

/** The modification time the tests give their files; dates are generated around it for a file that has no Last-Modified. */
export const mtime = Date.UTC(2024, 2, 10, 12, 30, 15)

/** Any byte a client can put in a header value: visible ASCII, space, tab and obs-text. */
const headerChar = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.constant(0x09), fc.integer({ min: 0x80, max: 0xff })).map((c) => String.fromCharCode(c))
const garbage = fc.string({ unit: headerChar, maxLength: 40 })

const number = fc.oneof(
  fc.nat({ max: 1100 }),
  fc.constantFrom(0, 1, 999, 1000, 1001, 2 ** 31, 2 ** 53 - 1)
).map(String).chain((n) => fc.oneof(
  { arbitrary: fc.constant(n), weight: 8 },
  fc.constantFrom('99999999999999999999999', '18446744073709551615', '9223372036854775807', '000000000000000000000007', '+5', '-0', ' 5', '5 ', '0x10', '1e3', '', '٣')
))

const spec = fc.oneof(
  { arbitrary: fc.tuple(fc.nat({ max: 1100 }), fc.nat({ max: 120 })).map(([a, length]) => `${a}-${a + length}`), weight: 8 },
  { arbitrary: fc.tuple(number, number).map(([a, b]) => `${a}-${b}`), weight: 2 },
  { arbitrary: number.map((a) => `${a}-`), weight: 3 },
  { arbitrary: number.map((a) => `-${a}`), weight: 3 },
  { arbitrary: garbage, weight: 1 }
)

const unit = fc.constantFrom('bytes', 'bytes', 'bytes', 'bytes', 'bytes', 'BYTES', 'Bytes', 'items', 'bytes ', ' bytes')
const separator = fc.constantFrom(',', ', ', ', ', ' ,', ',,', ' , ')
const rangeHeader = fc.oneof(
  { arbitrary: fc.tuple(unit, fc.array(spec, { minLength: 1, maxLength: 4 }), separator).map(([u, specs, sep]) => `${u}=${specs.join(sep)}`), weight: 8 },
  { arbitrary: fc.tuple(unit, fc.array(spec, { minLength: 5, maxLength: 40 }), separator).map(([u, specs, sep]) => `${u}=${specs.join(sep)}`), weight: 2 },
  { arbitrary: fc.integer({ min: 2, max: 200 }).map((n) => 'bytes=' + Array.from({ length: n }, (_, i) => `${i * 3}-${i * 3 + 1}`).join(',')), weight: 1 },
  { arbitrary: garbage, weight: 1 }
)

const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const longDays = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const two = (n: number): string => String(n).padStart(2, '0')

/** The three date forms of RFC 9110 §5.6.7, written here rather than taken from the library. */
export function formatDate (ms: number, form: number): string {
  const d = new Date(ms)
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`
  if (form === 0) return `${days[d.getUTCDay()]}, ${two(d.getUTCDate())} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${time} GMT`
  if (form === 1) return `${longDays[d.getUTCDay()]}, ${two(d.getUTCDate())}-${months[d.getUTCMonth()]}-${two(d.getUTCFullYear() % 100)} ${time} GMT`
  return `${days[d.getUTCDay()]} ${months[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${time} ${d.getUTCFullYear()}`
}

/** HTTP dates around `mtime` (the file's Last-Modified, to hit it exactly and on both sides), odd ones and garbage. */
const dateNear = (mtime: number): fc.Arbitrary<string> => fc.oneof(
  { arbitrary: fc.tuple(fc.integer({ min: -3 * 86400, max: 3 * 86400 }), fc.constantFrom(0, 0, 0, 1, 2)).map(([offset, form]) => formatDate(mtime + offset * 1000, form)), weight: 3 },
  { arbitrary: fc.constantFrom(0, 1, 2).map((form) => formatDate(mtime, form)), weight: 3 },
  { arbitrary: fc.constantFrom(`${formatDate(mtime, 0)}, ${formatDate(mtime, 0)}`, 'Sun, 06 Nov 1994 08:49:37 GMT', 'Fri, 31 Dec 9999 23:59:59 GMT', 'Thu, 01 Jan 1970 00:00:00 GMT', 'Mon, 10 Mar 2024 12:30:15 GMT', '0', '-1'), weight: 1 },
  { arbitrary: garbage, weight: 1 }
)

const etag = (current: string | undefined): fc.Arbitrary<string> => {
  const tags = [current ?? '"none"', `W/${current ?? '"none"'}`, '"other"', 'W/"other"', '""', current?.slice(1, -1) ?? 'bare']
  const tag = fc.constantFrom(...tags)
  return fc.oneof(
    { arbitrary: tag, weight: 3 },
    { arbitrary: fc.constant('*'), weight: 1 },
    { arbitrary: fc.tuple(fc.array(tag, { minLength: 1, maxLength: 5 }), fc.constantFrom(', ', ',', ' , ', ',, ')).map(([list, sep]) => list.join(sep)), weight: 2 },
    { arbitrary: garbage, weight: 1 }
  )
}

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 2 })

/**
 * A GET or HEAD with any mix of Range, If-Range and (with `conditionals`) the four precondition
 * headers, valid or not, aimed at `served`'s validators. Without `conditionals`: Range and If-Range
 * only (to reach 206/416 often).
 */
export function request (served: Served, conditionals: boolean): fc.Arbitrary<Sent> {
  const date = dateNear(served.lastModified ?? mtime)
  const sometimes = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => conditionals ? fc.option(arb, { nil: undefined, freq: 3 }) : fc.constant(undefined)
  return fc.record({
    method: fc.constantFrom<'GET' | 'HEAD'>('GET', 'GET', 'GET', 'HEAD'),
    range: conditionals ? optional(rangeHeader) : fc.option(rangeHeader, { nil: undefined, freq: 8 }),
    ifRange: fc.option(fc.oneof(fc.constant(served.etag ?? '"x"'), etag(served.etag), date), { nil: undefined, freq: 4 }),
    ifMatch: sometimes(etag(served.etag)),
    ifNoneMatch: sometimes(etag(served.etag)),
    ifModifiedSince: sometimes(date),
    ifUnmodifiedSince: sometimes(date)
  }).map(({ method, range, ifRange, ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince }) => {
    const headers: Record<string, string> = {}
    const put = (name: string, value: string | undefined): void => {
      // A field value cannot begin or end with white space on the wire (it would be trimmed) and cannot be empty here.
      if (value !== undefined && value.trim() !== '') headers[name] = value.trim()
    }
    put('range', range)
    put('if-range', ifRange)
    put('if-match', ifMatch)
    put('if-none-match', ifNoneMatch)
    put('if-modified-since', ifModifiedSince)
    put('if-unmodified-since', ifUnmodifiedSince)
    return { method, headers }
  })
}

/**
 * Run first, so that every outcome is reached whatever the seed: 206, multipart, 416, 304, 412 — by
 * `*` and Last-Modified too, for a file without an ETag —, and If-Range with the current tag made
 * weak (which must send the whole file).
 */
export function examples (served: Served): Array<[Sent]> {
  const etag = served.etag ?? '"x"'
  const dated: Array<[Sent]> = served.lastModified === undefined
    ? []
    : [
        [{ method: 'GET', headers: { 'if-modified-since': formatDate(served.lastModified, 0) } }],
        [{ method: 'HEAD', headers: { 'if-unmodified-since': formatDate(served.lastModified - 86_400_000, 0) } }],
        // If-Range dates that are not one HTTP-date, but start with the file's own: a lenient date
        // parser (Apache's) reads the first and sends the range (found by a random seed in CI).
        [{ method: 'GET', headers: { range: 'bytes=0-0', 'if-range': `${formatDate(served.lastModified, 0)}, ${formatDate(served.lastModified, 0)}` } }],
        [{ method: 'GET', headers: { range: 'bytes=0-0', 'if-range': `${formatDate(served.lastModified, 0)}x` } }],
        [{ method: 'GET', headers: { range: 'bytes=0-0', 'if-range': `${formatDate(served.lastModified, 0)} "x"` } }],
        // The same for the other two dates: a lenient parser answers 304 or 412, where the RFC ignores the field.
        [{ method: 'GET', headers: { 'if-modified-since': `${formatDate(served.lastModified, 0)}, ${formatDate(served.lastModified, 0)}` } }],
        [{ method: 'GET', headers: { 'if-unmodified-since': `${formatDate(served.lastModified - 86_400_000, 0)}x` } }],
        [{ method: 'GET', headers: { range: 'bytes=0-0', 'if-range': formatDate(served.lastModified, 1) } }],
        [{ method: 'GET', headers: { range: 'bytes=0-0', 'if-range': formatDate(served.lastModified, 2) } }]
      ]
  return [
    [{ method: 'GET', headers: { range: 'bytes=0-9' } }],
    [{ method: 'GET', headers: { range: 'bytes=0-9,200-209' } }],
    [{ method: 'GET', headers: { range: 'bytes=5000-6000' } }],
    // a unit in another case (case-insensitive: the range or the whole file) and an unknown unit
    // (ignored: the whole file); Go's ServeContent (Caddy) answered 416 to all three
    [{ method: 'GET', headers: { range: 'BYTES=0-9' } }],
    [{ method: 'GET', headers: { range: 'Bytes=0-9' } }],
    [{ method: 'GET', headers: { range: 'items=0-9' } }],
    [{ method: 'GET', headers: { range: 'bytes=0-9', 'if-range': '"other"' } }],
    [{ method: 'GET', headers: { 'if-none-match': etag } }],
    [{ method: 'GET', headers: { 'if-none-match': '*' } }],
    // not `*`, but starting with it: Apache answered 304 (found by a random seed)
    [{ method: 'GET', headers: { 'if-none-match': '*\x80' } }],
    [{ method: 'GET', headers: { 'if-none-match': `${etag} x` } }],
    [{ method: 'GET', headers: { 'if-match': `x, ${etag}x` } }],
    [{ method: 'HEAD', headers: { 'if-match': '"other"' } }],
    [{ method: 'GET', headers: { range: 'bytes=0-9', 'if-range': etag.startsWith('W/') ? etag : `W/${etag}` } }],
    // not one entity-tag, but starting with the current one: Go read the first and sent the range
    [{ method: 'GET', headers: { range: 'bytes=0-9', 'if-range': `${etag}, ${etag}` } }],
    [{ method: 'GET', headers: { range: 'bytes=0-9', 'if-range': `${etag} x` } }],
    ...dated
  ]
}
