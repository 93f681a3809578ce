// Koa over node:http2 (an app serving browsers directly, with no proxy in front): the same answers
// as over HTTP/1.1 — bytes, ranges, multipart, 304, HEAD — and a source failing mid-body resets
// the stream, so the client sees a cut transfer rather than a complete file.
import { once } from 'node:events'
import { readdirSync, readlinkSync } from 'node:fs'
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import type { Server as HttpServer } from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import Koa from 'koa'
import { HttpFile } from '../adapters/http/index.ts'
import { download } from '../source/download.ts'
import { downloads } from '../source/downloads.ts'
import { PathFile } from '../source/path-file.ts'
import type { DownloadFile } from '../source/types.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import { fixtureRoot } from './helpers/koa.ts'

interface H2Response { status: number, headers: http2.IncomingHttpHeaders, body: Buffer, error: Error | undefined }

const errors: Error[] = []
let server: http2.Http2Server
let origin = ''
/** A 1 MiB file (streamed, not read whole) for the reset tests, and what they saw. */
let bigDir = ''
let bigFile = ''
let generatorsFinished = 0
let gatedDone: Array<() => void> = []
let gatedArrived: Array<() => void> = []
let lateGenerators: Array<AsyncGenerator<Buffer>> = []
/** An origin for HttpFile, and the requests it got. */
let upstream: HttpServer
let upstreamUrl = ''
const upstreamBytes = Buffer.alloc(50_000, 0x75)
let upstreamRequests = 0

