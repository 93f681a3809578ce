import { AssertionError } from 'node:assert'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import fc from 'fast-check'
import Koa from 'koa'
import request from 'supertest'
import { apache } from '../source/backends/apache.ts'
import { caddy } from '../source/backends/caddy.ts'
import { internalRedirect } from '../source/backends/internal-redirect.ts'
import { lighttpd } from '../source/backends/lighttpd.ts'
import { nginx } from '../source/backends/nginx.ts'
import { contentDisposition, sanitizeFilename } from '../source/content-disposition.ts'
import { download } from '../source/download.ts'
import { PathFile } from '../source/path-file.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import type { DownloadFile } from '../source/types.ts'
import { assertDownload, assertInternalRedirect, assertXAccelRedirect, assertXSendfile, bufferParser, parseDisposition } from '../source/testing.ts'
import { downloadApp, fixtureRoot } from './helpers/koa.ts'

const rootRules = {
  nginx: nginx({ sourceDir: `${fixtureRoot}/snow ☃`, destinationUrl: '/protected/', limitRate: 1024, buffering: false, expires: 60, charset: 'utf-8' }),
  apache: apache({ sourceDir: `${fixtureRoot}/snow ☃`, destinationDir: '/srv/snow ☃' }),
  lighttpd: lighttpd({ sourceDir: `${fixtureRoot}/snow ☃`, destinationDir: '/srv/snow ☃' }),
  caddy: caddy({ sourceDir: `${fixtureRoot}/snow ☃`, destinationUrl: '/protected/', header: 'X-Caddy' }),
  redirect: internalRedirect({ sourceDir: `${fixtureRoot}/snow ☃`, destinationUrl: '/private/' })
}

/** An app that presents every file as 'résumé "1".txt' and offloads through one backend's rule (or streams). */
function appFor (kind: keyof typeof rootRules | 'stream'): Koa {
  return downloadApp((ctx) => {
    ctx.body = download(new PathFile(`${fixtureRoot}${decodeURIComponent(ctx.path)}`), { filename: 'résumé "1".txt', attachment: kind !== 'redirect', cacheControl: 'private' })
  }, { rules: kind === 'stream' ? [] : [rootRules[kind]] })
}

let server: ReturnType<Koa['listen']> | undefined
let base = ''
test.before(async () => {
  const listening = appFor('nginx').listen(0, '127.0.0.1')
  await once(listening, 'listening')
  server = listening
  base = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`
})
test.after.always(() => { server?.close() })

const nested = '/snow%20%E2%98%83/nested.txt'

test('assertXAccelRedirect passes on a supertest response (decoded redirect, filename, controls, empty body)', async (t) => {
  const res = await request(appFor('nginx').callback()).get(nested)
  await assertXAccelRedirect(res, {
    redirect: '/protected/nested.txt', contentType: 'text/plain; charset=utf-8', filename: 'résumé "1".txt', attachment: true,
    cacheControl: 'private', buffering: false, limitRate: 1024, expires: 60, charset: 'utf-8', headers: { 'X-Sendfile': null }
  })
  await assertXAccelRedirect(res, { redirect: /^\/protected\/nested\.txt$/ })
  t.pass()
})

test('assertXAccelRedirect passes on a fetch Response from a listening server', async (t) => {
  const res = await fetch(base + nested)
  await assertXAccelRedirect(res, { redirect: '/protected/nested.txt', filename: 'résumé "1".txt', expires: 60 })
  t.pass()
})

test('assertXAccelRedirect fails with a message naming the header and both values', async (t) => {
  const res = await request(appFor('nginx').callback()).get(nested)
  const wrong = await t.throwsAsync(assertXAccelRedirect(res, { redirect: '/protected/other.txt' }), { instanceOf: AssertionError })
  t.is(wrong?.message, 'assertXAccelRedirect: X-Accel-Redirect is "/protected/nested.txt" (decoded "/protected/nested.txt"), expected "/protected/other.txt"')
  const rate = await t.throwsAsync(assertXAccelRedirect(res, { limitRate: 0 }), { instanceOf: AssertionError })
  t.is(rate?.message, 'assertXAccelRedirect: X-Accel-Limit-Rate is "1024", expected "0"')
  const name = await t.throwsAsync(assertXAccelRedirect(res, { filename: 'resume.txt' }), { instanceOf: AssertionError })
  t.regex(name?.message ?? '', /^assertXAccelRedirect: Content-Disposition is ".*": filename "résumé \\"1\\".txt", expected "resume.txt"$/)
  // A RegExp for a name that changes (a date in it); shown as the pattern when it fails. One with the
  // g flag matches again and again (its lastIndex is reset).
  const dated = /^résumé "\d"\.txt$/g
  await assertXAccelRedirect(res, { filename: dated })
  await assertXAccelRedirect(res, { filename: dated })
  const pattern = await t.throwsAsync(assertXAccelRedirect(res, { filename: /^users \d{4}-\d{2}-\d{2}\.csv$/ }), { instanceOf: AssertionError })
  t.regex(pattern?.message ?? '', /: filename "résumé \\"1\\".txt", expected \/\^users \\d\{4\}-\\d\{2\}-\\d\{2\}\\\.csv\$\/$/)
  const inline = await t.throwsAsync(assertXAccelRedirect(res, { attachment: false }), { instanceOf: AssertionError })
  t.regex(inline?.message ?? '', /expected inline$/)
  const absent = await t.throwsAsync(assertXAccelRedirect(res, { charset: null }), { instanceOf: AssertionError })
  t.is(absent?.message, 'assertXAccelRedirect: X-Accel-Charset is "utf-8", expected absent')
})

test('assertXAccelRedirect fails on a streamed response: the header is absent', async (t) => {
  const res = await request(appFor('stream').callback()).get(nested)
  const error = await t.throwsAsync(assertXAccelRedirect(res), { instanceOf: AssertionError })
  t.is(error?.message, 'assertXAccelRedirect: X-Accel-Redirect is absent: the response was not offloaded')
  const fetched = await t.throwsAsync(assertXAccelRedirect(await fetch(`${base}/hello.txt`)), { instanceOf: AssertionError })
  t.regex(fetched?.message ?? '', /X-Accel-Redirect is absent/)
})

test('assertXAccelRedirect with a Caddy header and raw encoding', async (t) => {
  const res = await request(appFor('caddy').callback()).get(nested)
  await assertXAccelRedirect(res, { header: 'X-Caddy', encoding: 'raw', redirect: '/protected/nested.txt', filename: 'résumé "1".txt' })
  await t.throwsAsync(assertXAccelRedirect(res), { instanceOf: AssertionError, message: /X-Accel-Redirect is absent/ })
})

test('assertXAccelRedirect with expires: false passes on what nginx({ expires: false }) sends (X-Accel-Expires: 0, supertest and fetch) and fails on any other value', async (t) => {
  const rule = (expires?: false): ReturnType<typeof nginx> => nginx({ sourceDir: `${fixtureRoot}/snow ☃`, destinationUrl: '/protected/', ...(expires === undefined ? {} : { expires }) })
  const serving = (expires?: false): Koa => downloadApp((ctx) => { ctx.body = download(new PathFile(`${fixtureRoot}${decodeURIComponent(ctx.path)}`)) }, { rules: [rule(expires)] })
  const res = await request(serving(false).callback()).get(nested)
  t.is(res.headers['x-accel-expires'], '0')
  await assertXAccelRedirect(res, { redirect: '/protected/nested.txt', expires: false })
  const listening = serving(false).listen(0, '127.0.0.1')
  await once(listening, 'listening')
  t.teardown(() => { listening.close() })
  await assertXAccelRedirect(await fetch(`http://127.0.0.1:${(listening.address() as AddressInfo).port}${nested}`), { redirect: '/protected/nested.txt', expires: false })
  // Another value (nginx({ expires: 60 })), or none at all (nginx() without expires): an assertion failure naming both.
  const sixty = await t.throwsAsync(assertXAccelRedirect(await request(appFor('nginx').callback()).get(nested), { expires: false }), { instanceOf: AssertionError })
  t.is(sixty?.message, 'assertXAccelRedirect: X-Accel-Expires is "60", expected "0"')
  const none = await t.throwsAsync(assertXAccelRedirect(await request(serving().callback()).get(nested), { expires: false }), { instanceOf: AssertionError })
  t.is(none?.message, 'assertXAccelRedirect: X-Accel-Expires is absent, expected "0"')
})

