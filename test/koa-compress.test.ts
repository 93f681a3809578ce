import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import test from 'ava'
import Koa from 'koa'
import type { Middleware } from 'koa'
import compress from 'koa-compress'
import { download } from '../source/download.ts'
import { downloads } from '../source/downloads.ts'
import { PathFile } from '../source/path-file.ts'
import { rawRequest } from './helpers/file-contract.ts'
import { fixtureRoot } from './helpers/koa.ts'
import { listen } from './helpers/listen.ts'

// koa-compress (the real one) beside downloads(), in both orders. Before downloads() it sees the
// response serve() made (ctx.compress = false); between downloads() and the route it runs first, on
// the Download itself: it piped it into gzip, nothing served the file and every GET hung.

const name = 'hello.txt'

function app (order: 'compress first' | 'downloads first', extra?: Middleware): Koa {
  const koa = new Koa()
  koa.silent = true
  // threshold 0: the 12-byte fixture would otherwise be too small to compress at all
  const compression = compress({ threshold: 0 })
  if (order === 'compress first') koa.use(compression).use(downloads())
  else koa.use(downloads()).use(compression)
  if (extra !== undefined) koa.use(extra)
  koa.use((ctx) => {
    ctx.body = ctx.path === '/bare' ? new PathFile(name, { root: fixtureRoot }) : download(new PathFile(ctx.path.slice(1), { root: fixtureRoot }))
  })
  return koa
}

for (const order of ['compress first', 'downloads first'] as const) {
  test(`koa-compress, ${order}: a download is sent as it is (its length, ETag and ranges describe those bytes), a range and a missing file answered as without it`, async (t) => {
    const bytes = await readFile(join(fixtureRoot, name))
    const base = await listen(t, app(order))
    const whole = await rawRequest(`${base}/${name}`, { headers: { 'Accept-Encoding': 'gzip' } })
    t.is(whole.status, 200)
    t.is(whole.headers['content-encoding'], undefined)
    t.is(whole.headers['content-length'], String(bytes.length))
    t.regex(String(whole.headers.etag), /^"[0-9a-f]+-[0-9a-f]+"$/)
    t.deepEqual(whole.body, bytes)
    const part = await rawRequest(`${base}/${name}`, { headers: { 'Accept-Encoding': 'gzip', Range: 'bytes=0-3' } })
    t.is(part.status, 206)
    t.is(part.headers['content-encoding'], undefined)
    t.deepEqual(part.body, bytes.subarray(0, 4))
    const revalidated = await rawRequest(`${base}/${name}`, { headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': String(whole.headers.etag) } })
    t.is(revalidated.status, 304)
    const missing = await rawRequest(`${base}/missing.txt`, { headers: { 'Accept-Encoding': 'gzip' } })
    t.is(missing.status, 404)
  })
}

test('koa-compress between downloads() and the route: a bare wrapper is a clean 500 (Koa serialises it for koa-compress, which reads its length first), not a hang', async (t) => {
  const base = await listen(t, app('downloads first'))
  const res = await rawRequest(`${base}/bare`, { headers: { 'Accept-Encoding': 'gzip' } })
  t.is(res.status, 500)
})

test('a middleware between downloads() and the route that wraps the Download in a stream of its own fails the request at once, naming the cause, instead of leaving it without a status line', async (t) => {
  const errors: Error[] = []
  const wrapper: Middleware = async (ctx, next) => {
    await next()
    ctx.body = (ctx.body as NodeJS.ReadableStream).pipe(new PassThrough())
  }
  const koa = app('compress first', wrapper)
  koa.on('error', (error: Error) => { errors.push(error) })
  const base = await listen(t, koa)
  const res = await rawRequest(`${base}/${name}`).catch((error: Error) => ({ status: 0, error: error.message }))
  t.is(res.status, 0, 'no response: the connection is closed')
  t.true(errors.length >= 1)
  t.regex(errors[0]?.message ?? '', /a middleware between downloads\(\) and the route wrapped in a stream of its own \(a compressor\?\)/)
})
