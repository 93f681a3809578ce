import test from 'ava'
import Koa from 'koa'
import type { ExecutionContext } from 'ava'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { HttpFile } from '../../adapters/http/index.ts'
import { storage } from '../../adapters/flydrive/index.ts'
import { firstOnEachConnection } from '../helpers/drop-reused.ts'
import { fileContract, rawRequest } from '../helpers/file-contract.ts'
import { downloadApp } from '../helpers/koa.ts'
import { leavingBesideStaying } from '../helpers/leaving.ts'
import { listen } from '../helpers/listen.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { startS3 } from '../helpers/s3.ts'

let origin: Origin

test.serial.before(async () => { origin = await startOrigin() })
test.after.always(async () => { await origin?.stop() })

const encodePath = (key: string): string => key.split('/').map((s) => encodeURIComponent(s)).join('/')

fileContract(test, 'http', () => ({
  file: (key) => new HttpFile(`${origin.url}/${encodePath(key)}`),
  put: async (key, bytes, contentType) => { origin.put(`/${encodePath(key)}`, { bytes, contentType }) },
  log: origin.log,
  isBodyRequest: (e) => e.method === 'GET'
}), { keys: false })

/** Serves `file()` through downloads() for one test. */
async function app (t: ExecutionContext, file: () => HttpFile): Promise<string> {
  return await listen(t, downloadApp((ctx) => { ctx.body = download(file()) }))
}

test.serial('http: a plain GET costs one upstream GET (metadata and body together), with Accept-Encoding: identity', async (t) => {
  origin.put('/count.bin', { bytes: 'abcdefghij' })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/count.bin`))
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '10')
  t.regex(res.headers.etag ?? '', /^"[0-9a-f]+"$/)
  t.is(res.body.toString(), 'abcdefghij')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['GET '])
  t.is(origin.log.entries[0]?.headers['accept-encoding'], 'identity')
})

test.serial('http: a conditional GET costs one HEAD, then — only if the body is sent — one GET with If-Match', async (t) => {
  origin.put('/count.bin', { bytes: 'abcdefghij' })
  const base = await app(t, () => new HttpFile(`${origin.url}/count.bin`))
  const etag = (await rawRequest(`${base}/`)).headers.etag ?? ''
  origin.log.clear()
  const notModified = await rawRequest(`${base}/`, { headers: { 'If-None-Match': etag } })
  t.is(notModified.status, 304)
  t.deepEqual(origin.log.entries.map((e) => e.method), ['HEAD'])
  origin.log.clear()
  const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(res.status, 200)
  t.is(res.body.toString(), 'abcdefghij')
  t.deepEqual(origin.log.entries.map((e) => e.method), ['HEAD', 'GET'])
  const get = origin.log.entries[1]
  t.is(get?.headers['accept-encoding'], 'identity')
  t.is(get?.headers['if-match'], etag)
})

test.serial('http: a plain single Range costs one upstream GET carrying that Range; its 206 is relayed', async (t) => {
  origin.put('/count.bin', { bytes: 'abcdefghij' })
  const base = await app(t, () => new HttpFile(`${origin.url}/count.bin`))
  for (const [range, contentRange, body] of [['bytes=2-4', 'bytes 2-4/10', 'cde'], ['bytes=7-', 'bytes 7-9/10', 'hij'], ['bytes=8-100', 'bytes 8-9/10', 'ij']] as const) {
    origin.log.clear()
    const res = await rawRequest(`${base}/`, { headers: { Range: range } })
    t.is(res.status, 206, range)
    t.is(res.headers['content-range'], contentRange, range)
    t.is(res.body.toString(), body, range)
    t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), [`GET ${range}`], range)
  }
})

test.serial('http: a forwarded Range the origin answers otherwise is never relayed as is: the planned part is fetched exactly', async (t) => {
  origin.put('/count.bin', { bytes: 'abcdefghij' })
  const base = await app(t, () => new HttpFile(`${origin.url}/count.bin`))
  // This origin has no suffix ranges: it answers 200 with everything; the part is then asked for itself.
  origin.log.clear()
  const suffix = await rawRequest(`${base}/`, { headers: { Range: 'bytes=-3' } })
  t.is(suffix.status, 206)
  t.is(suffix.headers['content-range'], 'bytes 7-9/10')
  t.is(suffix.body.toString(), 'hij')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['GET bytes=-3', 'GET bytes=7-9'])
  // Unsatisfiable: the origin's 416 sends stat() to HEAD, and the client gets its own 416.
  origin.log.clear()
  const beyond = await rawRequest(`${base}/`, { headers: { Range: 'bytes=20-30' } })
  t.is(beyond.status, 416)
  t.is(beyond.headers['content-range'], 'bytes */10')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['GET bytes=20-30', 'HEAD '])
  // Several ranges, or an If-Range: nothing forwarded, HEAD first.
  for (const headers of [{ Range: 'bytes=0-1,4-5' }, { Range: 'bytes=0-1', 'If-Range': '"x"' }]) {
    origin.log.clear()
    const res = await rawRequest(`${base}/`, { headers })
    t.true(res.status === 206 || res.status === 200, JSON.stringify(headers))
    t.is(origin.log.entries[0]?.method, 'HEAD', JSON.stringify(headers))
    t.true(origin.log.entries.every((e) => e.range === undefined || /^bytes=\d+-\d+$/.test(e.range)), JSON.stringify(headers))
  }
})

test.serial('http: the body of the GET stat() made is aborted at the end of the turn when no open() takes it', async (t) => {
  origin.put('/unread.bin', { bytes: Buffer.alloc(4 * 1024 * 1024, 0x61) })
  origin.log.clear()
  // The origin sends the headers and 1 KiB, then waits: the response can only end by being
  // aborted (a body sent whole could reach the client's socket buffers before any abort).
  origin.log.fault = 'stall'
  const file = new HttpFile(`${origin.url}/unread.bin`)
  const stat = await file.stat({ willRead: 'whole' })
  t.is(stat.size, 4 * 1024 * 1024)
  const entry = await origin.log.settledWhere((e) => e.url === '/unread.bin')
  t.true(entry.closedEarly)
  origin.log.fault = undefined
  // A later open() (no body pending any more) fetches again, with If-Match.
  const chunks: Buffer[] = []
  for await (const chunk of await file.open({ start: 0, end: 2 })) chunks.push(chunk as Buffer)
  t.is(Buffer.concat(chunks).toString(), 'aaa')
  t.is(origin.log.entries.at(-1)?.range, 'bytes=0-2')
})

test.serial('http: only size, type and validators reach the client, no other upstream header', async (t) => {
  origin.put('/headers.txt', { bytes: 'hello', contentType: 'text/plain; charset=utf-8', headers: { 'Set-Cookie': 'session=upstream', 'X-Upstream-Secret': 'yes', 'Content-Security-Policy': 'none' } })
  const base = await app(t, () => new HttpFile(`${origin.url}/headers.txt`))
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 200)
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(res.headers['set-cookie'], undefined)
  t.is(res.headers['x-upstream-secret'], undefined)
  t.is(res.headers['content-security-policy'], undefined)
  t.regex(res.headers['last-modified'] ?? '', /GMT$/)
})

test.serial('http: redirects are followed (up to the limit) and the GET goes straight to the final URL', async (t) => {
  origin.put('/final.bin', { bytes: 'final' })
  origin.redirect('/r1', '/r2', 301)
  origin.redirect('/r2', `${origin.url}/final.bin`, 307)
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/r1`, { name: 'final.bin' }))
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 200)
  t.is(res.body.toString(), 'final')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.url}`), ['GET /r1', 'GET /r2', 'GET /final.bin'])
  // The HEAD route (a conditional GET) remembers where it ended: its GET goes straight there.
  origin.log.clear()
  const conditional = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(conditional.body.toString(), 'final')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.url}`), ['HEAD /r1', 'HEAD /r2', 'HEAD /final.bin', 'GET /final.bin'])
  const limited = await app(t, () => new HttpFile(`${origin.url}/r1`, { maxRedirects: 1 }))
  t.is((await rawRequest(`${limited}/`)).status, 502)
})

