import { AssertionError } from 'node:assert'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import test from 'ava'
import type Koa from 'koa'
import request from 'supertest'
import { apache } from '../source/backends/apache.ts'
import { caddy } from '../source/backends/caddy.ts'
import { internalRedirect } from '../source/backends/internal-redirect.ts'
import { lighttpd } from '../source/backends/lighttpd.ts'
import { nginx } from '../source/backends/nginx.ts'
import { download } from '../source/download.ts'
import { PathFile } from '../source/path-file.ts'
import { assertDownload, assertInternalRedirect, assertXAccelRedirect, assertXSendfile, bufferParser, parseDisposition } from '../source/testing.ts'
import { downloadApp, fixtureRoot } from './helpers/koa.ts'

const rootRules = {
  nginx: nginx({ sourceDir: `${fixtureRoot}/snow ☃`, destinationUrl: '/protected/', limitRate: 1024, buffering: false, expires: 60 }),
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
  await t.throwsAsync(assertDownload(used, { body: 'x' }), { instanceOf: AssertionError, message: /body is not available/ })
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

