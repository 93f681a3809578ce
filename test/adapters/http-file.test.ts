import test from 'ava'
import type { ExecutionContext } from 'ava'
import { download } from '../../source/download.ts'
import { HttpFile } from '../../adapters/http/index.ts'
import { fileContract, rawRequest } from '../helpers/file-contract.ts'
import { downloadApp } from '../helpers/koa.ts'
import { listen } from '../helpers/listen.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'

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

test.serial('http: a full download costs one HEAD and one GET, with Accept-Encoding: identity and If-Match', async (t) => {
  origin.put('/count.bin', { bytes: 'abcdefghij' })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/count.bin`))
  const res = await rawRequest(`${base}/`)
  t.is(res.body.toString(), 'abcdefghij')
  t.deepEqual(origin.log.entries.map((e) => e.method), ['HEAD', 'GET'])
  const get = origin.log.entries[1]
  t.is(get?.headers['accept-encoding'], 'identity')
  t.regex(get?.headers['if-match'] ?? '', /^"[0-9a-f]+"$/)
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

test.serial('http: upstream statuses map to 404, 502, 503 and never leak the upstream body', async (t) => {
  for (const [status, expected] of [[410, 404], [500, 502], [403, 502], [503, 503]] as const) {
    origin.fail(`/status-${status}`, status)
    const base = await app(t, () => new HttpFile(`${origin.url}/status-${status}`))
    const res = await rawRequest(`${base}/`)
    t.is(res.status, expected, String(status))
    t.false(res.body.toString().includes('upstream'), String(status))
    t.is(res.headers['set-cookie'], undefined)
  }
})

test.serial('http: an origin that ignores Range is served whole (no ranges announced, nothing sliced locally)', async (t) => {
  origin.put('/noranges.bin', { bytes: '0123456789', ranges: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/noranges.bin`))
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=2-4' } })
  t.is(res.status, 200)
  t.is(res.body.toString(), '0123456789')
  t.not(res.headers['accept-ranges'], 'bytes')
  t.true(origin.log.entries.every((e) => e.range === undefined))
})

test.serial('http: an origin that refuses HEAD (405) is stat\'ed with a one-byte ranged GET', async (t) => {
  origin.put('/nohead.bin', { bytes: '0123456789', head: false })
  origin.log.clear()
  const base = await app(t, () => new HttpFile(`${origin.url}/nohead.bin`))
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=3-5' } })
  t.is(res.status, 206)
  t.is(res.headers['content-range'], 'bytes 3-5/10')
  t.is(res.body.toString(), '345')
  t.deepEqual(origin.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD ', 'GET bytes=0-0', 'GET bytes=3-5'])
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

test('http: options are validated at setup with TypeErrors naming the option', (t) => {
  t.throws(() => new HttpFile('ftp://example.com/x'), { instanceOf: TypeError, message: /url must be an absolute http/ })
  t.throws(() => new HttpFile('https://example.com/x', { timeout: -1 }), { instanceOf: TypeError, message: /timeout/ })
  t.throws(() => new HttpFile('https://example.com/x', { headers: { Range: 'bytes=0-1' } }), { instanceOf: TypeError, message: /may not set Range/ })
  t.throws(() => new HttpFile('https://example.com/x', { headers: { 'X-A': 'a\r\nb' } }), { instanceOf: TypeError, message: /header-safe/ })
})