test.serial('http: Authorization is not sent to another origin after a redirect', async (t) => {
  const other = await startOrigin()
  t.teardown(async () => { await other.stop() })
  other.put('/x.bin', { bytes: 'x' })
  origin.redirect('/to-other', `${other.url}/x.bin`)
  const base = await app(t, () => new HttpFile(`${origin.url}/to-other`, { headers: { Authorization: 'Bearer secret' } }))
  t.is((await rawRequest(`${base}/`)).status, 200)
  t.is(origin.log.entries.at(-1)?.headers.authorization, 'Bearer secret')
  t.true(other.log.entries.length > 0)
  t.true(other.log.entries.every((e) => e.headers.authorization === undefined))
})

test.serial('http: upstream statuses map to 404, 502, 503, 504 (408 too, a timeout as the nginx and Caddy configurations have it; was 502) and never leak the upstream body', async (t) => {
  for (const [status, expected] of [[410, 404], [500, 502], [403, 502], [503, 503], [408, 504], [504, 504]] as const) {
    origin.fail(`/status-${status}`, status)
    const base = await app(t, () => new HttpFile(`${origin.url}/status-${status}`))
    const res = await rawRequest(`${base}/`)
    t.is(res.status, expected, String(status))
    t.false(res.body.toString().includes('upstream'), String(status))
    t.is(res.headers['set-cookie'], undefined)
  }
})

test.serial('http: a 403 to the HEAD of a URL that is not presigned is the answer: 502 after one request, no GET tried', async (t) => {
  origin.fail('/forbidden.bin', 403)
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/forbidden.bin?download=1`))
  const res = await rawRequest(`${base}/`, { method: 'HEAD' })
  t.is(res.status, 502)
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD '])
})

test.serial('http: an origin that ignores Range is served whole (no ranges announced, nothing sliced locally)', async (t) => {
  origin.put('/noranges.bin', { bytes: '0123456789', ranges: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/noranges.bin`))
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=2-4' } })
  t.is(res.status, 200)
  t.is(res.body.toString(), '0123456789')
  t.not(res.headers['accept-ranges'], 'bytes')
  // The client's range went upstream once (with the metadata request); the origin's whole answer was sent as is.
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['GET bytes=2-4'])
  origin.log.clear()
  const conditional = await rawRequest(`${base}/`, { headers: { Range: 'bytes=2-4', 'If-None-Match': '"x"' } })
  t.is(conditional.status, 200)
  t.is(conditional.body.toString(), '0123456789')
  t.true(origin.log.entries.every((e) => e.range === undefined))
})

test.serial('http: an origin that refuses HEAD (405) is stat\'ed with a one-byte ranged GET', async (t) => {
  origin.put('/nohead.bin', { bytes: '0123456789', head: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/nohead.bin`))
  // A conditional request takes the HEAD route (a plain one would need no HEAD at all).
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=3-5', 'If-None-Match': '"x"' } })
  t.is(res.status, 206)
  t.is(res.headers['content-range'], 'bytes 3-5/10')
  t.is(res.body.toString(), '345')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD ', 'GET bytes=0-0', 'GET bytes=3-5'])
})

test.serial('http: a presigned S3 URL (signed for GET: its HEAD is a 403) serves HEAD and conditional requests through a one-byte ranged GET (was 502)', async (t) => {
  // @20minutes/s3rver checks SigV4, whose canonical request includes the method.
  const s3 = await startS3()
  t.teardown(async () => { await s3.stop() })
  const bytes = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz')
  await s3.put('docs/report.pdf', bytes, 'application/pdf')
  const disk = new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false }))
  const signed = (await storage(disk).signedFile('docs/report.pdf', { expiresIn: 600 })).url ?? ''
  t.is((await fetch(signed, { method: 'HEAD' })).status, 403, 'the storage refuses a HEAD of the GET-signed URL')
  const base = await app(t, () => new HttpFile(signed))

  const head = await rawRequest(`${base}/`, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], '36')
  t.is(head.headers['content-type'], 'application/pdf')
  t.is(head.headers['content-disposition'], 'attachment; filename="report.pdf"')
  const etag = head.headers.etag ?? ''
  t.regex(etag, /^"[0-9a-f]{32}"$/)

  const notModified = await rawRequest(`${base}/`, { headers: { 'If-None-Match': etag } })
  t.is(notModified.status, 304)
  t.is(notModified.body.length, 0)

  const ranged = await rawRequest(`${base}/`, { headers: { Range: 'bytes=3-5', 'If-Range': etag } })
  t.is(ranged.status, 206)
  t.is(ranged.headers['content-range'], 'bytes 3-5/36')
  t.is(ranged.body.toString(), '345')
})

test.serial('http: a chunked upstream (no Content-Length) is streamed chunked, without ranges', async (t) => {
  origin.put('/chunked.txt', { bytes: 'streamed without a length', chunked: true })
  const base = await app(t, () => new HttpFile(`${origin.url}/chunked.txt`))
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 200)
  t.is(res.headers['content-length'], undefined)
  t.is(res.headers['transfer-encoding'], 'chunked')
  t.is(res.body.toString(), 'streamed without a length')
})

test.serial('http: a silent origin → 504 (timeout before the headers)', async (t) => {
  const { createServer } = await import('node:http')
  const silent = createServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { silent.closeAllConnections(); silent.close() })
  const address = silent.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const base = await app(t, () => new HttpFile(`http://127.0.0.1:${port}/x.bin`, { timeout: 200 }))
  t.is((await rawRequest(`${base}/`)).status, 504)
})

test.serial('http: timeout bounds the whole wait for the headers, redirects included: a chain of hops each under it → 504', async (t) => {
  const { createServer } = await import('node:http')
  // Five redirects, each answered after 150 ms, before the file: 900 ms in all, 150 per hop.
  const slow = createServer((req, res) => {
    const hop = Number((req.url ?? '').slice(1)) || 0
    setTimeout(() => {
      if (hop < 5) res.writeHead(302, { Location: `/${hop + 1}`, 'Content-Length': '0' }).end()
      else res.writeHead(200, { 'Content-Length': '3', 'Content-Type': 'text/plain' }).end('abc')
    }, 150)
  })
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { slow.closeAllConnections(); slow.close() })
  const address = slow.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const short = await app(t, () => new HttpFile(`http://127.0.0.1:${port}/0`, { timeout: 400 }))
  t.is((await rawRequest(`${short}/`)).status, 504)
  // Generous: under load the six hops (0.9 s unloaded) must not reach it; the short one proves the bound.
  const long = await app(t, () => new HttpFile(`http://127.0.0.1:${port}/0`, { timeout: 30_000 }))
  const res = await rawRequest(`${long}/`)
  t.is(res.status, 200)
  t.is(res.body.toString(), 'abc')
})

test.serial('http: a response that arrives while the event loop is held up past the timeout is read, not timed out', async (t) => {
  const { createServer } = await import('node:http')
  const body = Buffer.alloc(1000, 3)
  const late = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream' })
    res.end(body) // into the kernel at once
    // Origin, app and client share this thread: it is held up for 3× the app's timeout, and the
    // turn ends by running the timers that expired meanwhile, before the next poll reads the response.
    const until = Date.now() + 900
    while (Date.now() < until) {}
  })
  await new Promise<void>((resolve) => late.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { late.closeAllConnections(); late.close() })
  const address = late.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  // 300 ms, not less: under load the request itself may take a while to reach the origin.
  const base = await app(t, () => new HttpFile(`http://127.0.0.1:${port}/x.bin`, { timeout: 300 }))
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 200)
  t.true(res.complete)
  t.true(res.body.equals(body))
})