test('the offloaded-body check fails when a response carries bytes', async (t) => {
  const fake = { status: 200, headers: { 'x-accel-redirect': '/p/a', 'content-length': '3' }, text: 'abc' }
  const error = await t.throwsAsync(assertXAccelRedirect(fake), { instanceOf: AssertionError })
  t.is(error?.message, 'assertXAccelRedirect: Content-Length is 3, expected 0 on an offloaded response')
  const chunked = { status: 200, headers: { 'x-accel-redirect': '/p/a' }, body: Buffer.from('abc') }
  await t.throwsAsync(assertXAccelRedirect(chunked), { instanceOf: AssertionError, message: 'assertXAccelRedirect: the offloaded response has a 3-byte body, expected none' })
})

test('assertXSendfile: Apache raw UTF-8 path and lighttpd percent-encoded path, supertest and fetch', async (t) => {
  const a = await request(appFor('apache').callback()).get(nested)
  await assertXSendfile(a, { path: '/srv/snow ☃/nested.txt', filename: 'résumé "1".txt', headers: { ETag: /^"/, 'Last-Modified': /GMT$/ } })
  const l = await request(appFor('lighttpd').callback()).get(nested)
  await assertXSendfile(l, { path: '/srv/snow ☃/nested.txt', encoding: 'percent' })
  const error = await t.throwsAsync(assertXSendfile(l, { path: '/srv/snow ☃/nested.txt' }), { instanceOf: AssertionError })
  t.is(error?.message, 'assertXSendfile: X-Sendfile is "/srv/snow%20%E2%98%83/nested.txt" (decoded "/srv/snow%20%E2%98%83/nested.txt"), expected "/srv/snow ☃/nested.txt"')

  const apacheServer = appFor('apache').listen(0, '127.0.0.1')
  await once(apacheServer, 'listening')
  t.teardown(() => { apacheServer.close() })
  const fetched = await fetch(`http://127.0.0.1:${(apacheServer.address() as AddressInfo).port}${nested}`)
  await assertXSendfile(fetched, { path: '/srv/snow ☃/nested.txt', status: 200 })
  const status = await t.throwsAsync(assertXSendfile(fetched, { status: 206 }), { instanceOf: AssertionError })
  t.is(status?.message, 'assertXSendfile: status is 200, expected 206')
})

test('assertInternalRedirect: Location decoded, inline disposition; fails on nginx responses', async (t) => {
  const res = await request(appFor('redirect').callback()).get(nested).redirects(0)
  await assertInternalRedirect(res, { location: '/private/nested.txt', attachment: false, filename: 'résumé "1".txt' })
  const nginxRes = await request(appFor('nginx').callback()).get(nested)
  await t.throwsAsync(assertInternalRedirect(nginxRes), { instanceOf: AssertionError, message: 'assertInternalRedirect: Location is absent: the response was not offloaded' })
})

test('assertDownload: streamed bytes compared exactly, via supertest and fetch', async (t) => {
  const bytes = await readFile(`${fixtureRoot}/snow ☃/nested.txt`)
  const res = await request(appFor('stream').callback()).get(nested)
  await assertDownload(res, { body: bytes, contentType: /^text\/plain/, filename: 'résumé "1".txt', attachment: true })
  await assertDownload(res, { body: bytes.toString('utf8') })
  const fetched = await fetch(`${base}/hello.txt`)
  await assertDownload(fetched, { body: 'Hello, world!\n', filename: 'résumé "1".txt' })
  const binary = await request(appFor('stream').callback()).get('/binary.bin').buffer(true).parse(bufferParser)
  await assertDownload(binary, { body: await readFile(`${fixtureRoot}/binary.bin`), contentType: 'text/plain; charset=utf-8' })
  t.pass()
})

test('assertDownload: supertest decodes text/* bodies lossily; the bytes are exact with bufferParser', async (t) => {
  const lossy = await request(appFor('stream').callback()).get('/binary.bin')
  await t.throwsAsync(assertDownload(lossy, { body: await readFile(`${fixtureRoot}/binary.bin`) }), { instanceOf: AssertionError, message: /^assertDownload: body differs: \d+ bytes received, 200000 expected/ })
})

test('assertDownload: supertest decodes application/zip (any type it does not know as binary) as UTF-8 too; the failure says so, and bufferParser gives the bytes', async (t) => {
  // A ZIP local header: bytes 10 to 13 are not valid UTF-8.
  const zip = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0xb7, 0x8c, 0xfe, 0xff])
  const app = downloadApp((ctx) => { ctx.body = download(new VirtualFile(zip, { name: 'export.zip' })) })
  const decoded = await request(app.callback()).get('/export.zip')
  t.is(decoded.headers['content-type'], 'application/zip')
  t.is(decoded.text, 'PK\u0003\u0004\u0014\u0000\u0000\u0000\b\u0000\uFFFD\uFFFD\uFFFD\uFFFD')
  const error = await t.throwsAsync(assertDownload(decoded, { filename: 'export.zip', body: zip }), { instanceOf: AssertionError })
  t.is(error?.message, 'assertDownload: body differs: 22 bytes received, 14 expected; first difference at byte 10; supertest decoded this application/zip body as UTF-8 text, which changes bytes that are not valid UTF-8: request with .buffer(true).parse(bufferParser) from koa-downloads/testing to compare the exact bytes')
  await assertDownload(await request(app.callback()).get('/export.zip').buffer(true).parse(bufferParser), { filename: 'export.zip', body: zip })
})

test('assertDownload fails on wrong bytes, on an offloaded response and on a wrong type', async (t) => {
  const res = await request(appFor('stream').callback()).get('/hello.txt')
  const body = await t.throwsAsync(assertDownload(res, { body: 'Hello, World!\n' }), { instanceOf: AssertionError })
  t.is(body?.message, 'assertDownload: body differs: 14 bytes received, 14 expected; first difference at byte 7')
  const type = await t.throwsAsync(assertDownload(res, { contentType: 'application/pdf' }), { instanceOf: AssertionError })
  t.is(type?.message, 'assertDownload: Content-Type is "text/plain; charset=utf-8", expected "application/pdf"')
  const offloaded = await t.throwsAsync(assertDownload(await fetch(base + nested)), { instanceOf: AssertionError })
  t.is(offloaded?.message, 'assertDownload: expected a streamed download, but X-Accel-Redirect is "/protected/nested.txt" (offloaded)')
  const used = await fetch(`${base}/hello.txt`)
  await used.text()
  await t.throwsAsync(assertDownload(used, { body: 'x' }), { instanceOf: AssertionError, message: 'assertDownload: the response body is not available: the fetch Response body was read before the assertion (assert first)' })
})

test('a non-response argument is a TypeError, not an assertion failure', async (t) => {
  await t.throwsAsync(assertDownload({} as never), { instanceOf: TypeError, message: /^assertDownload\(\): response must be/ })
})

test('parseDisposition: filename* wins over filename; quoted-string unescaped; token form', (t) => {
  t.deepEqual(parseDisposition('attachment; filename="resume.txt"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9.txt'), { type: 'attachment', filename: 'résumé.txt' })
  t.deepEqual(parseDisposition('Inline; filename="say \\"hi\\".txt"'), { type: 'inline', filename: 'say "hi".txt' })
  t.deepEqual(parseDisposition('attachment; filename=plain.txt'), { type: 'attachment', filename: 'plain.txt' })
  t.deepEqual(parseDisposition('attachment'), { type: 'attachment', filename: undefined })
})


// ---- A "?" in a file name versus a query: each server's reading of the value (proxies.md §2, §5) ----

/** A directory holding `q?x.txt`: nginx and CGI gateways need it as %3F, Apache and lighttpd take it either way. */
let qdir = ''
test.before(async () => {
  qdir = await mkdtemp(`${tmpdir()}/kd-testing-`)
  await writeFile(`${qdir}/q?x.txt`, 'q')
  await writeFile(`${qdir}/empty.txt`, '')
})
test.after.always(async () => { await rm(qdir, { recursive: true, force: true }) })

/** An app that answers every request with an empty 200 carrying `headers`: a hand-written offload. */
function headerApp (headers: Record<string, string>): Koa {
  const app = new Koa()
  app.silent = true
  app.use((ctx) => { ctx.set(headers); ctx.type = 'text/plain'; ctx.body = '' })
  return app
}

/** Listens on loopback until the test ends; the base URL. */
async function listen (t: ExecutionContext, app: Koa): Promise<string> {
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A file known only by its URL (a storage object). */
function urlFile (url: string): DownloadFile {
  return { name: 'object.bin', url, stat: async () => ({ size: 3 }), open: async () => { throw new Error('an offloaded file is never opened') } }
}

const noQueryAdvice = '(a "?" in a file name is sent as %3F; a query is expected with the query option)'

test('assertXAccelRedirect: a file named q?x.txt passes only as %3F; a raw "?" is the query nginx splits off (supertest and fetch)', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${qdir}/q?x.txt`) }, { rules: [nginx({ sourceDir: qdir, destinationUrl: '/protected/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/protected/q%3Fx.txt')
  await assertXAccelRedirect(res, { redirect: '/protected/q?x.txt' })
  await assertXAccelRedirect(res, { redirect: '/protected/q?x.txt', query: null })
  await assertXAccelRedirect(await fetch(await listen(t, app)), { redirect: '/protected/q?x.txt' })

  // nginx reads this one as the file /protected/q with the args x.txt (measured: 404).
  const rawApp = headerApp({ 'X-Accel-Redirect': '/protected/q?x.txt' })
  const splitMessage = 'assertXAccelRedirect: X-Accel-Redirect is "/protected/q?x.txt": nginx reads the path "/protected/q" and the query "x.txt" (a raw "?" starts a query), expected the path "/protected/q?x.txt" ' + noQueryAdvice
  await t.throwsAsync(assertXAccelRedirect(await request(rawApp.callback()).get('/'), { redirect: '/protected/q?x.txt' }), { instanceOf: AssertionError, message: splitMessage })
  await t.throwsAsync(assertXAccelRedirect(await fetch(await listen(t, rawApp)), { redirect: '/protected/q?x.txt' }), { instanceOf: AssertionError, message: splitMessage })
  const raw = await request(rawApp.callback()).get('/')
  await t.throwsAsync(assertXAccelRedirect(raw, { redirect: '/protected/q' }), {
    instanceOf: AssertionError, message: `assertXAccelRedirect: X-Accel-Redirect is "/protected/q?x.txt": its raw "?" starts the query "x.txt", expected none ${noQueryAdvice}`
  })
  await t.throwsAsync(assertXAccelRedirect(raw, { redirect: '/protected/q', query: null }), { instanceOf: AssertionError, message: /starts the query "x\.txt", expected none/ })
  // What nginx does with it, spelled out, passes.
  await assertXAccelRedirect(raw, { redirect: '/protected/q', query: 'x.txt' })
})

test('assertXAccelRedirect, Caddy (raw): a raw "?" is a query, %3F is not decoded; the caddy() rule streams such a name', async (t) => {
  const raw = await request(headerApp({ 'X-Caddy': '/protected/q?x.txt' }).callback()).get('/')
  await t.throwsAsync(assertXAccelRedirect(raw, { header: 'X-Caddy', encoding: 'raw', redirect: '/protected/q?x.txt' }), {
    instanceOf: AssertionError,
    message: 'assertXAccelRedirect: X-Caddy is "/protected/q?x.txt": Caddy reads the path "/protected/q" and the query "x.txt" (a raw "?" starts a query), expected the path "/protected/q?x.txt" ' + noQueryAdvice
  })
  const encoded = await request(headerApp({ 'X-Caddy': '/protected/q%3Fx.txt' }).callback()).get('/')
  await t.throwsAsync(assertXAccelRedirect(encoded, { header: 'X-Caddy', encoding: 'raw', redirect: '/protected/q?x.txt' }), {
    instanceOf: AssertionError, message: 'assertXAccelRedirect: X-Caddy is "/protected/q%3Fx.txt" (decoded "/protected/q%3Fx.txt"), expected "/protected/q?x.txt"'
  })
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${qdir}/q?x.txt`) }, { rules: [caddy({ sourceDir: qdir, destinationUrl: '/protected/', header: 'X-Caddy' })] })
  const streamed = await request(app.callback()).get('/')
  await t.throwsAsync(assertXAccelRedirect(streamed, { header: 'X-Caddy', encoding: 'raw', redirect: '/protected/q?x.txt' }), {
    instanceOf: AssertionError, message: 'assertXAccelRedirect: X-Caddy is absent: the response was not offloaded'
  })
  await assertDownload(streamed, { body: 'q' })
})