test.before(async () => {
  upstream = createHttpServer((req, res) => {
    upstreamRequests++
    const headers = { ETag: '"u1"', 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (range !== null) {
      const [start, end] = [Number(range[1]), Number(range[2])]
      res.writeHead(206, { ...headers, 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${upstreamBytes.length}` })
      res.end(req.method === 'HEAD' ? undefined : upstreamBytes.subarray(start, end + 1))
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': upstreamBytes.length })
      res.end(req.method === 'HEAD' ? undefined : upstreamBytes)
    }
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/data.bin`
  bigDir = await mkdtemp(join(tmpdir(), 'kd-h2-'))
  bigFile = join(bigDir, 'big.bin')
  await writeFile(bigFile, Buffer.alloc(1024 * 1024, 0x62))
  const rest = new Date(Date.now() - 3600_000)
  await utimes(bigFile, rest, rest)
  const app = new Koa()
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(async (ctx, next) => {
    try {
      await next()
    } finally {
      if (ctx.path.startsWith('/gated-') || ctx.path.startsWith('/late-')) gatedDone.shift()?.()
    }
  })
  app.use(downloads())
  app.use(async (ctx, next) => {
    // Sources that go on only once the client has reset its stream: the window between a request
    // and its response headers (a slow permission check, stat or first row), made certain.
    const closed = once(ctx.res, 'close')
    if (ctx.path.startsWith('/gated-') || ctx.path.startsWith('/late-')) gatedArrived.shift()?.()
    if (ctx.path === '/gated-file') {
      const inner = new PathFile('big.bin', { root: bigDir })
      const gated: DownloadFile = {
        name: inner.name,
        stat: async (options) => { await closed; return await inner.stat(options) },
        open: async (range, options) => await inner.open(range, options)
      }
      ctx.body = download(gated)
    } else if (ctx.path === '/gated-generator') {
      ctx.body = new VirtualFile((async function * () {
        try {
          await closed
          yield Buffer.alloc(1000, 0x63)
          yield Buffer.alloc(1000, 0x63)
        } finally {
          generatorsFinished++
        }
      })(), { name: 'export.csv' })
    } else if (ctx.path === '/late-file' || ctx.path === '/late-ranges') {
      // The route itself waits (a permission check) while the client resets: serve() gets a
      // response already closed.
      await closed
      ctx.body = download(new PathFile('big.bin', { root: bigDir }))
    } else if (ctx.path === '/remote') {
      ctx.body = new HttpFile(upstreamUrl)
    } else if (ctx.path === '/late-remote') {
      await closed
      ctx.body = new HttpFile(upstreamUrl)
    } else if (ctx.path === '/late-generator') {
      await closed
      const rows = (async function * () { for (let i = 0; i < 100; i++) yield Buffer.alloc(65536, 0x63) })()
      lateGenerators.push(rows)
      ctx.body = new VirtualFile(rows, { name: 'export.csv' })
    } else if (ctx.path === '/reset-file') {
      ctx.body = download(new PathFile('big.bin', { root: bigDir }))
    } else await next()
  })
  app.use((ctx) => {
    if (ctx.path === '/binary') ctx.body = download(new PathFile('binary.bin', { root: fixtureRoot }), { filename: 'données.bin' })
    else if (ctx.path === '/fails') {
      ctx.body = new VirtualFile((async function * () {
        yield Buffer.alloc(100_000, 0x61)
        await new Promise((resolve) => setTimeout(resolve, 50))
        throw new Error('the export failed')
      })(), { name: 'export.csv' })
    }
  })
  server = http2.createServer(app.callback())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
test.after.always(async () => {
  server?.close()
  upstream?.close()
  if (bigDir !== '') await rm(bigDir, { recursive: true, force: true })
})

/** The descriptors of this process open on `path` (the server runs in it). */
function openOn (path: string): number {
  let count = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) count++
    } catch {}
  }
  return count
}

async function until (condition: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  return condition()
}

/**
 * Sends `count` requests for `path` on one session, each reset (RST_STREAM CANCEL) once it is sent;
 * for the gated routes one at a time, each reset once the app has it, resolving when the app has
 * finished with them.
 */
async function resetEach (path: string, count: number): Promise<void> {
  const session = http2.connect(origin)
  session.on('error', () => {})
  await once(session, 'connect')
  const gated = path.startsWith('/gated-') || path.startsWith('/late-')
  for (let i = 0; i < count; i++) {
    const arrived = new Promise<void>((resolve) => { gatedArrived.push(resolve) })
    const finished = new Promise<void>((resolve) => { gatedDone.push(resolve) })
    const stream = session.request({ ':path': path, ...(path === '/late-ranges' ? { range: 'bytes=0-599999,700000-700099' } : {}) })
    stream.on('error', () => {})
    if (gated) {
      await arrived
      stream.close(http2.constants.NGHTTP2_CANCEL)
      await finished
    } else stream.on('ready', () => { stream.close(http2.constants.NGHTTP2_CANCEL) })
  }
  gatedArrived = []
  gatedDone = []
  session.close()
}

async function h2 (path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<H2Response> {
  const session = http2.connect(origin)
  try {
    const stream = session.request({ ':path': path, ...headers })
    const [responseHeaders] = await once(stream, 'response') as [http2.IncomingHttpHeaders]
    const chunks: Buffer[] = []
    let error: Error | undefined
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer)
    } catch (caught) {
      error = caught as Error
    }
    return { status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks), error }
  } finally {
    session.close()
  }
}

test.serial('HTTP/2: a whole file, a range, several ranges, a 304 and a HEAD are answered as over HTTP/1.1', async (t) => {
  const bytes = await readFile(join(fixtureRoot, 'binary.bin'))
  const whole = await h2('/binary')
  t.is(whole.status, 200)
  t.is(whole.error, undefined)
  t.deepEqual(whole.body, bytes)
  t.is(whole.headers['content-length'], String(bytes.length))
  t.is(whole.headers['content-disposition'], 'attachment; filename="donnees.bin"; filename*=UTF-8\'\'donn%C3%A9es.bin')
  t.is(whole.headers['accept-ranges'], 'bytes')
  const etag = String(whole.headers.etag)

  const range = await h2('/binary', { range: 'bytes=10-19' })
  t.is(range.status, 206)
  t.is(range.headers['content-range'], `bytes 10-19/${bytes.length}`)
  t.deepEqual(range.body, bytes.subarray(10, 20))

  const multi = await h2('/binary', { range: 'bytes=0-9,1000-1009' })
  t.is(multi.status, 206)
  const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(String(multi.headers['content-type']))?.[1] ?? ''
  t.not(boundary, '')
  t.is(multi.headers['content-length'], String(multi.body.length))
  t.true(multi.body.includes(Buffer.concat([Buffer.from(`Content-Range: bytes 1000-1009/${bytes.length}\r\n\r\n`), bytes.subarray(1000, 1010)])))

  const notModified = await h2('/binary', { 'if-none-match': etag })
  t.is(notModified.status, 304)
  t.is(notModified.body.length, 0)
  t.is(notModified.headers.etag, etag)

  const head = await h2('/binary', { ':method': 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], String(bytes.length))
  t.is(head.body.length, 0)
  t.deepEqual(errors, [])
})

test.serial('HTTP/2: a source failing after its first bytes resets the stream (the client sees an error, not the end of the file), and the failure is reported', async (t) => {
  const cut = await h2('/fails')
  t.is(cut.status, 200)
  t.truthy(cut.error, 'the stream ended with an error')
  t.regex(cut.error?.message ?? '', /NGHTTP2_INTERNAL_ERROR|RST_STREAM|closed with error/i)
  t.true(errors.some((error) => error.message === 'the export failed'))
})

test.serial('HTTP/2: a stream the client resets before the headers releases the file the app opened for it', async (t) => {
  t.is(openOn(bigFile), 0)
  await resetEach('/gated-file', 20)
  t.true(await until(() => openOn(bigFile) === 0), `${openOn(bigFile)} descriptors left open on the file`)
  // Resets racing the response of a plain route: whichever side wins, nothing stays open.
  await resetEach('/reset-file', 50)
  t.true(await until(() => openOn(bigFile) === 0), `${openOn(bigFile)} descriptors left open on the file`)
  t.deepEqual(errors.filter((error) => error.message !== 'the export failed'), [])
})

test.serial('HTTP/2: a stream the client reset while the route was still deciding (before serve() got it) leaves nothing open: no descriptor, whole file or ranges, and the generator finishes', async (t) => {
  t.is(openOn(bigFile), 0)
  await resetEach('/late-file', 20)
  await resetEach('/late-ranges', 10)
  t.true(await until(() => openOn(bigFile) === 0), `${openOn(bigFile)} descriptors left open on the file`)
  lateGenerators = []
  await resetEach('/late-generator', 10)
  t.is(lateGenerators.length, 10)
  // Closed (return()ed, never resumed), not left suspended at a row: a next() finds it done.
  for (const rows of lateGenerators) t.deepEqual(await rows.next(), { done: true, value: undefined })
  t.deepEqual(errors.filter((error) => error.message !== 'the export failed'), [])
})

test.serial('HTTP/2: a remote source (HttpFile) answers a GET, a HEAD, a 304 and a range; one reset before serve() got it asks the origin for nothing', async (t) => {
  const whole = await h2('/remote')
  t.is(whole.status, 200)
  t.deepEqual(whole.body, upstreamBytes)
  // An HTTP/2 HEAD's stream has ended its writable side from the start: still a live request.
  const head = await h2('/remote', { ':method': 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], String(upstreamBytes.length))
  t.is(head.body.length, 0)
  const notModified = await h2('/remote', { 'if-none-match': '"u1"' })
  t.is(notModified.status, 304)
  const range = await h2('/remote', { range: 'bytes=100-199' })
  t.is(range.status, 206)
  t.deepEqual(range.body, upstreamBytes.subarray(100, 200))
  const before = upstreamRequests
  await resetEach('/late-remote', 5)
  t.is(upstreamRequests, before)
  t.deepEqual(errors.filter((error) => error.message !== 'the export failed'), [])
})

test.serial('HTTP/2: a stream the client resets before the headers stops the generator (its finally runs)', async (t) => {
  const before = generatorsFinished
  await resetEach('/gated-generator', 10)
  t.true(await until(() => generatorsFinished === before + 10), `${generatorsFinished - before} of 10 generators finished`)
  t.deepEqual(errors.filter((error) => error.message !== 'the export failed'), [])
})
