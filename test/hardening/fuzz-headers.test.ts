import test from 'ava'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import Koa from 'koa'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { VirtualFile } from '../../source/virtual-file.ts'
import type { DownloadFile } from '../../source/types.ts'
import { rawRequest } from './raw-http.ts'
import { checkDisposition, checkResponse } from './rfc9110-check.ts'
import type { Sent, Served } from './rfc9110-check.ts'

const RUNS = 250
const mtime = Date.UTC(2024, 2, 10, 12, 30, 15)
let dir = ''
let server: Server
let port = 0
const files = new Map<string, { make: () => DownloadFile, served: Served }>()

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-fuzz-'))
  const data = randomBytes(1000)
  await writeFile(join(dir, 'data.bin'), data)
  await writeFile(join(dir, 'empty.txt'), '')
  for (const name of ['data.bin', 'empty.txt']) await utimes(join(dir, name), mtime / 1000, mtime / 1000)
  const memory = Buffer.from('in memory, ünïcode and all\n'.repeat(11))
  const entries: Array<[string, () => DownloadFile]> = [
    ['data', () => new PathFile('data.bin', { root: dir })],
    ['empty', () => new PathFile('empty.txt', { root: dir })],
    ['memory', () => new VirtualFile(memory, { name: 'mem.txt', lastModified: new Date(mtime) })]
  ]
  for (const [key, make] of entries) {
    const stat = await make().stat()
    const bytes = key === 'data' ? data : key === 'empty' ? Buffer.alloc(0) : memory
    files.set(key, { make, served: { bytes, etag: stat.etag, lastModified: stat.lastModified?.getTime() } })
  }
  const app = new Koa()
  app.silent = true
  app.use(downloads())
  app.use((ctx) => {
    const entry = files.get(ctx.path.slice(1))
    if (entry === undefined) return
    const name = typeof ctx.query.name === 'string' ? Buffer.from(ctx.query.name, 'base64url').toString('utf16le') : undefined
    ctx.body = download(entry.make(), name === undefined ? {} : { filename: name })
  })
  server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
})

test.after.always(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => { if (server === undefined) resolve(); else server.close(() => { resolve() }) })
  if (dir !== '') await rm(dir, { recursive: true, force: true })
})

// ---- generators -------------------------------------------------------------------------------

/** Any byte a client can put in a header value: visible ASCII, space, tab and obs-text. */
const headerChar = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.constant(0x09), fc.integer({ min: 0x80, max: 0xff })).map((c) => String.fromCharCode(c))
const garbage = fc.string({ unit: headerChar, maxLength: 40 })