test('assertXAccelRedirect: a presigned query after /_remote/ is expected with query, compared verbatim', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = urlFile('http://127.0.0.1:9000/bucket/k%20x.bin?X-Amz-Signature=a%2Fb') }, { rules: [nginx({ remote: true, destinationUrl: '/_remote/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/_remote/http/127.0.0.1:9000/bucket/k%2520x.bin?X-Amz-Signature=a%2Fb')
  await assertXAccelRedirect(res, { redirect: '/_remote/http/127.0.0.1:9000/bucket/k%20x.bin', query: 'X-Amz-Signature=a%2Fb' })
  await assertXAccelRedirect(res, { redirect: /^\/_remote\/http\//, query: /^X-Amz-Signature=/ })
  await assertXAccelRedirect(res, { redirect: /^\/_remote\/http\// }) // a RegExp alone checks no query
  await t.throwsAsync(assertXAccelRedirect(res, { redirect: '/_remote/http/127.0.0.1:9000/bucket/k%20x.bin?X-Amz-Signature=a%2Fb' }), {
    instanceOf: AssertionError, message: /^assertXAccelRedirect: X-Accel-Redirect is ".*": nginx reads the path "\/_remote\/http\/127\.0\.0\.1:9000\/bucket\/k%20x\.bin" and the query "X-Amz-Signature=a%2Fb" \(a raw "\?" starts a query\)/
  })
  await t.throwsAsync(assertXAccelRedirect(res, { redirect: '/_remote/http/127.0.0.1:9000/bucket/k%20x.bin' }), {
    instanceOf: AssertionError, message: `assertXAccelRedirect: X-Accel-Redirect is "/_remote/http/127.0.0.1:9000/bucket/k%2520x.bin?X-Amz-Signature=a%2Fb": its raw "?" starts the query "X-Amz-Signature=a%2Fb", expected none ${noQueryAdvice}`
  })
  await t.throwsAsync(assertXAccelRedirect(res, { query: 'X-Amz-Signature=a/b' }), {
    instanceOf: AssertionError, message: 'assertXAccelRedirect: X-Accel-Redirect is "/_remote/http/127.0.0.1:9000/bucket/k%2520x.bin?X-Amz-Signature=a%2Fb": query "X-Amz-Signature=a%2Fb", expected "X-Amz-Signature=a/b"'
  })
  await t.throwsAsync(assertXAccelRedirect(await request(appFor('nginx').callback()).get(nested), { query: 'sig=1' }), {
    instanceOf: AssertionError, message: 'assertXAccelRedirect: X-Accel-Redirect is "/protected/nested.txt", with no query; expected the query "sig=1"'
  })
})

test('assertInternalRedirect: %3F in Location is part of the name, a raw "?" starts the query (supertest and fetch)', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = urlFile('https://cdn.example/media/a%20b/q%3Fx.bin?sig=abc') }, {
    rules: [internalRedirect({ sourceUrl: 'https://cdn.example/media/', destinationUrl: '/_origin/', forwardQuery: true })]
  })
  const res = await request(app.callback()).get('/').redirects(0)
  t.is(res.headers.location, '/_origin/a%20b/q%3Fx.bin?sig=abc')
  await assertInternalRedirect(res, { location: '/_origin/a b/q?x.bin', query: 'sig=abc' })
  await assertInternalRedirect(await fetch(await listen(t, app)), { location: '/_origin/a b/q?x.bin', query: 'sig=abc' })
  await t.throwsAsync(assertInternalRedirect(res, { location: '/_origin/a b/q?x.bin' }), {
    instanceOf: AssertionError, message: `assertInternalRedirect: Location is "/_origin/a%20b/q%3Fx.bin?sig=abc": its raw "?" starts the query "sig=abc", expected none ${noQueryAdvice}`
  })
  const raw = await request(headerApp({ Location: '/private/q?x.txt' }).callback()).get('/').redirects(0)
  await t.throwsAsync(assertInternalRedirect(raw, { location: '/private/q?x.txt' }), {
    instanceOf: AssertionError,
    message: 'assertInternalRedirect: Location is "/private/q?x.txt": the gateway reads the path "/private/q" and the query "x.txt" (a raw "?" starts a query), expected the path "/private/q?x.txt" ' + noQueryAdvice
  })
})

test('assertXSendfile: the whole value is the file path, "?" included (Apache raw, lighttpd decoded whole)', async (t) => {
  const apacheApp = downloadApp((ctx) => { ctx.body = new PathFile(`${qdir}/q?x.txt`) }, { rules: [apache({ sourceDir: qdir, destinationDir: '/srv/q' })] })
  const a = await request(apacheApp.callback()).get('/')
  t.is(a.headers['x-sendfile'], '/srv/q/q?x.txt')
  await assertXSendfile(a, { path: '/srv/q/q?x.txt' })
  const lighttpdApp = downloadApp((ctx) => { ctx.body = new PathFile(`${qdir}/q?x.txt`) }, { rules: [lighttpd({ sourceDir: qdir, destinationDir: '/srv/q' })] })
  const l = await request(lighttpdApp.callback()).get('/')
  t.is(l.headers['x-sendfile'], '/srv/q/q%3Fx.txt')
  await assertXSendfile(l, { path: '/srv/q/q?x.txt', encoding: 'percent' })
  // lighttpd's buffer_urldecode_path decodes past a raw "?": it serves /srv/q?A.txt for this value.
  const rawQ = await request(headerApp({ 'X-Sendfile': '/srv/q?%41.txt' }).callback()).get('/')
  await assertXSendfile(rawQ, { path: '/srv/q?A.txt', encoding: 'percent' })
  await t.throwsAsync(assertXSendfile(rawQ, { path: '/srv/q?%41.txt', encoding: 'percent' }), {
    instanceOf: AssertionError, message: 'assertXSendfile: X-Sendfile is "/srv/q?%41.txt" (decoded "/srv/q?A.txt"), expected "/srv/q?%41.txt"'
  })
  const invalid = await request(headerApp({ 'X-Sendfile': '/srv/%FF.txt' }).callback()).get('/')
  await t.throwsAsync(assertXSendfile(invalid, { path: '/srv/\uFFFD.txt', encoding: 'percent' }), {
    instanceOf: AssertionError, message: 'assertXSendfile: X-Sendfile is "/srv/%FF.txt" (not decodable: its bytes, percent-decoded, "/srv/\\xFF.txt" are not UTF-8), expected "/srv/\uFFFD.txt"'
  })
  const broken = await request(headerApp({ 'X-Sendfile': '/srv/%F.txt' }).callback()).get('/')
  await t.throwsAsync(assertXSendfile(broken, { path: '/srv/%F.txt', encoding: 'percent' }), {
    instanceOf: AssertionError, message: 'assertXSendfile: X-Sendfile is "/srv/%F.txt" (not decodable: invalid percent-encoding "%F."), expected "/srv/%F.txt"'
  })
})

// ---- Header values are bytes (proxies.md §2) ----

/** `name` as Node sends a header string: one byte per character, so the UTF-8 bytes as latin1. */
const utf8Bytes = (name: string): string => Buffer.from(name, 'utf8').toString('latin1')

test('the path helpers read the header as bytes: a hand-written "ä" is the single byte 0xE4 (nginx: 404) and fails; its UTF-8 bytes, raw or percent-encoded, pass (supertest and fetch)', async (t) => {
  const headers = (path: (p: string) => string): Record<string, string> => ({
    'X-Accel-Redirect': path('/protected/März.txt'), 'X-Sendfile': path('/srv/März.txt'), Location: path('/private/März.txt'), 'X-Caddy': path('/protected/März.txt')
  })
  const responses = async (app: Koa): Promise<Array<request.Response | Response>> => [await request(app.callback()).get('/').redirects(0), await fetch(await listen(t, app))]
  for (const r of await responses(headerApp(headers((p) => p)))) {
    // Both clients hand the byte 0xE4 over as "ä" (U+00E4): the string looks right, the bytes are not.
    t.is(r instanceof Response ? r.headers.get('x-accel-redirect') : r.headers['x-accel-redirect'], '/protected/M\u00e4rz.txt')
    const percent = (name: string, value: string): string => `${name} is ${JSON.stringify(value)} (not decodable: its bytes "${value.replace('ä', '\\xE4')}" are not UTF-8; a header carries one byte per character, so the raw "ä" is the single byte 0xE4, not UTF-8: percent-encode the name)`
    await t.throwsAsync(assertXAccelRedirect(r, { redirect: '/protected/März.txt' }), {
      instanceOf: AssertionError, message: `assertXAccelRedirect: ${percent('X-Accel-Redirect', '/protected/März.txt')}, expected "/protected/März.txt"`
    })
    await t.throwsAsync(assertXSendfile(r, { path: '/srv/März.txt', encoding: 'percent' }), {
      instanceOf: AssertionError, message: `assertXSendfile: ${percent('X-Sendfile', '/srv/März.txt')}, expected "/srv/März.txt"`
    })
    await t.throwsAsync(assertInternalRedirect(r, { location: '/private/März.txt' }), {
      instanceOf: AssertionError, message: `assertInternalRedirect: ${percent('Location', '/private/März.txt')}, expected "/private/März.txt"`
    })
    // Apache and Caddy take the bytes as sent: the advice differs.
    const raw = (name: string, value: string): string => `${name} is ${JSON.stringify(value)} (not decodable: its bytes "${value.replace('ä', '\\xE4')}" are not UTF-8; a header carries one byte per character, so the raw "ä" is the single byte 0xE4, not UTF-8: send the name's UTF-8 bytes, Buffer.from(name).toString('latin1'))`
    await t.throwsAsync(assertXSendfile(r, { path: '/srv/März.txt' }), { instanceOf: AssertionError, message: `assertXSendfile: ${raw('X-Sendfile', '/srv/März.txt')}, expected "/srv/März.txt"` })
    await t.throwsAsync(assertXAccelRedirect(r, { header: 'X-Caddy', encoding: 'raw', redirect: '/protected/März.txt' }), {
      instanceOf: AssertionError, message: `assertXAccelRedirect: ${raw('X-Caddy', '/protected/März.txt')}, expected "/protected/März.txt"`
    })
  }
  // The bytes nginx serves März.txt for (measured, proxies.md §2): UTF-8, raw or percent-encoded.
  for (const r of [...await responses(headerApp(headers(utf8Bytes))), ...await responses(headerApp(headers((p) => p.replace('ä', '%C3%A4'))))]) {
    await assertXAccelRedirect(r, { redirect: '/protected/März.txt' })
    await assertXSendfile(r, { path: '/srv/März.txt', encoding: 'percent' })
    await assertInternalRedirect(r, { location: '/private/März.txt' })
  }
  for (const r of await responses(headerApp(headers(utf8Bytes)))) {
    await assertXSendfile(r, { path: '/srv/März.txt' })
    await assertXAccelRedirect(r, { header: 'X-Caddy', encoding: 'raw', redirect: '/protected/März.txt' })
  }
})

test('the path helpers: %E4 (latin1, percent-encoded) is not UTF-8 once decoded; a character above U+00FF is no header value (a response built by hand)', async (t) => {
  const escaped = await request(headerApp({ 'X-Accel-Redirect': '/protected/M%E4rz.txt' }).callback()).get('/')
  await t.throwsAsync(assertXAccelRedirect(escaped, { redirect: '/protected/März.txt' }), {
    instanceOf: AssertionError, message: 'assertXAccelRedirect: X-Accel-Redirect is "/protected/M%E4rz.txt" (not decodable: its bytes, percent-decoded, "/protected/M\\xE4rz.txt" are not UTF-8), expected "/protected/März.txt"'
  })
  const built = { status: 200, headers: { 'x-accel-redirect': '/protected/☃.txt', 'x-sendfile': '/srv/☃.txt', location: '/private/☃.txt' }, body: Buffer.alloc(0) }
  const wide = 'not decodable: "☃" is above U+00FF, which no header can carry'
  await t.throwsAsync(assertXAccelRedirect(built, { redirect: '/protected/☃.txt' }), { instanceOf: AssertionError, message: `assertXAccelRedirect: X-Accel-Redirect is "/protected/☃.txt" (${wide}), expected "/protected/☃.txt"` })
  await t.throwsAsync(assertXSendfile(built, { path: '/srv/☃.txt' }), { instanceOf: AssertionError, message: `assertXSendfile: X-Sendfile is "/srv/☃.txt" (${wide}), expected "/srv/☃.txt"` })
  await t.throwsAsync(assertInternalRedirect(built, { location: '/private/☃.txt' }), { instanceOf: AssertionError, message: `assertInternalRedirect: Location is "/private/☃.txt" (${wide}), expected "/private/☃.txt"` })
  // Buffer.from(value, 'latin1') alone would take "☃" (U+2603) for the byte 0x03.
  await t.throwsAsync(assertXSendfile({ ...built, headers: { 'x-sendfile': '/srv/\u2603' } }, { path: '/srv/\u0003' }), { instanceOf: AssertionError, message: /above U\+00FF/ })
})

// ---- assertDownload: "streamed by Node, not offloaded" ----

test('assertDownload fails on an internal redirect: a 200 carrying Location (supertest and fetch)', async (t) => {
  const message = 'assertDownload: expected a streamed download, but the 200 response carries Location "/private/nested.txt" (an internal redirect: offloaded)'
  const res = await request(appFor('redirect').callback()).get(nested).redirects(0)
  await t.throwsAsync(assertDownload(res), { instanceOf: AssertionError, message })
  await t.throwsAsync(assertDownload(res, { filename: 'résumé "1".txt', attachment: false }), { instanceOf: AssertionError, message })
  await t.throwsAsync(assertDownload(await fetch(await listen(t, appFor('redirect')) + nested)), { instanceOf: AssertionError, message })
})

test('assertDownload fails on a Caddy offload under a header of its own: a path-valued header on an empty response, or bytes expected', async (t) => {
  const res = await request(appFor('caddy').callback()).get(nested)
  t.is(res.headers['content-length'], '0')
  t.is(res.headers['x-caddy'], '/protected/nested.txt')
  const looks = 'assertDownload: expected a streamed download, but the response is empty (Content-Length: 0) and x-caddy is "/protected/nested.txt", which looks like an offload header (a caddy() rule\'s own header); if the app streams this response, name x-caddy in the expected headers'
  await t.throwsAsync(assertDownload(res), { instanceOf: AssertionError, message: looks })
  await t.throwsAsync(assertDownload(res, { filename: 'résumé "1".txt', attachment: true }), { instanceOf: AssertionError, message: looks })
  await t.throwsAsync(assertDownload(await fetch(await listen(t, appFor('caddy')) + nested)), { instanceOf: AssertionError, message: looks })
  const bytes = await readFile(`${fixtureRoot}/snow ☃/nested.txt`)
  const empty = 'assertDownload: expected a streamed download of 8 bytes, but the response is empty (Content-Length: 0), as an offloaded one is'
  await t.throwsAsync(assertDownload(res, { body: bytes }), { instanceOf: AssertionError, message: empty })
  await t.throwsAsync(assertDownload(res, { headers: { 'X-Caddy': /./, 'content-length': '8' } }), { instanceOf: AssertionError, message: empty })
})

test('assertDownload passes on an empty file streamed by the app (GET and HEAD, supertest and fetch)', async (t) => {
  const app = appFor('stream')
  const res = await request(app.callback()).get('/empty.txt')
  t.is(res.headers['content-length'], '0')
  await assertDownload(res, { body: '', filename: 'résumé "1".txt', attachment: true, headers: { 'Content-Length': '0' } })
  await assertDownload(res)
  await assertDownload(await fetch(`${await listen(t, app)}/empty.txt`), { body: new Uint8Array(0) })
  await assertDownload(await request(app.callback()).head('/empty.txt'), { body: '', headers: { 'Content-Length': '0' } })
  // A HEAD response has an empty body, whatever its Content-Length.
  const head = await request(app.callback()).head(nested)
  await assertDownload(head, { body: '', headers: { 'Content-Length': '8' } })
  await t.throwsAsync(assertDownload(head, { body: 'x' }), { instanceOf: AssertionError, message: 'assertDownload: body differs: 0 bytes received, 1 expected' })
})

test('assertDownload: a path-valued header on a streamed empty file fails unless named in headers; on bytes it is no concern', async (t) => {
  const app = downloadApp((ctx) => {
    ctx.set('X-Source', `/srv${ctx.path}`)
    ctx.body = download(new PathFile(`${fixtureRoot}${ctx.path}`))
  })
  const empty = await request(app.callback()).get('/empty.txt')
  await t.throwsAsync(assertDownload(empty), { instanceOf: AssertionError, message: /and x-source is "\/srv\/empty\.txt", which looks like an offload header/ })
  await assertDownload(empty, { headers: { 'X-Source': '/srv/empty.txt' }, body: '' })
  await assertDownload(await request(app.callback()).get('/hello.txt'), { body: 'Hello, world!\n' })
})

// ---- Content-Disposition as a browser reads it ----

test('parseDisposition: a quoted filename may contain ";" and "filename*="; the library\'s own headers round-trip (supertest and fetch)', async (t) => {
  const name = "a; filename*=UTF-8''x.txt"
  const header = contentDisposition(name)
  t.is(header, `attachment; filename="a; filename*=UTF-8''x.txt"`)
  t.deepEqual(parseDisposition(header), { type: 'attachment', filename: name })
  const app = downloadApp((ctx) => { ctx.body = download(new PathFile(`${fixtureRoot}/hello.txt`), { filename: ctx.query.name as string }) })
  const query = `/?name=${encodeURIComponent(name)}`
  await assertDownload(await request(app.callback()).get(query), { filename: name, attachment: true, body: 'Hello, world!\n' })
  await assertDownload(await fetch(await listen(t, app) + query), { filename: name, body: 'Hello, world!\n' })
  const tricky = 'é; filename="x".txt'
  t.deepEqual(parseDisposition(contentDisposition(tricky, true)), { type: 'inline', filename: tricky })
  await assertDownload(await request(app.callback()).get(`/?name=${encodeURIComponent(tricky)}`), { filename: tricky })
})

test('parseDisposition: any name contentDisposition() writes reads back as the sanitised name', (t) => {
  fc.assert(fc.property(fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: fc.constantFrom(';', '=', '"', '\\', "'", '*', '%', ' ', 'filename', 'filename*=', "UTF-8''", 'é', '😀', 'a'), maxLength: 12 })
  ), fc.boolean(), (name, inline) => {
    const sanitized = sanitizeFilename(name)
    const parsed = parseDisposition(contentDisposition(name, inline))
    return parsed?.type === (inline ? 'inline' : 'attachment') && parsed.filename === (sanitized === '' ? undefined : sanitized)
  }), { numRuns: 3000 })
  t.pass()
})