test.serial('http: an origin that goes silent mid-body → the transfer is aborted after the idle timeout, and the upstream request closed', async (t) => {
  origin.put('/stalls.bin', { bytes: Buffer.alloc(512 * 1024, 7) })
  const base = await app(t, () => new HttpFile(`${origin.url}/stalls.bin`, { timeout: 200 }))
  origin.log.fault = 'stall'
  const res = await rawRequest(`${base}/`)
  origin.log.fault = undefined
  t.is(res.status, 200)
  t.is(res.headers['content-length'], String(512 * 1024))
  t.false(res.complete)
  t.true(res.body.length < 512 * 1024)
  const get = await origin.log.settledWhere((e) => e.method === 'GET' && e.url === '/stalls.bin')
  t.true(get.closedEarly)
})

test('http: name is the last URL segment, percent-decoded, query dropped', (t) => {
  t.is(new HttpFile('https://example.com/dl/r%C3%A9sum%C3%A9.pdf?sig=x#frag').name, 'résumé.pdf')
  t.is(new HttpFile('https://example.com/dl/r%C3%A9sum%C3%A9.pdf?sig=x#frag').url, 'https://example.com/dl/r%C3%A9sum%C3%A9.pdf?sig=x')
  t.is(new HttpFile('https://example.com/bad%E0.bin').name, 'bad%E0.bin')
})

test('http: url (what offload rules match) is undefined with headers unless offloadable: the proxy would fetch without them', (t) => {
  const url = 'https://example.com/dl/a.bin'
  t.is(new HttpFile(url).url, url)
  t.is(new HttpFile(url, { headers: {} }).url, url)
  t.is(new HttpFile(url, { headers: { Authorization: 'Bearer x' } }).url, undefined)
  t.is(new HttpFile(url, { headers: { Authorization: 'Bearer x' }, offloadable: true }).url, url)
  t.is(new HttpFile(url, { offloadable: false }).url, undefined)
  t.throws(() => new HttpFile(url, { offloadable: 'yes' as unknown as boolean }), { instanceOf: TypeError, message: /^HttpFile\(\): offloadable must be a boolean$/ })
})

test('http: options are validated at setup with TypeErrors naming the option', (t) => {
  t.throws(() => new HttpFile('ftp://example.com/x'), { instanceOf: TypeError, message: /url must be an absolute http/ })
  t.throws(() => new HttpFile('https://example.com/x', { timeout: -1 }), { instanceOf: TypeError, message: /timeout/ })
  // a Map or fetch Headers would send nothing (Object.entries sees no entry) and count as offloadable
  for (const headers of [new Map([['Authorization', 'Bearer x']]), new Headers({ Authorization: 'Bearer x' })]) {
    t.throws(() => new HttpFile('https://example.com/x', { headers: headers as never }), { instanceOf: TypeError, message: /headers must be a plain object of strings \(not a Map or a fetch Headers/ })
  }
  t.throws(() => new HttpFile('https://example.com/x', { timeout: 2 ** 31 }), { instanceOf: TypeError, message: /^HttpFile\(\): timeout must be an integer from 1 to 2147483647 \(ms\)$/ })
  t.throws(() => new HttpFile('https://example.com/x', { headers: { Range: 'bytes=0-1' } }), { instanceOf: TypeError, message: /may not set Range/ })
  t.throws(() => new HttpFile('https://example.com/x', { headers: { 'X-A': 'a\r\nb' } }), { instanceOf: TypeError, message: /header-safe/ })
})

// ── A file that changed between stat() and open(), on an origin that ignores the precondition ──

/** An origin object that becomes `next` when the first GET for `path` arrives (after the HEAD that planned the response). */
function changeOnFirstGet (t: ExecutionContext, path: string, next: Parameters<Origin['put']>[1]): void {
  let changed = false
  origin.onRequest = (req) => {
    if (changed || req.method !== 'GET' || req.url !== path) return
    changed = true
    origin.put(path, next)
  }
  t.teardown(() => { origin.onRequest = undefined })
}

const v1 = Buffer.alloc(100_000, 'a')
const v2 = Buffer.alloc(150_000, 'b')
const v2same = Buffer.alloc(100_000, 'b')

test.serial('http: a file that grew between HEAD and GET (origin ignoring If-Match) is planned again with the new length, never sent as the old length\'s prefix', async (t) => {
  origin.put('/grew.bin', { bytes: v1, conditionals: false })
  changeOnFirstGet(t, '/grew.bin', { bytes: v2, conditionals: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/grew.bin`))
  const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(res.status, 200)
  t.true(res.complete)
  t.is(res.headers['content-length'], '150000')
  t.true(res.body.equals(v2))
  t.is(res.headers.etag, origin.log.entries.at(-1)?.headers['if-match'])
  // The first GET's mismatch (Content-Length 150000, HEAD said 100000) was caught before any header.
  t.deepEqual(origin.log.entries.map((e) => e.method), ['HEAD', 'GET', 'HEAD', 'GET'])
})

test.serial('http: same length, another ETag (origin ignoring If-Match) → planned again, sent under the new ETag', async (t) => {
  origin.put('/etag.bin', { bytes: v1, conditionals: false })
  changeOnFirstGet(t, '/etag.bin', { bytes: v2same, conditionals: false })
  const base = await app(t, () => new HttpFile(`${origin.url}/etag.bin`))
  const first = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  origin.onRequest = undefined
  const fresh = await rawRequest(`${base}/`)
  t.is(first.status, 200)
  t.is(first.headers['content-length'], '100000')
  t.true(first.body.equals(v2same))
  t.is(first.headers.etag, fresh.headers.etag, 'the bytes of v2 under the ETag of v2')
})

test.serial('http: same length, no ETag, another Last-Modified (origin ignoring If-Unmodified-Since) → planned again, sent under the new date', async (t) => {
  const old = new Date(Date.UTC(2024, 0, 1))
  const newer = new Date(Date.UTC(2025, 0, 1))
  origin.put('/dated.bin', { bytes: v1, etag: undefined, lastModified: old })
  changeOnFirstGet(t, '/dated.bin', { bytes: v2same, etag: undefined, lastModified: newer })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/dated.bin`))
  const res = await rawRequest(`${base}/`, { headers: { 'If-Modified-Since': new Date(Date.UTC(2020, 0, 1)).toUTCString() } })
  t.is(res.status, 200)
  t.is(res.headers['last-modified'], newer.toUTCString())
  t.true(res.body.equals(v2same))
  t.is(origin.log.entries[1]?.headers['if-unmodified-since'], old.toUTCString())
  t.deepEqual(origin.log.entries.map((e) => e.method), ['HEAD', 'GET', 'HEAD', 'GET'])
})

test.serial('http: a part whose Content-Range names another complete length → planned again against the new size', async (t) => {
  origin.put('/part.bin', { bytes: v1, conditionals: false })
  changeOnFirstGet(t, '/part.bin', { bytes: v2, conditionals: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/part.bin`))
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=99990-', 'If-None-Match': '"other"' } })
  t.is(res.status, 206)
  t.is(res.headers['content-range'], 'bytes 99990-149999/150000')
  t.true(res.body.equals(v2.subarray(99990)))
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD ', 'GET bytes=99990-99999', 'HEAD ', 'GET bytes=99990-149999'])
})

test.serial('http: the one-request route too — a part fetched after the metadata GET, of a file that changed meanwhile, is planned again', async (t) => {
  // No suffix ranges at this origin: the metadata GET (bytes=-10) answers 200, the part is fetched on its own.
  origin.put('/ahead.bin', { bytes: v1, conditionals: false })
  // Changed when the second GET (the part's) arrives.
  let gets = 0
  origin.onRequest = (req) => { if (req.url === '/ahead.bin' && req.method === 'GET' && ++gets === 2) origin.put('/ahead.bin', { bytes: v2, conditionals: false }) }
  t.teardown(() => { origin.onRequest = undefined })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/ahead.bin`))
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=-10' } })
  t.is(res.status, 206)
  t.is(res.headers['content-range'], 'bytes 149990-149999/150000')
  t.true(res.body.equals(v2.subarray(149990)))
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['GET bytes=-10', 'GET bytes=99990-99999', 'GET bytes=-10', 'GET bytes=149990-149999'])
})

