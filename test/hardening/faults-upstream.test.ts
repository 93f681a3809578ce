import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { clientRequest, settle, socketsOn, split, startApp } from './fault-kit.ts'
import type { FaultApp } from './fault-kit.ts'

const rejections: unknown[] = []
process.on('unhandledRejection', (reason) => { rejections.push(reason) })
test.after('no unhandled rejection for any upstream fault', t => { t.deepEqual(rejections, []) })

const SIZE = 1024 * 1024
const bytes = randomBytes(SIZE)
let origin: Server
let originPort = 0
/** What the origin saw: per path, how many requests, and how many ended before the response finished. */
const seen = new Map<string, { requests: number, cutShort: number }>()
/** Bytes of its endless body the origin's /redirect-endless handed to its socket. */
let endlessWritten = 0

function head (res: ServerResponse, extra: Record<string, string> = {}): void {
  res.writeHead(200, { 'Content-Length': String(SIZE), 'Content-Type': 'application/octet-stream', ETag: '"o1"', 'Accept-Ranges': 'bytes', Connection: 'close', ...extra })
}

/** A local origin with one misbehaviour per path; every response closes its connection, so no socket is pooled. */
function handle (req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '').split('?')[0] ?? ''
  const stats = seen.get(path) ?? { requests: 0, cutShort: 0 }
  stats.requests++
  seen.set(path, stats)
  res.on('close', () => { if (!res.writableFinished) stats.cutShort++ })
  const isHead = req.method === 'HEAD'
  switch (path) {
    case '/ok.bin': {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
      if (req.headers['if-match'] !== undefined && req.headers['if-match'] !== '"o1"') { res.writeHead(412, { Connection: 'close' }).end(); return }
      if (range !== null && !isHead) {
        const start = Number(range[1])
        const end = Number(range[2])
        res.writeHead(206, { 'Content-Length': String(end - start + 1), 'Content-Range': `bytes ${start}-${end}/${SIZE}`, ETag: '"o1"', Connection: 'close' })
        res.end(bytes.subarray(start, end + 1))
        return
      }
      head(res)
      res.end(isHead ? undefined : bytes)
      return
    }
    case '/reset-head': req.socket.destroy(); return
    case '/reset-body':
      head(res)
      if (isHead) { res.end(); return }
      res.write(bytes.subarray(0, 200_000), () => { req.socket.destroy() })
      return
    case '/hang-head': return // never answers
    case '/hang-body':
      head(res)
      if (isHead) res.end()
      else res.write(bytes.subarray(0, 65536)) // then silence
      return
    case '/slow-body': {
      head(res)
      if (isHead) { res.end(); return }
      let at = 0
      const timer = setInterval(() => {
        if (res.destroyed) { clearInterval(timer); return }
        res.write(bytes.subarray(at, at + 16384))
        at += 16384
        if (at >= SIZE) { clearInterval(timer); res.end() }
      }, 10)
      res.on('close', () => { clearInterval(timer) })
      return
    }
    case '/big.bin': {
      // 16 MiB: more than loopback socket buffers hold, so a paused client pauses the upstream too.
      head(res, { 'Content-Length': String(16 * SIZE) })
      if (isHead) { res.end(); return }
      let n = 0
      const more = (): void => {
        while (n < 16) {
          n++
          if (!res.write(bytes)) { res.once('drain', more); return }
        }
        res.end()
      }
      more()
      return
    }
    case '/trickle': {
      // Alive but slow: a chunk every 100 ms, each gap well under the 400 ms idle timeout.
      head(res, { 'Content-Length': String(20 * 8192) })
      if (isHead) { res.end(); return }
      let sent = 0
      const timer = setInterval(() => {
        if (res.destroyed) { clearInterval(timer); return }
        res.write(bytes.subarray(sent * 8192, (sent + 1) * 8192))
        if (++sent === 20) { clearInterval(timer); res.end() }
      }, 100)
      res.on('close', () => { clearInterval(timer) })
      return
    }
    case '/changed':
      if (isHead) { head(res, { ETag: '"a"' }); res.end(); return }
      res.writeHead(412, { Connection: 'close' }).end()
      return
    case '/gzip':
      if (isHead) { head(res); res.end(); return }
      head(res, { 'Content-Encoding': 'gzip' })
      res.end(bytes)
      return
    case '/redirect-endless': {
      // A 302 whose chunked body never ends: 64 KiB after 64 KiB, as fast as it is read.
      res.writeHead(302, { Location: '/ok.bin', Connection: 'close' })
      if (isHead) { res.end(); return }
      const more = (): void => {
        while (!res.destroyed) {
          endlessWritten += 65536
          if (!res.write(bytes.subarray(0, 65536))) { res.once('drain', more); return }
        }
      }
      more()
      return
    }
    case '/redirect-stalls':
      // A 302 whose chunked body starts, then goes silent for good.
      res.writeHead(302, { Location: '/ok.bin', Connection: 'close' })
      if (isHead) res.end()
      else res.write('Found. Redirecting to /ok.bin')
      return
    case '/status-500': res.writeHead(500, { Connection: 'close' }).end('boom'); return
    case '/status-503': res.writeHead(503, { Connection: 'close' }).end(); return
    case '/status-404': res.writeHead(404, { Connection: 'close' }).end(); return
    default: res.writeHead(404, { Connection: 'close' }).end()
  }
}