test('parseDisposition: RFC 8187 filename* (language tag, UTF-8 or ISO-8859-1, any case) wins; an unusable one falls back to filename', (t) => {
  const cases: Array<[string, { type: string, filename: string | undefined }]> = [
    ["attachment; filename*=UTF-8'en'r%C3%A9sum%C3%A9.txt", { type: 'attachment', filename: 'résumé.txt' }],
    ["attachment; filename=\"resume.txt\"; filename*=UTF-8'en'r%C3%A9sum%C3%A9.txt", { type: 'attachment', filename: 'résumé.txt' }],
    ["attachment; filename*=utf-8''%E2%82%AC.txt; filename=\"EUR.txt\"", { type: 'attachment', filename: '€.txt' }],
    ["attachment; filename*=ISO-8859-1'de'M%E4rz.pdf", { type: 'attachment', filename: 'März.pdf' }],
    ["INLINE; FILENAME*=UTF-8''a%20b.txt", { type: 'inline', filename: 'a b.txt' }],
    ["attachment; filename=\"f.txt\"; filename*=UTF-8''%FF.txt", { type: 'attachment', filename: 'f.txt' }], // not UTF-8
    ["attachment; filename=\"f.txt\"; filename*=KOI8-R''%C1.txt", { type: 'attachment', filename: 'f.txt' }], // unsupported charset
    ["attachment; filename=\"f.txt\"; filename*=\"UTF-8''a.txt\"", { type: 'attachment', filename: 'f.txt' }], // ext-value is never quoted
    ["attachment; filename=\"f.txt\"; filename*=UTF-8''a%2.txt", { type: 'attachment', filename: 'f.txt' }], // bad pct-encoding
    ["attachment; filename=\"f.txt\"; filename*=UTF-8'a.txt", { type: 'attachment', filename: 'f.txt' }], // one quote
    ["attachment; filename*=UTF-8''%FF.txt", { type: 'attachment', filename: undefined }]
  ]
  for (const [header, expected] of cases) t.deepEqual(parseDisposition(header), expected, header)
})

