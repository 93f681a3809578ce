// StorageFile and presignedRedirect() against an S3 endpoint that misbehaves in ways s3rver does
// not: a GetObject that ignores Range, a HeadObject that never answers. A small node:http endpoint
// speaks just enough of the S3 protocol (HeadObject, GetObject, NoSuchKey) for the real SDK.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request as httpRequest } from 'node:http'
import { connect as http2Connect, constants as http2Constants, createServer as createHttp2Server } from 'node:http2'
import { S3Client } from '@aws-sdk/client-s3'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import Koa from 'koa'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { presignedRedirect, storage } from '../../adapters/flydrive/index.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { listen } from '../helpers/listen.ts'

interface Endpoint { disk: Disk, requests: string[], closedHeads: number[] }

/** An S3 endpoint serving `objects`; `ignoreRange`: GetObject answers 200 with the whole object; `hangHead`: HeadObject never answers. */
async function endpoint (t: ExecutionContext, objects: Record<string, Buffer>, behaviour: { ignoreRange?: boolean, hangHead?: boolean } = {}): Promise<Endpoint> {
  const requests: string[] = []
  const closedHeads: number[] = []
  const server = createServer((req, res) => {
    const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(2).join('/'))
    requests.push(`${req.method ?? ''} ${key}${req.headers.range === undefined ? '' : ` ${req.headers.range}`}`)
    if (req.method === 'HEAD' && behaviour.hangHead === true) {
      const started = Date.now()
      res.once('close', () => { closedHeads.push(Date.now() - started) })
      return
    }
    const bytes = objects[key]
    if (bytes === undefined) {
      res.writeHead(404, { 'Content-Type': 'application/xml' }).end(req.method === 'HEAD' ? undefined : '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>')
      return
    }
    const headers = { 'Content-Type': 'application/pdf', ETag: '"e1"', 'Last-Modified': 'Tue, 01 Sep 2026 10:00:00 GMT', 'Accept-Ranges': 'bytes' }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (req.method === 'GET' && range !== null && behaviour.ignoreRange !== true) {
      const [start, end] = [Number(range[1]), Math.min(Number(range[2]), bytes.length - 1)]
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${bytes.length}`, 'Content-Length': end - start + 1 }).end(bytes.subarray(start, end + 1))
      return
    }
    res.writeHead(200, { ...headers, 'Content-Length': bytes.length }).end(req.method === 'HEAD' ? undefined : bytes)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const client = new S3Client({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 1 })
  t.teardown(() => { client.destroy() })
  return { disk: new Disk(new S3Driver({ client, bucket: 'b', visibility: 'private', supportsACL: false })), requests, closedHeads }
}

test('S3: an endpoint that answers a ranged GetObject with the whole object is a 502 (the storage did not do what was asked), not a 503 after planning again', async (t) => {
  const { disk, requests } = await endpoint(t, { 'doc.pdf': Buffer.from('0123456789') }, { ignoreRange: true })
  const media = storage(disk)
  const app = new Koa()
  app.silent = true
  app.use(downloads())
  app.use((ctx) => { ctx.body = download(media.file('doc.pdf')) })
  const base = await listen(t, app)
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=2-5' } })
  t.is(res.status, 502)
  t.is(res.headers['content-range'], undefined)
  // Not planned again and again: a 503 came after four requests.
  t.true(requests.length <= 2, requests.join(', '))
  // A whole read is what this endpoint does well.
  const whole = await rawRequest(`${base}/`)
  t.is(whole.status, 200)
  t.is(whole.body.toString(), '0123456789')
})

test('presignedRedirect(): a missing object\'s 404 page, rendered by the app\'s error handler, keeps the page\'s type (not the download\'s)', async (t) => {
  const { disk } = await endpoint(t, {})
  const media = storage(disk)
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      ctx.status = (error as { status?: number }).status ?? 500
      ctx.body = `<h1>Sorry: ${ctx.status}</h1>`
    }
  })
  app.use(downloads())
  app.use(presignedRedirect())
  app.use((ctx) => { ctx.body = download(media.file('missing.pdf')) })
  const res = await rawRequest(await listen(t, app))
  t.is(res.status, 404)
  t.is(res.headers['content-type'], 'text/html; charset=utf-8')
  t.is(res.body.toString(), '<h1>Sorry: 404</h1>')
})

test('presignedRedirect(): a client leaving while the object\'s metadata is asked for aborts that request, and nothing is logged', async (t) => {
  const { disk, closedHeads } = await endpoint(t, { 'h.pdf': Buffer.from('x') }, { hangHead: true })
  const media = storage(disk, { idleTimeout: 5000 })
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(downloads())
  app.use(presignedRedirect())
  app.use((ctx) => { ctx.body = download(media.file('h.pdf')) })
  const base = await listen(t, app)
  const request = httpRequest(`${base}/`)
  request.on('error', () => {})
  request.end()
  await new Promise((resolve) => setTimeout(resolve, 200))
  request.destroy()
  while (closedHeads.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  t.true((closedHeads[0] ?? Infinity) < 2000, `the HEAD lasted ${closedHeads[0] ?? '?'} ms`)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.deepEqual(errors.map((error) => error.message), [])
})

test('presignedRedirect(): a client that left while the route was still working (HTTP/1.1, and a stream reset over HTTP/2) costs no storage request', async (t) => {
  const { disk, requests } = await endpoint(t, { 'g.pdf': Buffer.from('gone') })
  const media = storage(disk)
  const routes: Array<() => void> = []
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(downloads())
  app.use(presignedRedirect())
  app.use(async (ctx) => {
    // The route awaits something (a permission check) while the client goes.
    await new Promise<void>((resolve) => { routes.push(resolve) })
    ctx.body = download(media.file('g.pdf'))
  })
  const wait = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
  const waitForRoute = async (): Promise<void> => { while (routes.length === 0) await wait(10) }

  const request = httpRequest(`${await listen(t, app)}/`)
  request.on('error', () => {})
  request.end()
  await waitForRoute()
  request.destroy()
  await wait(100)
  routes.shift()?.()
  await wait(200)
  t.deepEqual(requests, [], 'HTTP/1.1: nothing asked')

  const server = createHttp2Server(app.callback()).listen(0, '127.0.0.1')
  await once(server, 'listening')
  const session = http2Connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(() => { session.destroy(); server.close() })
  session.on('error', () => {})
  const stream = session.request({ ':path': '/' })
  stream.on('error', () => {})
  await waitForRoute()
  stream.close(http2Constants.NGHTTP2_CANCEL)
  await wait(100)
  routes.shift()?.()
  await wait(200)
  t.deepEqual(requests, [], 'HTTP/2: nothing asked')
  t.deepEqual(errors.map((error) => error.message), [])
})

test('presignedRedirect(): ctx.respond = false leaves the response to the app: the storage is not asked, no URL is signed onto it', async (t) => {
  const { disk, requests } = await endpoint(t, { 'r.pdf': Buffer.from('report') })
  const media = storage(disk)
  const app = new Koa()
  app.use(downloads())
  app.use(presignedRedirect())
  app.use((ctx) => {
    ctx.body = download(media.file('r.pdf'))
    ctx.respond = false
    // Later, as an app answering from a callback does: the middleware has run by then.
    setTimeout(() => { ctx.res.writeHead(200, { 'Content-Type': 'text/plain' }).end('my own answer') }, 50)
  })
  const res = await rawRequest(await listen(t, app))
  t.is(res.status, 200)
  t.is(res.body.toString(), 'my own answer')
  t.is(res.headers.location, undefined)
  t.is(res.headers['cache-control'], undefined)
  t.deepEqual(requests, [])
})