test.before(async () => {
  origin = createServer(handle)
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  originPort = (origin.address() as AddressInfo).port
})
test.after.always(async () => {
  origin?.closeAllConnections()
  await new Promise<void>((resolve) => { if (origin === undefined) resolve(); else origin.close(() => { resolve() }) })
})

async function proxyApp (t: ExecutionContext, timeout = 400): Promise<FaultApp> {
  const app = await startApp((ctx) => { ctx.body = new HttpFile(`http://127.0.0.1:${originPort}${ctx.path}`, { timeout }) })
  t.teardown(app.close)
  return app
}

const upstreamSockets = (): string[] => socketsOn(originPort)

test.serial('upstream healthy: the whole file and a range arrive intact (the harness works)', async t => {
  const app = await proxyApp(t)
  const full = split((await clientRequest(app.port, '/ok.bin')).raw)
  t.is(full.status, 200)
  t.true(full.body.equals(bytes))
  const part = split((await clientRequest(app.port, '/ok.bin', { Range: 'bytes=10-19' })).raw)
  t.is(part.status, 206)
  t.true(part.body.equals(bytes.subarray(10, 20)))
  t.true(await settle(() => upstreamSockets().length === 0), upstreamSockets().join('; '))
})

// A plain GET makes HttpFile's stat() the GET itself; a conditional one takes HEAD, then GET with
// If-Match — the route on which the file can change between the two (/changed).
const conditional = { 'If-None-Match': '"not-this"' }
const beforeHeaders: Array<[string, number, RegExp, Record<string, string>]> = [
  ['/reset-head', 502, /ECONNRESET|socket hang up|reset/i, {}],
  ['/reset-head', 502, /ECONNRESET|socket hang up|reset/i, conditional],
  ['/hang-head', 504, /no response in 400 ms/, {}],
  ['/hang-head', 504, /no response in 400 ms/, conditional],
  ['/status-500', 502, /upstream 500/, {}],
  ['/status-503', 503, /upstream 503/, {}],
  ['/status-404', 404, /upstream 404/, {}],
  ['/status-404', 404, /upstream 404/, conditional],
  ['/changed', 503, /changed/, conditional],
  ['/gzip', 502, /Content-Encoding gzip/, {}],
  ['/gzip', 502, /Content-Encoding gzip/, conditional]
]
for (const [path, status, log, headers] of beforeHeaders) {
  const how = Object.keys(headers).length === 0 ? '' : ' (conditional GET: HEAD route)'
  test.serial(`upstream ${path.slice(1)}${how} → ${status} before any header, clean, logged, no upstream socket left`, async t => {
    const app = await proxyApp(t)
    const res = split((await clientRequest(app.port, path, headers)).raw)
    t.is(res.status, status)
    t.is(res.headers.etag, undefined)
    t.is(res.headers['content-disposition'], undefined)
    t.is(res.headers['content-length'], String(res.body.length))
    t.false(res.body.toString().includes('127.0.0.1'), 'the upstream URL is not shown to the client')
    const messages = (): string => app.errors.map((e) => `${e.message} ← ${String((e as { cause?: Error }).cause?.message)}`).join(' | ')
    t.true(await settle(() => app.errors.some((e) => log.test(`${e.message} ${String((e as { cause?: Error }).cause?.message)}`))), `logged: ${messages()}`)
    t.true(await settle(() => upstreamSockets().length === 0), upstreamSockets().join('; '))
  })
}

test.serial('upstream reset mid-body: the client gets fewer bytes than Content-Length and a closed connection, logged', async t => {
  const app = await proxyApp(t)
  const res = split((await clientRequest(app.port, '/reset-body')).raw)
  t.is(res.status, 200)
  t.is(res.headers['content-length'], String(SIZE))
  t.true(res.body.length < SIZE && res.body.length <= 200_000, `got ${res.body.length}`)
  t.true(res.body.equals(bytes.subarray(0, res.body.length)))
  t.true(await settle(() => app.errors.length > 0), 'logged')
  t.true(await settle(() => upstreamSockets().length === 0 && socketsOn(app.port).length === 0))
})