test('parseDisposition: tokens and quoted-strings per RFC 9110 §5.6.6; a malformed value is undefined, never a crash', (t) => {
  const valid: Array<[string, { type: string, filename: string | undefined }]> = [
    ['Inline; filename="say \\"hi\\".txt"', { type: 'inline', filename: 'say "hi".txt' }],
    ['attachment; filename="a\\\\b.txt"', { type: 'attachment', filename: 'a\\b.txt' }],
    ['attachment;filename=plain.txt;', { type: 'attachment', filename: 'plain.txt' }],
    ['attachment ; filename = "spaced.txt" ;; size=42', { type: 'attachment', filename: 'spaced.txt' }],
    ['attachment; creation-date="Wed, 12 Feb 1997 16:29:51 -0500"; filename=x.txt', { type: 'attachment', filename: 'x.txt' }],
    ['attachment; filename=""', { type: 'attachment', filename: '' }],
    ['attachment', { type: 'attachment', filename: undefined }],
    ['x-custom', { type: 'x-custom', filename: undefined }]
  ]
  for (const [header, expected] of valid) t.deepEqual(parseDisposition(header), expected, header)
  const malformed = ['', ' ', '; filename="a"', '"attachment"', 'attachment filename="a"', 'attachment; filename', 'attachment; filename=',
    'attachment; filename="unterminated', 'attachment; filename="a\\', 'attachment; filename=a b.txt', 'attachment; filename="a" x',
    'attachment; filename="a"; filename="b"', "attachment; filename*=UTF-8''a; FILENAME*=UTF-8''b", 'attachment; =a', 'attachment; filename="a\u0000"',
    "attachment; filename*=UTF-8''a b.txt"]
  for (const header of malformed) t.is(parseDisposition(header), undefined, JSON.stringify(header))
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom(';', '=', '"', '\\', "'", '*', '%', ' ', '\t', 'a', 'filename', 'filename*', 'UTF-8', '\u0000', 'é', '\u2028') }), (header) => {
    const parsed = parseDisposition(header)
    return parsed === undefined || (typeof parsed.type === 'string' && (parsed.filename === undefined || typeof parsed.filename === 'string'))
  }), { numRuns: 3000 })
})