test.serial('http: a file that grew between HEAD and GET with no validator at all (no ETag, no Last-Modified: only its length tells) → planned again with the new length, never the old length\'s prefix', async (t) => {
  origin.put('/unmarked.bin', { bytes: v1, etag: undefined, lastModified: undefined })
  changeOnFirstGet(t, '/unmarked.bin', { bytes: v2, etag: undefined, lastModified: undefined })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/unmarked.bin`))
  const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(res.status, 200)
  t.true(res.complete)
  t.is(res.headers['content-length'], '150000')
  t.is(res.headers.etag, undefined)
  t.is(res.headers['last-modified'], undefined)
  t.true(res.body.equals(v2))
  // No validator to send upstream: the first GET's Content-Length (150000, HEAD said 100000) alone was the mismatch.
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.headers['if-match'] ?? ''}${e.headers['if-unmodified-since'] ?? ''}`), ['HEAD ', 'GET ', 'HEAD ', 'GET '])
})

test.serial('http: a file that shrank below the asked range between HEAD and GET (origin ignoring If-Match, answering 416) → planned again: the client\'s own 416 with the new length', async (t) => {
  origin.put('/shrank.bin', { bytes: Buffer.alloc(100, 'a'), conditionals: false })
  changeOnFirstGet(t, '/shrank.bin', { bytes: Buffer.alloc(10, 'b'), conditionals: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/shrank.bin`))
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=50-59', 'If-None-Match': '"other"' } })
  t.is(res.status, 416)
  t.is(res.headers['content-range'], 'bytes */10')
  t.is(res.headers.etag, undefined)
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD ', 'GET bytes=50-59', 'HEAD '])
})

/** A plain node:http origin for one test. */
async function plainOrigin (t: ExecutionContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string, seen: string[] }> {
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.headers.range ?? ''}`.trim())
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

test.serial('http: an origin whose GET keeps contradicting its HEAD (another length, If-Unmodified-Since ignored) → 502 after one new plan, nothing of either file sent', async (t) => {
  const N = 200_000
  const M = 300_000
  const newBytes = Buffer.alloc(M, 'b')
  const lm = new Date(Date.now() - 3600_000).toUTCString()
  const o = await plainOrigin(t, (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Length': N, 'Last-Modified': lm, 'Accept-Ranges': 'bytes' }).end()
      return
    }
    res.writeHead(200, { 'Content-Length': M, 'Last-Modified': new Date().toUTCString() })
    res.write(newBytes.subarray(0, N))
    const timer = setTimeout(() => res.end(newBytes.subarray(N)), 300)
    res.on('close', () => { clearTimeout(timer) })
  })
  const errors: Error[] = []
  const koa = downloadApp((ctx) => { ctx.body = download(new HttpFile(`${o.url}/f.bin`)) })
  koa.on('error', (error: Error) => { errors.push(error) })
  const base = await listen(t, koa)
  const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"whatever"' } })
  t.is(res.status, 502)
  t.true(res.complete)
  t.is(res.headers['content-length'], String(res.body.length))
  t.is(res.body.toString(), 'Bad Gateway')
  t.is(res.headers['last-modified'], undefined)
  t.deepEqual(o.seen, ['HEAD', 'GET', 'HEAD', 'GET'])
  t.regex(String((errors[0] as { cause?: Error } | undefined)?.cause?.message), /300000.*200000|disagree/)
})

test.serial('http: a chunked GET (no length, no validators) longer than the HEAD said is cut short, never ended as complete', async (t) => {
  const N = 100_000
  const newBytes = Buffer.alloc(150_000, 'b')
  const o = await plainOrigin(t, (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Length': N, 'Accept-Ranges': 'bytes' }).end()
      return
    }
    res.writeHead(200, { 'Transfer-Encoding': 'chunked' })
    res.write(newBytes.subarray(0, N))
    const timer = setTimeout(() => res.end(newBytes.subarray(N)), 100)
    res.on('close', () => { clearTimeout(timer) })
  })
  const base = await app(t, () => new HttpFile(`${o.url}/f.bin`))
  const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"whatever"' } })
  t.is(res.status, 200)
  t.is(res.headers['content-length'], String(N))
  t.false(res.complete)
  t.true(res.body.length < N)
  // A chunked GET as long as the HEAD said is sent whole (the last byte waits for the upstream's end only).
  const exact = await plainOrigin(t, (req, res) => {
    res.writeHead(200, req.method === 'HEAD' ? { 'Content-Length': N } : { 'Transfer-Encoding': 'chunked' })
    if (req.method === 'HEAD') res.end()
    else res.end(newBytes.subarray(0, N))
  })
  const whole = await rawRequest(`${await app(t, () => new HttpFile(`${exact.url}/f.bin`))}/`, { headers: { 'If-None-Match': '"whatever"' } })
  t.is(whole.status, 200)
  t.true(whole.complete)
  t.true(whole.body.equals(newBytes.subarray(0, N)))
})

test.serial('http: a 206 of another part than the one asked for (an origin answering every range from offset 0, under the asked Content-Range length) → 502 before any header, never those bytes as the part', async (t) => {
  const bytes = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz')
  const o = await plainOrigin(t, (req, res) => {
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    const headers = { 'Accept-Ranges': 'bytes', ETag: '"p1"', 'Content-Type': 'application/octet-stream' }
    if (req.method !== 'GET' || range === null) {
      res.writeHead(200, { ...headers, 'Content-Length': bytes.length }).end(req.method === 'HEAD' ? undefined : bytes)
      return
    }
    const length = Math.min(Number(range[2]), bytes.length - 1) - Number(range[1]) + 1
    res.writeHead(206, { ...headers, 'Content-Range': `bytes 0-${length - 1}/${bytes.length}`, 'Content-Length': length }).end(bytes.subarray(0, length))
  })
  const errors: Error[] = []
  const koa = downloadApp((ctx) => { ctx.body = download(new HttpFile(`${o.url}/f.bin`)) })
  koa.on('error', (error: Error) => { errors.push(error) })
  const base = await listen(t, koa)
  for (const [headers, upstream] of [
    // The part forwarded with the metadata GET (held: it is not the one planned), then asked for itself.
    [{ Range: 'bytes=10-19' }, ['GET bytes=10-19', 'GET bytes=10-19']],
    [{ Range: 'bytes=10-19', 'If-None-Match': '"other"' }, ['HEAD', 'GET bytes=10-19']]
  ] as const) {
    const what = JSON.stringify(headers)
    o.seen.length = 0
    errors.length = 0
    const res = await rawRequest(`${base}/`, { headers })
    t.is(res.status, 502, what)
    t.true(res.complete, what)
    t.is(res.headers['content-range'], undefined, what)
    t.is(res.headers.etag, undefined, what)
    t.is(res.body.toString(), 'Bad Gateway', what)
    t.deepEqual(o.seen, upstream, what)
    t.regex((errors[0]?.cause as Error | undefined)?.message ?? '', /asked for bytes 10-19, got 206 bytes 0-9\/36/, what)
  }
})

test.serial('http: an upstream ETag that is not an entity-tag (unquoted `abc123`) is dropped: never sent to the client, nor upstream as If-Match (where an origin comparing If-Match strictly answers 412); If-Unmodified-Since guards the GETs instead', async (t) => {
  const bytes = Buffer.from('0123456789'.repeat(20))
  const lastModified = 'Mon, 05 Jan 2026 00:00:00 GMT'
  const preconditions: string[] = []
  const o = await plainOrigin(t, (req, res) => {
    const ifMatch = req.headers['if-match']
    preconditions.push(`${req.method ?? ''} ${ifMatch ?? '-'} ${req.headers['if-unmodified-since'] ?? '-'}`)
    if (ifMatch !== undefined && ifMatch !== '*' && !ifMatch.split(',').map((s) => s.trim()).includes('"abc123"')) {
      res.writeHead(412, { 'Content-Length': 0 }).end()
      return
    }
    const headers = { 'Accept-Ranges': 'bytes', ETag: 'abc123', 'Last-Modified': lastModified }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (range === null) {
      res.writeHead(200, { ...headers, 'Content-Length': bytes.length }).end(req.method === 'HEAD' ? undefined : bytes)
      return
    }
    const [start, end] = [Number(range[1]), Math.min(Number(range[2]), bytes.length - 1)]
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${bytes.length}`, 'Content-Length': end - start + 1 }).end(bytes.subarray(start, end + 1))
  })
  const base = await app(t, () => new HttpFile(`${o.url}/f.bin`))
  const conditional = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(conditional.status, 200)
  t.is(conditional.headers.etag, undefined)
  t.is(conditional.headers['last-modified'], lastModified)
  t.true(conditional.body.equals(bytes))
  t.deepEqual(preconditions, ['HEAD - -', `GET - ${lastModified}`])
  o.seen.length = 0
  preconditions.length = 0
  const multi = await rawRequest(`${base}/`, { headers: { Range: 'bytes=0-9,100-109' } })
  t.is(multi.status, 206)
  t.is(multi.headers.etag, undefined)
  t.regex(multi.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/)
  t.true(multi.body.includes(bytes.subarray(0, 10)))
  t.true(multi.body.includes(bytes.subarray(100, 110)))
  t.deepEqual(o.seen, ['HEAD', 'GET bytes=0-9', 'GET bytes=100-109'])
  t.deepEqual(preconditions, ['HEAD - -', `GET - ${lastModified}`, `GET - ${lastModified}`])
})

// ── An origin that announces Accept-Ranges: bytes and answers a ranged GET with 200 ──

test.serial('http: an origin that announces ranges but answers a ranged GET with 200 → 200 with the whole file, the body in hand reused, at most one extra request (none for a plain range)', async (t) => {
  const big = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251))
  const small = big.subarray(0, 1000)
  origin.put('/liar.bin', { bytes: big, ranges: false, headers: { 'Accept-Ranges': 'bytes' } })
  origin.put('/liar-small.bin', { bytes: small, ranges: false, headers: { 'Accept-Ranges': 'bytes' } })
  const cases: Array<[string, Record<string, string>, Buffer, string[]]> = [
    ['/liar.bin', {}, big, ['GET ']],
    // A plain range answered 200: the whole file, from the body in hand (one request).
    ['/liar.bin', { Range: 'bytes=0-99' }, big, ['GET bytes=0-99']],
    ['/liar.bin', { Range: 'bytes=-100' }, big, ['GET bytes=-100', 'GET bytes=99900-99999']],
    ['/liar.bin', { Range: 'bytes=0-9', 'If-None-Match': '"x"' }, big, ['HEAD ', 'GET bytes=0-9']],
    ['/liar.bin', { Range: 'bytes=0-9,20-29' }, big, ['HEAD ', 'GET bytes=0-29']],
    ['/liar.bin', { Range: 'bytes=0-9,50000-50009' }, big, ['HEAD ', 'GET bytes=0-9']],
    ['/liar-small.bin', { Range: 'bytes=0-99' }, small, ['GET bytes=0-99']],
    ['/liar-small.bin', { Range: 'bytes=5-9', 'If-None-Match': '"x"' }, small, ['HEAD ', 'GET bytes=5-9']]
  ]
  for (const [path, headers, bytes, upstream] of cases) {
    const what = `${path} ${JSON.stringify(headers)}`
    const url = await app(t, () => new HttpFile(`${origin.url}${path}`))
    origin.log.clear()
    const res = await rawRequest(`${url}/`, { headers })
    t.is(res.status, 200, what)
    t.true(res.complete, what)
    t.is(res.headers['content-length'], String(bytes.length), what)
    t.is(res.headers['content-range'], undefined, what)
    t.is(res.headers['accept-ranges'], Object.keys(headers).length === 0 ? 'bytes' : 'none', what)
    t.true(res.body.equals(bytes), what)
    t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), upstream, what)
  }
})

test.serial('http: an empty file whose origin answers any Range with 200 (as nginx does) keeps Accept-Ranges: bytes, as its HEAD (was none for a ranged GET)', async (t) => {
  // nginx's static module: an empty file is 200 whatever the Range, and announces ranges.
  const o = await plainOrigin(t, (_req, res) => {
    res.writeHead(200, { 'Content-Length': 0, 'Accept-Ranges': 'bytes', ETag: '"65eda7d7-0"', 'Last-Modified': 'Sun, 10 Mar 2024 12:30:15 GMT' }).end()
  })
  const base = await app(t, () => new HttpFile(`${o.url}/empty.bin`))
  for (const [method, headers] of [['HEAD', {}], ['GET', {}], ['GET', { Range: 'bytes=0-9' }], ['HEAD', { Range: 'bytes=0-9' }]] as const) {
    const what = `${method} ${JSON.stringify(headers)}`
    const res = await rawRequest(`${base}/`, { method, headers })
    t.is(res.status, 200, what)
    t.is(res.headers['content-length'], '0', what)
    t.is(res.headers['accept-ranges'], 'bytes', what)
    t.is(res.headers['content-range'], undefined, what)
  }
})

// ── An empty file at an origin that refuses HEAD ──

test.serial('http: an empty file at an origin that refuses HEAD (its one-byte GET answered 416 bytes */0) → size 0, 200 with Content-Length 0', async (t) => {
  origin.put('/empty.txt', { bytes: '', head: false, contentType: undefined })
  const base = await app(t, () => new HttpFile(`${origin.url}/empty.txt`))
  for (const [method, headers, upstream] of [
    ['GET', {}, ['GET ']],
    ['HEAD', {}, ['HEAD ', 'GET bytes=0-0']],
    ['GET', { 'If-None-Match': '"nope"' }, ['HEAD ', 'GET bytes=0-0', 'GET ']],
    ['GET', { Range: 'bytes=0-' }, ['GET bytes=0-', 'HEAD ', 'GET bytes=0-0', 'GET ']]
  ] as const) {
    const what = `${method} ${JSON.stringify(headers)}`
    origin.log.clear()
    const res = await rawRequest(`${base}/`, { method, headers })
    t.is(res.status, 200, what)
    t.is(res.headers['content-length'], '0', what)
    t.is(res.headers['content-range'], undefined, what)
    t.is(res.headers['content-type'], 'text/plain; charset=utf-8', what)
    t.is(res.body.length, 0, what)
    t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), upstream, what)
  }
  // A 416 for bytes=0-0 that does not say the file is empty is still an upstream failure.
  const odd = await plainOrigin(t, (req, res) => {
    if (req.method === 'HEAD') res.writeHead(405, { 'Content-Length': 0 }).end()
    else res.writeHead(416, { 'Content-Range': 'bytes */5', 'Content-Length': 0 }).end()
  })
  t.is((await rawRequest(`${await app(t, () => new HttpFile(`${odd.url}/x.txt`))}/`, { method: 'HEAD' })).status, 502)
})

// ── Credentials and a redirect to another origin ──

test.serial('http: every header the app passed is dropped on a redirect to another origin, and kept on one within the origin', async (t) => {
  const other = await startOrigin()
  t.teardown(async () => { await other.stop() })
  other.put('/landed.bin', { bytes: 'abc' })
  origin.put('/same-landed.bin', { bytes: 'abc' })
  // Another port: another origin.
  origin.redirect('/cross', `${other.url}/landed.bin`)
  origin.redirect('/same', '/same-landed.bin')
  const credentials = { Authorization: 'Bearer s3cret', 'X-Api-Key': 'k3y', 'Private-Token': 'tok', Cookie: 'sid=1' }
  for (const headers of [{}, { 'If-None-Match': '"x"' }, { Range: 'bytes=1-2', 'If-None-Match': '"x"' }]) {
    const what = JSON.stringify(headers)
    other.log.clear()
    origin.log.clear()
    const cross = await app(t, () => new HttpFile(`${origin.url}/cross`, { headers: credentials }))
    const res = await rawRequest(`${cross}/`, { headers })
    t.is(res.status, headers.Range === undefined ? 200 : 206, what)
    t.is(res.body.toString(), headers.Range === undefined ? 'abc' : 'bc', what)
    t.true(origin.log.entries.length > 0 && origin.log.entries.every((e) => e.headers['x-api-key'] === 'k3y' && e.headers['private-token'] === 'tok' && e.headers.authorization === 'Bearer s3cret'), what)
    t.true(other.log.entries.length > 0, what)
    for (const e of other.log.entries) {
      t.deepEqual(Object.keys(e.headers).filter((h) => !['host', 'connection', 'accept-encoding', 'range', 'if-match'].includes(h)), [], `${what}: ${e.method} ${JSON.stringify(e.headers)}`)
    }
    origin.log.clear()
    const same = await app(t, () => new HttpFile(`${origin.url}/same`, { headers: credentials }))
    t.is((await rawRequest(`${same}/`, { headers })).status, headers.Range === undefined ? 200 : 206, what)
    t.true(origin.log.entries.some((e) => e.url === '/same-landed.bin'), what)
    t.true(origin.log.entries.every((e) => e.headers['x-api-key'] === 'k3y' && e.headers['private-token'] === 'tok' && e.headers.authorization === 'Bearer s3cret' && e.headers.cookie === 'sid=1'), what)
  }
})

test('http: without serve()/downloads(), an HttpFile is never answered as JSON (its URL may carry a signature)', async (t) => {
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use((ctx) => { ctx.body = new HttpFile('https://origin.example/report.pdf?X-Amz-Signature=SECRETSIG') })
  const res = await rawRequest(await listen(t, app))
  t.is(res.status, 500)
  t.false(res.body.toString('latin1').includes('SECRETSIG'))
  t.regex(errors[0]?.message ?? '', /^koa-downloads: an HttpFile reached a JSON serialiser/)
})

test('http: error messages name the URL without its query (a presigned URL\'s signature stays out of logs)', async (t) => {
  const origin = createServer((_req, res) => { res.writeHead(500).end() })
  origin.listen(0, '127.0.0.1')
  t.teardown(() => { origin.close() })
  await new Promise((resolve) => origin.once('listening', resolve))
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/report.pdf?X-Amz-Signature=SECRETSIG`
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(downloads())
  app.use((ctx) => { ctx.body = new HttpFile(url) })
  const res = await rawRequest(await listen(t, app))
  t.is(res.status, 502)
  const cause = errors[0]?.cause as Error | undefined
  t.regex(cause?.message ?? '', /\/report\.pdf\?…: /)
  t.false(cause?.message.includes('SECRETSIG'))
})

test.serial('http: one HttpFile shared by concurrent requests, the file changed at an origin ignoring If-Match: each request plans again itself and gets the new file', async (t) => {
  const v1 = Buffer.alloc(100_000, 'a')
  const v2 = Buffer.alloc(150_000, 'b')
  origin.put('/shared.bin', { bytes: v1, conditionals: false })
  const shared = new HttpFile(`${origin.url}/shared.bin`)
  const base = await app(t, () => shared)
  t.is((await rawRequest(`${base}/`)).body.length, v1.length)
  origin.put('/shared.bin', { bytes: v2, conditionals: false })
  const both = await Promise.all([rawRequest(`${base}/`), rawRequest(`${base}/`)])
  for (const res of both) {
    t.is(res.status, 200)
    t.true(res.body.equals(v2))
  }
})

test('http: error messages leave out credentials in the URL (sent upstream as Basic auth)', async (t) => {
  const origin500 = createServer((_req, res) => { res.writeHead(500).end() })
  origin500.listen(0, '127.0.0.1')
  t.teardown(() => { origin500.close() })
  await new Promise((resolve) => origin500.once('listening', resolve))
  const app500 = new Koa()
  const errors: Error[] = []
  app500.on('error', (error: Error) => { errors.push(error) })
  app500.use(downloads())
  app500.use((ctx) => { ctx.body = new HttpFile(`http://alice:s3cr3t-token@127.0.0.1:${(origin500.address() as AddressInfo).port}/gone.bin`) })
  t.is((await rawRequest(await listen(t, app500))).status, 502)
  const message = (errors[0]?.cause as Error | undefined)?.message ?? ''
  t.regex(message, /^http:\/\/127\.0\.0\.1:\d+\/gone\.bin: /)
  t.false(message.includes('s3cr3t'))
})

test.serial('http: a GET or HEAD lost on a kept-alive connection the origin drops (its idle close racing the request) is sent again on a new connection; a request on a new connection is not', async (t) => {
  // Every request after the first on a connection finds it closed under it, unanswered: what a
  // request sent as an origin's idle timer fires meets (S3 and nginx send no Keep-Alive hint for
  // Node's agent to close such connections first).
  const { handle, dropped } = firstOnEachConnection((req, res) => {
    res.writeHead(200, { 'Content-Length': 5, 'Accept-Ranges': 'bytes', ETag: '"v1"' }).end(req.method === 'HEAD' ? undefined : 'hello')
  })
  const o = await plainOrigin(t, handle)
  const base = await app(t, () => new HttpFile(`${o.url}/k.txt`))
  for (const headers of [{}, {}, { 'If-None-Match': '"v0"' }, {}]) {
    const res = await rawRequest(`${base}/`, { headers })
    t.is(res.status, 200, JSON.stringify(headers))
    t.is(res.body.toString(), 'hello')
  }
  // GET on connection A, kept by the agent; the next GET on A (dropped), again on B (not kept:
  // a one-off connection). The conditional request: HEAD on a new kept connection C, its GET on C
  // (dropped), again on D. The last GET finds no kept connection left and opens one.
  t.deepEqual(o.seen, ['GET', 'GET', 'GET', 'HEAD', 'GET', 'GET', 'GET'])
  t.is(dropped(), 2)
  // A request that fails on a new connection is not sent again.
  const broken = await plainOrigin(t, (req) => { req.socket.destroy() })
  const res = await rawRequest(`${await app(t, () => new HttpFile(`${broken.url}/k.txt`))}/`)
  t.is(res.status, 502)
  t.deepEqual(broken.seen, ['GET'])
})

test.serial('http: a redirect\'s short body is read to its end, so that its connection serves a later request; a long one is closed unread', async (t) => {
  const sockets = new Set<unknown>()
  const o = await plainOrigin(t, (req, res) => {
    sockets.add(req.socket)
    if (req.url === '/moved.bin') res.writeHead(302, { Location: '/here.bin', 'Content-Type': 'text/plain', 'Content-Length': 28 }).end('Found. Redirecting to /here.')
    else if (req.url === '/moved-long.bin') res.writeHead(302, { Location: '/here.bin', 'Content-Length': 1024 * 1024 }).end(Buffer.alloc(1024 * 1024, 'x'))
    else res.writeHead(200, { 'Content-Length': 5 }).end('hello')
  })
  for (const [path, connections] of [['/moved.bin', 2], ['/moved-long.bin', 4]] as const) {
    sockets.clear()
    const base = await app(t, () => new HttpFile(`${o.url}${path}`))
    for (let i = 0; i < 3; i++) {
      const res = await rawRequest(`${base}/`)
      t.is(res.status, 200, path)
      t.is(res.body.toString(), 'hello', path)
    }
    // The first redirect's connection is still busy with its body when the GET that follows it
    // goes out: that GET opens a second one. Later requests take those two, while a redirect body
    // too long to read closes its connection each time.
    t.is(sockets.size, connections, path)
  }
  t.deepEqual(o.seen, Array(12).fill('GET'))
})

test.serial('http: a transfer coding other than chunked (Transfer-Encoding: gzip, chunked) is refused as a Content-Encoding is: 502 before any header, never the compressed bytes as the file (was a 200 with them)', async (t) => {
  const gz = gzipSync(Buffer.from('the real file content\n'.repeat(10)))
  // Node's server frames the body in chunks itself and sends the header as given.
  const o = await plainOrigin(t, (req, res) => {
    res.writeHead(200, { 'Transfer-Encoding': 'gzip, chunked', 'Content-Type': 'text/plain', ETag: '"te1"' })
    res.end(req.method === 'HEAD' ? undefined : gz)
  })
  const errors: Error[] = []
  const koa = downloadApp((ctx) => { ctx.body = download(new HttpFile(`${o.url}/report.txt`)) })
  koa.on('error', (error: Error) => { errors.push(error) })
  const base = await listen(t, koa)
  for (const headers of [{}, { 'If-None-Match': '"other"' }]) {
    const what = JSON.stringify(headers)
    errors.length = 0
    const res = await rawRequest(`${base}/`, { headers })
    t.is(res.status, 502, what)
    t.true(res.complete, what)
    t.is(res.headers['content-length'], '11', what)
    t.is(res.headers.etag, undefined, what)
    t.is(res.body.toString(), 'Bad Gateway', what)
    t.is((errors[0]?.cause as Error | undefined)?.message, `${o.url}/report.txt: Transfer-Encoding gzip, chunked: a transfer coding other than chunked`, what)
  }
})

test.serial('http: an origin whose HEAD announces an encoded body (Content-Encoding: gzip, or a transfer coding) → 502 for HEAD and conditional requests too, as for the GET (HEAD was a 200, a matching If-None-Match a 304)', async (t) => {
  const gz = gzipSync(Buffer.from('the real file content\n'.repeat(10)))
  for (const coding of [{ 'Content-Encoding': 'gzip', 'Content-Length': String(gz.length) }, { 'Transfer-Encoding': 'gzip, chunked' }]) {
    const o = await plainOrigin(t, (req, res) => {
      res.writeHead(200, { ...coding, 'Accept-Ranges': 'bytes', ETag: '"z1"' })
      res.end(req.method === 'HEAD' ? undefined : gz)
    })
    const base = await app(t, () => new HttpFile(`${o.url}/file.bin`))
    for (const [method, headers, upstream] of [
      ['HEAD', {}, ['HEAD']],
      ['GET', { 'If-None-Match': '"z1"' }, ['HEAD']],
      // The GET that was to be stat() and body at once is refused for its coding: its HEAD decides.
      ['GET', {}, ['GET', 'HEAD']],
      ['GET', { Range: 'bytes=0-9' }, ['GET bytes=0-9', 'HEAD']]
    ] as const) {
      const what = `${JSON.stringify(coding)} ${method} ${JSON.stringify(headers)}`
      o.seen.length = 0
      const res = await rawRequest(`${base}/`, { method, headers })
      t.is(res.status, 502, what)
      t.is(res.headers['content-length'], '11', what)
      t.is(res.headers.etag, undefined, what)
      t.is(res.headers['content-disposition'], undefined, what)
      t.is(res.body.toString(), method === 'HEAD' ? '' : 'Bad Gateway', what)
      t.deepEqual(o.seen, upstream, what)
    }
  }
})

test.serial('http: offloaded to an origin rule, a presigned URL (S3 and GCS send the stored coding whatever the client accepts) is not handed to the proxy for a client refusing gzip when it is coded: 502 as when it streams (was gzip bytes under the file\'s name); a client taking gzip, and a URL that is not presigned, are offloaded without a request to the origin', async (t) => {
  const gz = gzipSync(Buffer.from('a,b\n'.repeat(50)))
  const o = await plainOrigin(t, (req, res) => {
    res.writeHead(200, { 'Content-Encoding': 'gzip', 'Content-Length': String(gz.length), ETag: '"g1"' })
    res.end(req.method === 'HEAD' ? undefined : gz)
  })
  const rules = [nginx({ sourceUrl: `${o.url}/`, destinationUrl: '/_origin/' })]
  const signed = '?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc'
  const koa = downloadApp((ctx) => { ctx.body = download(new HttpFile(`${o.url}/report.csv${ctx.query.signed === '1' ? signed : ''}`)) }, { rules })
  koa.on('error', () => {})
  const base = await listen(t, koa)
  o.seen.length = 0
  const refusing = await rawRequest(`${base}/?signed=1`, { headers: { 'Accept-Encoding': 'identity' } })
  t.is(refusing.status, 502)
  t.is(refusing.headers['x-accel-redirect'], undefined)
  t.deepEqual(o.seen, ['HEAD'])
  o.seen.length = 0
  for (const headers of [{ 'Accept-Encoding': 'gzip, deflate, br' }, {}]) {
    const taking = await rawRequest(`${base}/?signed=1`, { headers })
    t.is(taking.status, 200, JSON.stringify(headers))
    t.is(taking.headers['x-accel-redirect'], '/_origin/report.csv', JSON.stringify(headers))
  }
  // Not presigned: the origin is taken to honour Accept-Encoding, which the proxy forwards.
  const plain = await rawRequest(`${base}/`, { headers: { 'Accept-Encoding': 'identity' } })
  t.is(plain.headers['x-accel-redirect'], '/_origin/report.csv')
  t.deepEqual(o.seen, [], 'no request to the origin for clients that take gzip, nor for a URL that is not presigned')
})

/** A one-off origin for a test: `handler` answers every request; the requests it got, as `METHOD path [range]`. */
async function scriptedOrigin (t: ExecutionContext, handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ url: string, seen: string[] }> {
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}${req.headers.range === undefined ? '' : ` [${req.headers.range}]`}`)
    handler(req, res, seen.length)
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

test('http: one HttpFile shared by requests keeps no failure: the origin\'s 503 is that request\'s, and the next asks the origin again', async (t) => {
  const { url, seen } = await scriptedOrigin(t, (req, res, n) => {
    if (n === 1) res.writeHead(503, { 'Content-Length': 4 }).end('down')
    else res.writeHead(200, { 'Content-Length': 5, ETag: '"v1"', 'Accept-Ranges': 'bytes' }).end(req.method === 'HEAD' ? undefined : 'hello')
  })
  const shared = new HttpFile(`${url}/a`)
  const base = await app(t, () => shared)
  t.is((await rawRequest(`${base}/`)).status, 503)
  const again = await rawRequest(`${base}/`)
  t.is(again.status, 200)
  t.is(again.body.toString(), 'hello')
  t.is((await rawRequest(`${base}/`, { method: 'HEAD' })).status, 200)
  t.deepEqual(seen, ['GET /a', 'GET /a', 'HEAD /a'])
})

test('http: one HttpFile shared by requests: a client that leaves while the HEAD is pending aborts its own HEAD, never another request\'s (no 500 for the client beside it, nor for later ones)', async (t) => {
  const { url } = await scriptedOrigin(t, (req, res) => {
    setTimeout(() => {
      if (res.destroyed) return
      res.writeHead(200, { 'Content-Length': 5, ETag: '"v1"' }).end(req.method === 'HEAD' ? undefined : 'hello')
    }, 300)
  })
  const shared = new HttpFile(`${url}/b`)
  const errors: Array<Error & { status?: number }> = []
  const koa = downloadApp((ctx) => { ctx.body = download(shared) })
  koa.on('error', (error: Error & { status?: number }) => { errors.push(error) })
  const base = await listen(t, koa)
  // A conditional request: stat() is a HEAD. The first client leaves 50 ms into it.
  const { leftWithError, stayed } = await leavingBesideStaying(`${base}/`, { 'If-None-Match': '"other"' })
  t.true(leftWithError)
  t.is(stayed.status, 200)
  t.is(stayed.body.toString(), 'hello')
  const later = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(later.status, 200)
  t.deepEqual(errors.filter((error) => (error.status ?? 500) >= 500), [])
})

test.serial('http: one HttpFile shared by requests sees the file change: a revalidation with the old ETag gets the new bytes, a HEAD the new length', async (t) => {
  origin.put('/versions.bin', { bytes: Buffer.alloc(1000, 'a'), etag: '"v1"' })
  const shared = new HttpFile(`${origin.url}/versions.bin`)
  const base = await app(t, () => shared)
  t.is((await rawRequest(`${base}/`)).headers.etag, '"v1"')
  t.is((await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"v1"' } })).status, 304)
  origin.put('/versions.bin', { bytes: Buffer.alloc(1500, 'b'), etag: '"v2"' })
  const revalidated = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"v1"' } })
  t.is(revalidated.status, 200)
  t.is(revalidated.headers.etag, '"v2"')
  t.true(revalidated.body.equals(Buffer.alloc(1500, 'b')))
  const head = await rawRequest(`${base}/`, { method: 'HEAD' })
  t.is(head.headers['content-length'], '1500')
})

test('http: each request follows the redirect again: a shared HttpFile does not keep the signed target of an earlier request, which expires', async (t) => {
  let generation = 0
  // Each signed target serves one GET (a one-time link; a HEAD does not use it up).
  const used = new Set<string>()
  const { url, seen } = await scriptedOrigin(t, (req, res) => {
    const target = new URL(req.url ?? '/', 'http://x')
    const gen = target.searchParams.get('gen') ?? ''
    if (target.pathname === '/dl') {
      generation++
      res.writeHead(302, { Location: `/signed?gen=${generation}`, 'Content-Length': 0 }).end()
    } else if (!used.has(gen)) {
      if (req.method === 'GET') used.add(gen)
      res.writeHead(200, { 'Content-Length': 5, ETag: '"e"' }).end(req.method === 'HEAD' ? undefined : 'bytes')
    } else {
      res.writeHead(403, { 'Content-Length': 7 }).end('expired')
    }
  })
  const shared = new HttpFile(`${url}/dl`)
  const base = await app(t, () => shared)
  for (const headers of [{}, { 'If-None-Match': '"other"' }, {}, { 'If-None-Match': '"other"' }]) {
    const res = await rawRequest(`${base}/`, { headers })
    t.is(res.status, 200, JSON.stringify(headers))
    t.is(res.body.toString(), 'bytes')
  }
  // Every request asked /dl itself, and no request went to a target of an earlier one.
  t.is(seen.filter((line) => line.endsWith(' /dl')).length, generation)
})

test('http: a link that redirects to a presigned URL (signed for GET: HEAD refused with 403) answers HEAD, revalidations and several ranges, as the presigned URL itself does', async (t) => {
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251))
  const { url } = await scriptedOrigin(t, (req, res) => {
    const target = new URL(req.url ?? '/', 'http://x')
    if (target.pathname === '/releases/asset.zip') {
      res.writeHead(302, { Location: '/bucket/asset.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc', 'Content-Length': 0 }).end()
      return
    }
    if (req.method === 'HEAD') {
      res.writeHead(403, { 'Content-Length': 0 }).end()
      return
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (range === null) {
      res.writeHead(200, { 'Content-Length': bytes.length, ETag: '"s3etag"', 'Accept-Ranges': 'bytes', 'Content-Type': 'application/zip' }).end(bytes)
      return
    }
    const [start, end] = [Number(range[1]), Math.min(Number(range[2]), bytes.length - 1)]
    res.writeHead(206, { 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${bytes.length}`, ETag: '"s3etag"', 'Accept-Ranges': 'bytes', 'Content-Type': 'application/zip' }).end(bytes.subarray(start, end + 1))
  })
  const base = await app(t, () => new HttpFile(`${url}/releases/asset.zip`))
  const head = await rawRequest(`${base}/`, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], '1000')
  t.is(head.headers.etag, '"s3etag"')
  t.is((await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"s3etag"' } })).status, 304)
  const multi = await rawRequest(`${base}/`, { headers: { Range: 'bytes=0-1,500-501' } })
  t.is(multi.status, 206)
  t.regex(multi.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/)
  t.true(multi.body.includes(bytes.subarray(500, 502)))
})