const number = fc.oneof(
  fc.nat({ max: 1100 }),
  fc.constantFrom(0, 1, 999, 1000, 1001, 2 ** 31, 2 ** 53 - 1)
).map(String).chain((n) => fc.oneof(
  { arbitrary: fc.constant(n), weight: 8 },
  fc.constantFrom('99999999999999999999999', '+5', '-0', ' 5', '5 ', '0x10', '1e3', '', '٣')
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
function formatDate (ms: number, form: number): string {
  const d = new Date(ms)
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`
  if (form === 0) return `${days[d.getUTCDay()]}, ${two(d.getUTCDate())} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${time} GMT`
  if (form === 1) return `${longDays[d.getUTCDay()]}, ${two(d.getUTCDate())}-${months[d.getUTCMonth()]}-${two(d.getUTCFullYear() % 100)} ${time} GMT`
  return `${days[d.getUTCDay()]} ${months[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${time} ${d.getUTCFullYear()}`
}

const date = fc.oneof(
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

/** `conditionals`: also the four precondition headers; else Range and If-Range only (to reach 206/416 often). */
function request (served: Served, conditionals: boolean): fc.Arbitrary<Sent> {
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

async function send (path: string, sent: Sent): Promise<Awaited<ReturnType<typeof rawRequest>>> {
  return await rawRequest(port, sent.method, path, sent.headers)
}

// ---- properties -------------------------------------------------------------------------------

/** Run first, so that every outcome is reached whatever the seed: 206, multipart, 416, 304, 412. */
function examples (served: Served): Array<[Sent]> {
  const etag = served.etag ?? '"x"'
  return [
    [{ method: 'GET', headers: { range: 'bytes=0-9' } }],
    [{ method: 'GET', headers: { range: 'bytes=0-9,200-209' } }],
    [{ method: 'GET', headers: { range: 'bytes=5000-6000' } }],
    [{ method: 'GET', headers: { range: 'bytes=0-9', 'if-range': '"other"' } }],
    [{ method: 'GET', headers: { 'if-none-match': etag } }],
    [{ method: 'HEAD', headers: { 'if-match': '"other"' } }]
  ]
}

for (const [key, conditionals] of [['data', false], ['data', true], ['memory', false], ['memory', true], ['empty', true]] as const) {
  const headers = conditionals ? 'Range, If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since' : 'Range and If-Range'
  test(`fuzz: ${headers} on the ${key} file → never a 5xx, always a valid RFC 9110 response`, async t => {
    t.timeout(120_000)
    const served = (files.get(key) as { served: Served }).served
    const statuses = new Map<string, number>()
    await fc.assert(fc.asyncProperty(request(served, conditionals), async (sent) => {
      const res = await send(`/${key}`, sent)
      const outcome = res.status === 206 && res.headers['content-type']?.startsWith('multipart/') === true ? '206 multipart' : String(res.status)
      statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1)
      const problems = checkResponse(sent, res, served)
      if (problems.length > 0) throw new Error(`${problems.join('; ')}\nrequest: ${JSON.stringify(sent)}\nresponse head: ${res.head}`)
    }), { numRuns: RUNS, examples: examples(served) })
    t.log(`statuses: ${[...statuses].sort().map(([s, n]) => `${s}×${n}`).join(' ')}`)
    const reached = (...outcomes: string[]): boolean => outcomes.every((o) => statuses.has(o))
    if (key === 'empty') t.true(reached('200', '304', '412'))
    else if (conditionals) t.true(reached('200', '304', '412'), 'the generators reach every precondition outcome')
    else t.true(reached('200', '206', '206 multipart', '416'), 'the generators reach every range outcome')
  })
}

test('fuzz: the validator itself rejects a wrong body, a wrong Content-Range and a 304 with a body', t => {
  const served = (files.get('data') as { served: Served }).served
  const base = { all: [], complete: true, head: 'HTTP/1.1 206 Partial Content' }
  const sent: Sent = { method: 'GET', headers: { range: 'bytes=0-9' } }
  t.deepEqual(checkResponse(sent, { ...base, status: 206, headers: { 'content-range': 'bytes 0-9/1000', 'content-length': '10' }, body: served.bytes.subarray(0, 10) }, served), [])
  t.not(checkResponse(sent, { ...base, status: 206, headers: { 'content-range': 'bytes 0-9/1000', 'content-length': '10' }, body: served.bytes.subarray(1, 11) }, served).length, 0)
  t.not(checkResponse(sent, { ...base, status: 206, headers: { 'content-range': 'bytes 0-10/1000', 'content-length': '10' }, body: served.bytes.subarray(0, 10) }, served).length, 0)
  t.not(checkResponse({ method: 'GET', headers: { 'if-none-match': '*' } }, { ...base, status: 304, headers: { etag: served.etag ?? '' }, body: Buffer.from('x') }, served).length, 0)
  t.not(checkDisposition('attachment; filename="a\u00e9.txt"').length, 0)
  t.not(checkDisposition('attachment; filename*=UTF-8\'\'a.txt').length, 0)
})

// ---- filenames ----------------------------------------------------------------------------------

const hostilePieces = fc.constantFrom('\r\n', '\n', '\0', '\u2028', '\u2029', '\u0085', '\u202e', '\u200f', '"', '\\', '/', '%', '%0d%0a', ';', ',', "'", '*', '..', '.', ' ', '\t', 'é', 'ﬁ', '😀', '\ud800', '\udfff', 'Set-Cookie: x=1', 'X-Accel-Redirect: /etc/passwd', '=?utf-8?b?', '\u0000\u0001\u001f\u007f\u009f')
const filename = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.array(fc.oneof(hostilePieces, fc.string({ unit: 'grapheme-ascii', maxLength: 5 })), { maxLength: 10 }).map((parts) => parts.join('')),
  fc.string({ unit: 'binary', minLength: 200, maxLength: 400 })
)

test('fuzz: any download({ filename }) → never a 5xx, exactly one Content-Disposition, printable ASCII, that parses back (fallback first, filename* UTF-8 and NFC, no control, bidi or separator), and nothing smuggled', async t => {
  t.timeout(120_000)
  const served = (files.get('memory') as { served: Served }).served
  await fc.assert(fc.asyncProperty(filename, fc.constantFrom<'GET' | 'HEAD'>('GET', 'HEAD'), async (name, method) => {
    const res = await rawRequest(port, method, `/memory?name=${Buffer.from(name, 'utf16le').toString('base64url')}`)
    const problems = checkResponse({ method, headers: {} }, res, served)
    const dispositions = res.all.filter(([n]) => n === 'content-disposition')
    if (dispositions.length !== 1) problems.push(`${dispositions.length} Content-Disposition headers`)
    const names = res.all.map(([n]) => n)
    for (const smuggled of ['set-cookie', 'x-accel-redirect', 'x-sendfile', 'location', 'x']) if (names.includes(smuggled)) problems.push(`a smuggled ${smuggled} header`)
    // A plain basename must come back verbatim.
    const base = name.split(/[/\\]/).at(-1) ?? ''
    if (/^[A-Za-z0-9._-]+$/.test(base) && base !== '.' && base !== '..' && res.headers['content-disposition'] !== `attachment; filename="${base}"`) {
      problems.push(`plain name ${JSON.stringify(base)} → ${res.headers['content-disposition']}`)
    }
    if (problems.length > 0) throw new Error(`${problems.join('; ')}\nfilename: ${JSON.stringify(name)}\nresponse head: ${res.head}`)
    // Counterexamples found by earlier seeds run every time: names whose ASCII fallback was empty or dots.
  }), { numRuns: RUNS, examples: [['\u1dc0', 'GET'], ['..\u0301', 'HEAD']] })
  t.pass()
})