test('assertDownload: a malformed Content-Disposition fails, naming the header', async (t) => {
  const res = await request(headerApp({ 'Content-Disposition': 'attachment; filename="a' }).callback()).get('/')
  await t.throwsAsync(assertDownload(res, { filename: 'a' }), { instanceOf: AssertionError, message: 'assertDownload: Content-Disposition is "attachment; filename=\\"a", which is malformed (RFC 6266)' })
  await t.throwsAsync(assertDownload(res, { attachment: true }), { instanceOf: AssertionError, message: /which is malformed \(RFC 6266\)$/ })
})

// ---- Bodies supertest does not keep ----

test('assertDownload: a multipart/byteranges 206 through supertest names .parse(bufferParser), which works; .buffer(true) does not', async (t) => {
  const app = appFor('stream')
  const ranged = (): request.Test => request(app.callback()).get('/digits.txt').set('Range', 'bytes=0-1,900-901')
  const message = 'assertDownload: the response body is not available: supertest hands multipart/byteranges to its form parser, which keeps no bytes (.buffer(true) does not change that): request with .parse(bufferParser) from koa-downloads/testing'
  for (const res of [await ranged(), await ranged().buffer(true)]) {
    t.regex(res.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/)
    await t.throwsAsync(assertDownload(res, { status: 206, body: 'x' }), { instanceOf: AssertionError, message })
  }
  for (const res of [await ranged().parse(bufferParser), await ranged().buffer(true).parse(bufferParser)]) {
    const boundary = /boundary=(\S+)$/.exec(res.headers['content-type'] ?? '')?.[1] ?? ''
    const part = (range: string): string => `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes ${range}/1000\r\n\r\n01\r\n`
    await assertDownload(res, { status: 206, contentType: /^multipart\/byteranges/, body: `${part('0-1')}${part('900-901')}--${boundary}--\r\n` })
  }
})

test('assertDownload: a body supertest did not buffer names .buffer(true).parse(bufferParser), which works', async (t) => {
  const app = appFor('stream')
  const unbuffered = await request(app.callback()).get('/hello.txt').buffer(false)
  await t.throwsAsync(assertDownload(unbuffered, { body: 'Hello, world!\n' }), {
    instanceOf: AssertionError, message: 'assertDownload: the response body is not available: supertest did not buffer it: request with .buffer(true).parse(bufferParser) from koa-downloads/testing'
  })
  await assertDownload(await request(app.callback()).get('/hello.txt').buffer(true).parse(bufferParser), { body: 'Hello, world!\n' })
})