test.serial('http: a route\'s own stat() and serve()\'s share one upstream request', async (t) => {
  origin.put('/own.bin', { bytes: 'abcdefghij' })
  const base = await listen(t, downloadApp(async (ctx) => {
    const file = new HttpFile(`${origin.url}/own.bin`)
    if ((await file.stat()).size !== 10) ctx.throw(500)
    ctx.body = download(file)
  }))
  origin.log.clear()
  const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
  t.is(res.status, 200)
  t.deepEqual(origin.log.entries.map((e) => e.method), ['HEAD', 'GET'])
})

test.serial('http: stat() called by the app itself (no request signal) answers again from the same lookup for a second, then asks the origin again', async (t) => {
  origin.put('/direct.bin', { bytes: 'one', etag: '"d1"' })
  const file = new HttpFile(`${origin.url}/direct.bin`)
  // A signal the app keeps longer than a request (misuse, but not a cache for good either).
  const kept = new AbortController().signal
  t.is((await file.stat({ signal: kept })).etag, '"d1"')
  t.is((await file.stat()).etag, '"d1"')
  origin.put('/direct.bin', { bytes: 'three', etag: '"d2"' })
  origin.log.clear()
  t.is((await file.stat()).etag, '"d1"')
  t.is((await file.stat({ signal: kept })).etag, '"d1"')
  t.deepEqual(origin.log.entries, [])
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const later = await file.stat()
  t.is(later.etag, '"d2"')
  t.is(later.size, 5)
  t.is((await file.stat({ signal: kept })).etag, '"d2"')
})