test.serial('upstream stalls mid-body: after the idle timeout the transfer is aborted (short body), logged as a timeout, the upstream socket closed', async t => {
  const app = await proxyApp(t)
  const res = split((await clientRequest(app.port, '/hang-body')).raw)
  t.is(res.status, 200)
  t.is(res.body.length, 65536)
  t.true(await settle(() => app.errors.some((e) => /no data for 400 ms/.test(e.message))), app.errors.map((e) => e.message).join(' | '))
  t.true(await settle(() => upstreamSockets().length === 0), upstreamSockets().join('; '))
})

for (const [path, what] of [['/redirect-endless', 'never ends'], ['/redirect-stalls', 'stalls']] as const) {
  test.serial(`a redirect whose body ${what}: the file is served, and the redirect's connection closed instead of read on (was read forever)`, async t => {
    const app = await proxyApp(t, 5000)
    const before = seen.get(path)?.cutShort ?? 0
    const written = endlessWritten
    const res = split((await clientRequest(app.port, path)).raw)
    t.is(res.status, 200)
    t.is(res.headers['content-length'], String(SIZE))
    t.true(res.body.equals(bytes))
    t.true(await settle(() => (seen.get(path)?.cutShort ?? 0) > before), 'the origin saw its redirect response cut')
    t.true(await settle(() => upstreamSockets().length === 0), upstreamSockets().join('; '))
    t.deepEqual(app.errors.map((e) => e.message), [])
    // Loopback socket buffers take a few MiB of the endless body; the app reads a few KiB of them,
    // where reading on for a second (a bound in time only) would make it hundreds of MiB.
    if (path === '/redirect-endless') t.true(endlessWritten - written < 32 * SIZE, `${endlessWritten - written} bytes of the endless body written`)
  })
}

test.serial('client aborts while a slow upstream is streaming: the upstream request is aborted too, nothing logged', async t => {
  const app = await proxyApp(t, 5000)
  const before = seen.get('/slow-body')?.cutShort ?? 0
  await clientRequest(app.port, '/slow-body', {}, (got, c) => { if (got > 50_000) c.abort() })
  t.true(await settle(() => (seen.get('/slow-body')?.cutShort ?? 0) > before), 'the origin saw its response cut: the upstream GET was aborted')
  t.true(await settle(() => upstreamSockets().length === 0), upstreamSockets().join('; '))
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('client aborts while the upstream HEAD is pending: the HEAD is aborted with it and no GET is ever sent', async t => {
  const app = await proxyApp(t, 5000)
  const requests = (): number => seen.get('/hang-head')?.requests ?? 0
  const before = requests()
  const socket = connect(app.port, '127.0.0.1', () => { socket.write('GET /hang-head HTTP/1.1\r\nHost: x\r\n\r\n') })
  socket.on('error', () => {})
  t.true(await settle(() => requests() === before + 1), 'the HEAD reached the origin')
  socket.destroy()
  t.true(await settle(() => upstreamSockets().length === 0, 2000), `the pending HEAD is aborted with the client (well before its 5 s timeout): ${upstreamSockets().join('; ')}`)
  t.is(requests(), before + 1, 'no further upstream request')
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('a slow but live upstream (a chunk every 100 ms for 2 s, idle timeout 400 ms) is sent whole: the timeout is for silence, not for the transfer', async t => {
  const app = await proxyApp(t)
  const res = split((await clientRequest(app.port, '/trickle')).raw)
  t.is(res.status, 200)
  t.true(res.body.equals(bytes.subarray(0, 20 * 8192)))
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('a client that stops reading for longer than the idle timeout does not get its download killed: backpressure is not silence', async t => {
  const app = await proxyApp(t)
  let paused = false
  const { raw } = await clientRequest(app.port, '/big.bin', {}, (_got, c) => {
    if (paused) return
    paused = true
    c.pause()
    setTimeout(() => { c.resume() }, 1200)
  })
  const res = split(raw)
  // The app's errors first: if the download was cut, they say why.
  t.deepEqual(app.errors.map((e) => e.message), [])
  t.is(res.status, 200)
  t.is(res.body.length, 16 * SIZE)
  t.true(res.body.subarray(15 * SIZE).equals(bytes), 'the last MiB arrived intact')
})