test('assertDownload passes a 201 export that names what it created with Location (RFC 9110 §15.3.2), and still fails a redirect', async (t) => {
  const app = downloadApp((ctx) => {
    ctx.status = ctx.path === '/moved' ? 302 : 201
    ctx.set('Location', '/exports/42')
    ctx.body = download(new PathFile(`${fixtureRoot}/hello.txt`))
  })
  const created = await request(app.callback()).post('/export')
  t.is(created.status, 201)
  await assertDownload(created, { status: 201, filename: 'hello.txt', body: 'Hello, world!\n', headers: { Location: '/exports/42' } })
  const moved = await request(app.callback()).get('/moved').redirects(0)
  await t.throwsAsync(assertDownload(moved, { status: 302 }), { instanceOf: AssertionError, message: /^assertDownload: expected a streamed download, but the 302 response carries Location "\/exports\/42" \(a redirect\)$/ })
})

test('assertXAccelRedirect, assertXSendfile and assertInternalRedirect fail on a chunked body already read, instead of taking it for empty; with Content-Length: 0 a read body is no problem', async (t) => {
  // A broken handler: the offload header and the bytes too, chunked (no Content-Length).
  const app = new Koa()
  app.use((ctx) => {
    ctx.set('X-Accel-Redirect', '/protected/a.pdf')
    ctx.set('X-Sendfile', '/srv/a.pdf')
    ctx.set('Location', '/protected/a.pdf')
    ctx.set('Content-Disposition', 'attachment; filename="a.pdf"')
    if (ctx.query.empty === '1') ctx.body = ''
    else {
      ctx.body = Readable.from([Buffer.from('thirty-one bytes of a real file')])
      ctx.set('Content-Type', 'application/pdf')
    }
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  const checks: Array<[string, (res: Response) => Promise<void>]> = [
    ['assertXAccelRedirect', async (res) => { await assertXAccelRedirect(res) }],
    ['assertXSendfile', async (res) => { await assertXSendfile(res) }],
    ['assertInternalRedirect', async (res) => { await assertInternalRedirect(res) }]
  ]
  for (const [name, check] of checks) {
    const fresh = await fetch(url)
    await t.throwsAsync(check(fresh), { instanceOf: AssertionError, message: `${name}: the offloaded response has a 31-byte body, expected none` })
    const read = await fetch(url)
    t.is(await read.text(), 'thirty-one bytes of a real file')
    await t.throwsAsync(check(read), { instanceOf: AssertionError, message: `${name}: the body is not available and no Content-Length says it is empty: the fetch Response body was read before the assertion (assert first)` })
    const empty = await fetch(url + '?empty=1')
    t.is(empty.headers.get('content-length'), '0')
    await empty.arrayBuffer()
    await check(empty)
  }
})

test('assertDownload fails when fetch or supertest followed a redirect: the response it got is another server\'s, not the app\'s', async (t) => {
  const app = downloadApp((ctx) => {
    if (ctx.path === '/moved') ctx.redirect('/hello.txt')
    else if (ctx.path === '/signed') ctx.redirect('/hello.txt?X-Amz-Signature=SECRETSIG')
    else ctx.body = download(new PathFile(`${fixtureRoot}/hello.txt`))
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const followed = await fetch(`${url}/moved`)
  t.is(followed.status, 200)
  await t.throwsAsync(assertDownload(followed, { body: 'Hello, world!\n' }), { instanceOf: AssertionError, message: `assertDownload: fetch followed a redirect and got 200 from "${url}/hello.txt", which is not the app's own response (fetch with { redirect: 'manual' } to see it)` })
  await t.throwsAsync(assertXAccelRedirect(await fetch(`${url}/moved`)), { instanceOf: AssertionError, message: /^assertXAccelRedirect: fetch followed a redirect/ })
  const manual = await fetch(`${url}/moved`, { redirect: 'manual' })
  await t.throwsAsync(assertDownload(manual), { instanceOf: AssertionError, message: /^assertDownload: expected a streamed download, but the 302 response carries Location "\/hello.txt"/ })
  const superFollowed = await request(app.callback()).get('/moved').redirects(1)
  t.is(superFollowed.status, 200)
  await t.throwsAsync(assertDownload(superFollowed, { body: 'Hello, world!\n' }), { instanceOf: AssertionError, message: /^assertDownload: supertest followed 1 redirect\(s\), to ".*\/hello\.txt": the response is not the app's own/ })
  // A presigned target's signature stays out of the message.
  const leak = await t.throwsAsync(assertDownload(await fetch(`${url}/signed`)), { instanceOf: AssertionError })
  t.is(leak?.message, `assertDownload: fetch followed a redirect and got 200 from "${url}/hello.txt?…", which is not the app's own response (fetch with { redirect: 'manual' } to see it)`)
  // Without a redirect, the same requests pass.
  await assertDownload(await fetch(`${url}/hello.txt`), { body: 'Hello, world!\n' })
  await assertDownload(await request(app.callback()).get('/hello.txt').redirects(1), { body: 'Hello, world!\n' })
})

test('the helpers read the Response of undici\'s own fetch (not the global class) as a fetch Response: an offload fails assertDownload and passes assertXAccelRedirect', async (t) => {
  const { fetch: undiciFetch } = await import('undici')
  const offloaded = await undiciFetch(base + nested)
  t.false(offloaded instanceof Response)
  await t.throwsAsync(assertDownload(offloaded), { instanceOf: AssertionError, message: 'assertDownload: expected a streamed download, but X-Accel-Redirect is "/protected/nested.txt" (offloaded)' })
  await assertXAccelRedirect(await undiciFetch(base + nested), { redirect: '/protected/nested.txt', filename: 'résumé "1".txt', limitRate: 1024 })
  await assertDownload(await undiciFetch(`${base}/hello.txt`), { body: 'Hello, world!\n', filename: 'résumé "1".txt' })
  await t.throwsAsync(assertDownload(await undiciFetch(`${base}/hello.txt`), { body: 'Hello, World!\n' }), { instanceOf: AssertionError, message: 'assertDownload: body differs: 14 bytes received, 14 expected; first difference at byte 7' })
  t.pass()
})

test('assertDownload: text supertest decoded with replacement characters cannot pass as the bytes, even when it matches the expected text', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = download(new VirtualFile(Buffer.from([0x63, 0x61, 0x66, 0xe8]), { name: 'latin.txt' })) })
  const lossy = await request(app.callback()).get('/latin.txt')
  t.is(lossy.text, 'caf\uFFFD')
  // A fixture read as text (0xE9 → U+FFFD) equals the received text, though 0xE8 was sent: not a pass.
  const fixture = Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString('utf8')
  t.is(fixture, lossy.text)
  await t.throwsAsync(assertDownload(lossy, { body: fixture }), { instanceOf: AssertionError, message: /^assertDownload: the body cannot be compared byte for byte: supertest decoded this text\/plain; charset=utf-8 body as UTF-8 text/ })
  await t.throwsAsync(assertDownload(lossy, { body: Buffer.from([0x63, 0x61, 0x66, 0xe9]) }), { instanceOf: AssertionError, message: /^assertDownload: body differs: 6 bytes received, 4 expected; first difference at byte 3; supertest decoded/ })
  await assertDownload(await request(app.callback()).get('/latin.txt').buffer(true).parse(bufferParser), { body: Buffer.from([0x63, 0x61, 0x66, 0xe8]) })
  await t.throwsAsync(assertDownload(await request(app.callback()).get('/latin.txt').buffer(true).parse(bufferParser), { body: Buffer.from([0x63, 0x61, 0x66, 0xe9]) }), { instanceOf: AssertionError, message: /^assertDownload: body differs: 4 bytes received, 4 expected; first difference at byte 3$/ })
})

test('assertDownload: a body with a Content-Encoding is not compared, because fetch and supertest decode it first; with Accept-Encoding: identity the library sends it decoded and it is', async (t) => {
  const plain = Buffer.from('id,name\n1,one\n'.repeat(50))
  const coded = gzipSync(plain)
  const file: DownloadFile = {
    name: 'rows.csv',
    stat: async () => ({ size: coded.length, etag: '"gz"', contentEncoding: 'gzip' }),
    open: async (range) => Readable.from([range === undefined ? coded : coded.subarray(range.start, range.end + 1)])
  }
  const app = downloadApp((ctx) => { ctx.body = download(file) })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rows.csv`
  const message = /^assertDownload: the body cannot be compared: the response has Content-Encoding "gzip", which fetch and supertest decode/
  await t.throwsAsync(assertDownload(await fetch(url), { body: plain }), { instanceOf: AssertionError, message })
  await t.throwsAsync(assertDownload(await fetch(url), { body: coded }), { instanceOf: AssertionError, message })
  await t.throwsAsync(assertDownload(await request(app.callback()).get('/rows.csv').buffer(true).parse(bufferParser), { body: plain }), { instanceOf: AssertionError, message })
  // The header alone is fine to assert.
  await assertDownload(await fetch(url), { headers: { 'Content-Encoding': 'gzip' } })
  await assertDownload(await fetch(url, { headers: { 'Accept-Encoding': 'identity' } }), { body: plain, headers: { 'Content-Encoding': null } })
  await assertDownload(await request(app.callback()).get('/rows.csv').set('Accept-Encoding', 'identity').buffer(true).parse(bufferParser), { body: plain })
  t.pass()
})

test('filename: null passes on a response with no Content-Disposition and on one without a name; it fails on a named one', async (t) => {
  const app = new Koa()
  app.use((ctx) => {
    if (ctx.path === '/inline') ctx.set('Content-Disposition', 'inline')
    if (ctx.path === '/named') ctx.set('Content-Disposition', 'attachment; filename="a.txt"')
    ctx.body = 'bytes'
  })
  await assertDownload(await request(app.callback()).get('/none'), { filename: null, body: 'bytes' })
  await assertDownload(await request(app.callback()).get('/inline'), { filename: null, attachment: false })
  await t.throwsAsync(assertDownload(await request(app.callback()).get('/named'), { filename: null }), { instanceOf: AssertionError, message: 'assertDownload: Content-Disposition is "attachment; filename=\\"a.txt\\"": filename "a.txt", expected null' })
  // Asking for the type as well needs the header.
  await t.throwsAsync(assertDownload(await request(app.callback()).get('/none'), { filename: null, attachment: false }), { instanceOf: AssertionError, message: 'assertDownload: Content-Disposition is missing' })
})

test('a fetch Response can go through several assertions (its body is read once and kept); a locked body is an assertion failure that says so, not a TypeError', async (t) => {
  const res = await fetch(`${base}/hello.txt`)
  await assertDownload(res, { body: 'Hello, world!\n' })
  await assertDownload(res, { body: 'Hello, world!\n', filename: 'résumé "1".txt' })
  await t.throwsAsync(assertDownload(res, { body: 'Hello, World!\n' }), { instanceOf: AssertionError, message: /^assertDownload: body differs/ })
  const locked = await fetch(`${base}/hello.txt`)
  const reader = locked.body?.getReader()
  t.false(locked.bodyUsed)
  await t.throwsAsync(assertDownload(locked, { body: 'Hello, world!\n' }), { instanceOf: AssertionError, message: /^assertDownload: the response body is not available: the fetch Response body cannot be read \(.+\): assert before reading it$/ })
  await reader?.cancel()
})

test('assertDownload fails on a 200 or 206 that is no download (no Content-Disposition): a page, an error sent as 200, a route that forgot download(); filename: null accepts one on purpose', async (t) => {
  const app = new Koa()
  app.use((ctx) => {
    if (ctx.path === '/login') { ctx.type = 'html'; ctx.body = '<form>log in</form>' } else ctx.body = { error: 'not allowed' }
  })
  for (const path of ['/login', '/error']) {
    for (const expected of [{}, { contentType: /html|json/ }, { cacheControl: null }]) {
      const error = await t.throwsAsync(assertDownload(await request(app.callback()).get(path), expected), { instanceOf: AssertionError })
      t.regex(error?.message ?? '', /no Content-Disposition, which every download has: it is not a download/, `${path} ${JSON.stringify(expected)}`)
    }
    await assertDownload(await request(app.callback()).get(path), { filename: null })
  }
  // A HEAD of a download, and a 304, still pass as before.
  const downloads = downloadApp((ctx) => { ctx.body = new VirtualFile('x', { name: 'x.txt' }) })
  await assertDownload(await request(downloads.callback()).head('/'), { filename: 'x.txt' })
  const etag = (await request(downloads.callback()).get('/')).headers.etag ?? ''
  await assertDownload(await request(downloads.callback()).get('/').set('If-None-Match', etag), { status: 304 })
})

test('an unknown expectation key (a Django name, another helper\'s key, a typo) or a value of the wrong kind is a TypeError, not a pass on a wrong response', async (t) => {
  const res = await request(appFor('nginx').callback()).get(nested)
  const cases: Array<[(r: typeof res, e: never) => Promise<void>, Record<string, unknown>, RegExp]> = [
    [assertXAccelRedirect, { redirect_url: '/protected/a.pdf' }, /unknown expectation "redirect_url" \(did you mean redirect\?\)/],
    [assertXAccelRedirect, { path: '/protected/nested.txt' }, /unknown expectation "path" \(did you mean path \(assertXSendfile\)\?\)/],
    [assertXAccelRedirect, { location: '/x' }, /unknown expectation "location"/],
    [assertXAccelRedirect, { fileName: 'a.pdf' }, /unknown expectation "fileName" \(did you mean filename\?\)/],
    [assertXAccelRedirect, { with_buffering: false }, /did you mean buffering/],
    [assertXAccelRedirect, { buffering: 'no' }, /expectation buffering has a value of the wrong kind: "no"/],
    [assertXAccelRedirect, { limitRate: '1024' }, /limitRate has a value of the wrong kind/],
    [assertXAccelRedirect, { status: '200' }, /status has a value of the wrong kind/],
    [assertXSendfile, { redirect: '/x' }, /unknown expectation "redirect"/],
    [assertInternalRedirect, { path: '/x' }, /unknown expectation "path"/],
    [assertDownload, { basename: 'a.pdf' }, /did you mean filename/],
    [assertDownload, { headers: { ETag: 1 } }, /headers has a value of the wrong kind/],
    // a Map or a fetch Headers holds its entries where Object.entries() sees none: nothing would be asserted
    [assertDownload, { headers: new Map([['ETag', '"wrong"']]) }, /headers has a value of the wrong kind/],
    [assertDownload, { headers: new Headers({ ETag: '"wrong"' }) }, /headers has a value of the wrong kind/]
  ]
  for (const [assertion, expected, message] of cases) {
    await t.throwsAsync(assertion(res, expected as never), { instanceOf: TypeError, message }, JSON.stringify(expected))
  }
  await t.throwsAsync(assertXAccelRedirect(res, new Map([['filename', 'wrong.txt']]) as never), { instanceOf: TypeError, message: /the expectation must be a plain object/ })
  // An undefined value is no expectation (an optional field of a table of cases).
  await assertXAccelRedirect(res, { redirect: '/protected/nested.txt', buffering: undefined })
})