test('http: a request planning again after E_CHANGED asks the origin itself, even when the app\'s own stat() of the shared instance saw the old file a moment before', async (t) => {
  let version = 1
  let held: (() => void) | undefined
  let gets = 0
  const { url, seen } = await scriptedOrigin(t, (req, res) => {
    const answer = (): void => {
      const etag = `"v${version}"`
      const bytes = Buffer.alloc(version * 100, version === 1 ? 'a' : 'b')
      if (req.headers['if-match'] !== undefined && req.headers['if-match'] !== etag) {
        res.writeHead(412, { 'Content-Length': 0 }).end()
        return
      }
      res.writeHead(200, { 'Content-Length': bytes.length, ETag: etag, 'Accept-Ranges': 'bytes' }).end(req.method === 'HEAD' ? undefined : bytes)
    }
    // The first GET waits until the test lets it go.
    if (req.method === 'GET' && ++gets === 1) held = answer
    else answer()
  })
  const shared = new HttpFile(`${url}/f.bin`)
  const base = await app(t, () => shared)
  // A conditional GET: stat() is a HEAD, then the GET with If-Match, held by the origin.
  const pending = rawRequest(`${base}/`, { headers: { 'If-None-Match': '"x"' } })
  while (held === undefined) await new Promise((resolve) => setTimeout(resolve, 10))
  t.is((await shared.stat()).etag, '"v1"')
  version = 2
  held()
  const res = await pending
  t.is(res.status, 200)
  t.is(res.headers.etag, '"v2"')
  t.true(res.body.equals(Buffer.alloc(200, 'b')))
  t.deepEqual(seen.slice(-2), ['HEAD /f.bin', 'GET /f.bin'])
})
