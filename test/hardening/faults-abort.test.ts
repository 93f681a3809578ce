import test from 'ava'
import type { ExecutionContext } from 'ava'
import Koa from 'koa'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { createServer, get } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import type { ByteRange, DownloadFile, FileStat, OpenOptions } from '../../source/types.ts'
import { VirtualFile } from '../../source/virtual-file.ts'
import { clientRequest, deferred, fdsUnder, settle, socketsOn, startApp } from './fault-kit.ts'

const rejections: unknown[] = []
process.on('unhandledRejection', (reason) => { rejections.push(reason) })

let dir = ''
const BIG = 8 * 1024 * 1024
test.before(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), 'kd-abort-')))
  await writeFile(join(dir, 'big.bin'), randomBytes(BIG))
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })
test.after('no unhandled rejection in any abort scenario', t => { t.deepEqual(rejections, []) })

/** Sends a GET and destroys the socket as soon as `when` resolves (before any response byte). */
async function abortBeforeHeaders (port: number, path: string, when: Promise<void>): Promise<number> {
  const socket = connect(port, '127.0.0.1', () => { socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`) })
  let received = 0
  socket.on('data', (chunk: Buffer) => { received += chunk.length })
  socket.on('error', () => {})
  await when
  socket.destroy()
  return received
}

/** A PathFile whose stat() or open() waits for the test: the window in which the client leaves. */
class Gated implements DownloadFile {
  readonly name = 'big.bin'
  readonly inner = new PathFile('big.bin', { root: dir })
  readonly statEntered = deferred()
  readonly openEntered = deferred()
  readonly releaseStat = deferred()
  readonly releaseOpen = deferred()
  signal: AbortSignal | undefined
  streams: Readable[] = []
  readonly gate: 'stat' | 'open'
  constructor (gate: 'stat' | 'open') { this.gate = gate }
  async stat (options?: OpenOptions): Promise<FileStat> {
    this.signal = options?.signal
    this.statEntered.resolve()
    if (this.gate === 'stat') await this.releaseStat.promise
    return await this.inner.stat()
  }

  async open (range?: ByteRange, options?: OpenOptions): Promise<Readable> {
    this.signal = options?.signal
    this.openEntered.resolve()
    if (this.gate === 'open') await this.releaseOpen.promise
    const stream = await this.inner.open(range)
    this.streams.push(stream)
    return stream
  }
}

test.serial('abort while stat() is pending: the signal fires, and whatever is opened afterwards is closed — no fd left, no error logged', async t => {
  const file = new Gated('stat')
  const app = await startApp((ctx) => { ctx.body = file })
  t.teardown(app.close)
  const received = await abortBeforeHeaders(app.port, '/', file.statEntered.promise)
  t.is(received, 0)
  t.true(await settle(() => file.signal?.aborted === true), 'the AbortSignal handed to stat() fires when the client leaves')
  file.releaseStat.resolve()
  t.true(await settle(() => fdsUnder(dir).length === 0), `fds left: ${fdsUnder(dir).join(', ')}`)
  t.true(file.streams.every((s) => s.destroyed), 'any stream opened after the abort is destroyed')
  t.true(await settle(() => socketsOn(app.port).length === 0), `sockets left: ${socketsOn(app.port).join('; ')}`)
  t.deepEqual(app.errors.map((e) => e.message), [], 'a client abort is not an error')
})

test.serial('abort while open() is pending: the stream it returns late is destroyed, its fd closed', async t => {
  const file = new Gated('open')
  const app = await startApp((ctx) => { ctx.body = file })
  t.teardown(app.close)
  await abortBeforeHeaders(app.port, '/', file.openEntered.promise)
  t.true(await settle(() => file.signal?.aborted === true))
  file.releaseOpen.resolve()
  t.true(await settle(() => file.streams.length === 1 && file.streams.every((s) => s.destroyed)), 'the late stream is destroyed')
  t.true(await settle(() => fdsUnder(dir).length === 0), `fds left: ${fdsUnder(dir).join(', ')}`)
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('abort mid-body of an 8 MiB file: the file handle is closed, the socket released, nothing logged', async t => {
  const app = await startApp((ctx) => { ctx.body = new PathFile('big.bin', { root: dir }) })
  t.teardown(app.close)
  for (let i = 0; i < 20; i++) {
    const { raw } = await clientRequest(app.port, '/', {}, (got, c) => { if (got > 100_000 + i * 50_000) c.abort() })
    t.true(raw.length < BIG, 'the client left early')
  }
  t.true(await settle(() => fdsUnder(dir).length === 0), `fds left: ${fdsUnder(dir).join(', ')}`)
  t.true(await settle(() => socketsOn(app.port).length === 0), `sockets left: ${socketsOn(app.port).join('; ')}`)
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('abort inside a multipart/byteranges response: every part\'s handle is closed', async t => {
  const app = await startApp((ctx) => { ctx.body = new PathFile('big.bin', { root: dir }) })
  t.teardown(app.close)
  const ranges = 'bytes=0-99,1000000-2999999,4000000-7999999'
  for (const after of [50, 500_000, 2_500_000]) {
    const { raw } = await clientRequest(app.port, '/', { Range: ranges }, (got, c) => { if (got > after) c.abort() })
    t.regex(raw.subarray(0, 400).toString('latin1'), /^HTTP\/1\.1 206 .*multipart\/byteranges/s)
  }
  t.true(await settle(() => fdsUnder(dir).length === 0), `fds left: ${fdsUnder(dir).join(', ')}`)
  t.true(await settle(() => socketsOn(app.port).length === 0), `sockets left: ${socketsOn(app.port).join('; ')}`)
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('abort while the source has sent nothing yet (a generated export still preparing its first row): the source is released and the request ends', async t => {
  // Sized: the length guard is what serve() waits on; unsized: the source itself.
  for (const size of [10, undefined]) {
    const asked = deferred()
    let closed = false
    let finished = false
    const silent = new Readable({ read () { asked.resolve() } })
    silent.once('close', () => { closed = true })
    const koa = new Koa()
    const errors: Error[] = []
    koa.on('error', (error: Error) => { errors.push(error) })
    koa.use(async (_ctx, next) => { try { await next() } finally { finished = true } })
    koa.use(downloads())
    koa.use((ctx) => { ctx.body = new VirtualFile(silent, { name: 'export.csv', size }) })
    const server = koa.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    t.teardown(() => { server.closeAllConnections(); server.close() })
    const received = await abortBeforeHeaders(port, '/', asked.promise)
    t.is(received, 0)
    t.true(await settle(() => closed), `size ${size}: the silent source is destroyed when the client leaves`)
    t.true(await settle(() => finished), `size ${size}: the request ends instead of waiting for a first byte that no one will read`)
    t.true(await settle(() => socketsOn(port).length === 0), `sockets left: ${socketsOn(port).join('; ')}`)
    t.deepEqual(errors.map((e) => e.message), [], 'a client abort is not an error')
  }
})

test.serial('abort while a generated stream is being sent: the generator is finished (its finally runs)', async t => {
  let finished = 0
  let produced = 0
  const app = await startApp((ctx) => {
    async function * endless (): AsyncGenerator<Buffer> {
      try {
        for (;;) { produced++; yield Buffer.alloc(64 * 1024, 0x61) }
      } finally {
        finished++
      }
    }
    ctx.body = new VirtualFile(endless(), { name: 'endless.txt' })
  })
  t.teardown(app.close)
  for (let i = 0; i < 5; i++) await clientRequest(app.port, '/', {}, (got, c) => { if (got > 300_000) c.abort() })
  t.true(await settle(() => finished === 5), `${finished} of 5 generators finished`)
  const before = produced
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.is(produced, before, 'nothing is produced after the abort')
  t.deepEqual(app.errors.map((e) => e.message), [])
})

test.serial('a client that stops reading (and never aborts) keeps one handle, released when it finally goes', async t => {
  const app = await startApp((ctx) => { ctx.body = new PathFile('big.bin', { root: dir }) })
  t.teardown(app.close)
  let control: { abort: () => void } | undefined
  const done = clientRequest(app.port, '/', {}, (_got, c) => { c.pause(); control = c })
  t.true(await settle(() => control !== undefined))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.is(fdsUnder(dir).length, 1, 'backpressure: one handle, the file is not read ahead into memory')
  control?.abort()
  await done
  t.true(await settle(() => fdsUnder(dir).length === 0))
})

test.serial('an upstream response the app streams (a VirtualFile over http.get), reset by its origin mid-body, fails with ECONNRESET as a client leaving would: reported once, sized or not; the same download left by its client is not reported', async t => {
  const SIZE = 4_000_000
  const origin = createServer((req, res) => {
    res.writeHead(200, { 'Content-Length': SIZE })
    // A quarter of the body, then a reset (/reset) or nothing more (/stall: the client leaves).
    res.write(Buffer.alloc(SIZE / 4), () => { if (req.url === '/reset') setTimeout(() => { res.socket?.resetAndDestroy() }, 50) })
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => { origin.closeAllConnections(); origin.close() })
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const app = await startApp(async (ctx) => {
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => { get(originUrl + String(ctx.query.origin), resolve).once('error', reject) })
    ctx.body = new VirtualFile(upstream, { name: 'export.bin', ...(ctx.query.sized === '1' ? { size: SIZE } : {}) })
  })
  t.teardown(app.close)
  for (const sized of ['1', '0']) {
    const before = app.errors.length
    const { raw } = await clientRequest(app.port, `/?origin=/reset&sized=${sized}`)
    t.true(raw.length < SIZE, 'the client got a cut body')
    t.true(await settle(() => app.errors.length === before + 1), `sized=${sized}: reported once`)
    t.is((app.errors[before] as { code?: string }).code, 'ECONNRESET')
    const left = await clientRequest(app.port, `/?origin=/stall&sized=${sized}`, {}, (got, c) => { if (got > 100_000) c.abort() })
    t.true(left.raw.length < SIZE, 'the client left early')
    await new Promise((resolve) => { setTimeout(resolve, 300) })
    t.is(app.errors.length, before + 1, `sized=${sized}: the client leaving is not reported`)
  }
})

test.serial('NODE_DEBUG=koa-downloads: a client leaving says "client went away" once per request, with the reason — mid-body (FIN or RST) or while stat() waits — and no "failed" line', async t => {
  const { execFile } = await import('node:child_process')
  const serveUrl = JSON.stringify(new URL('../../source/downloads.ts', import.meta.url).href)
  const pathFileUrl = JSON.stringify(new URL('../../source/path-file.ts', import.meta.url).href)
  const script = `
    const Koa = (await import('koa')).default
    const { connect } = await import('node:net')
    const { downloads } = await import(${serveUrl})
    const { PathFile } = await import(${pathFileUrl})
    const app = new Koa()
    let errors = 0
    app.on('error', () => { errors++ })
    app.use(downloads())
    app.use((ctx) => {
      if (ctx.path === '/file') { ctx.body = new PathFile('big.bin', { root: ${JSON.stringify(dir)} }); return }
      // stat() waits until the client has left, then fails with the abort, as an upstream request would
      ctx.body = { name: 'slow.bin', stat: (options) => new Promise((resolve, reject) => { options.signal.addEventListener('abort', () => { reject(options.signal.reason) }) }), open: async () => { throw new Error('never') } }
    })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    const leave = (path, after, reset) => new Promise((resolve) => {
      const socket = connect(server.address().port, '127.0.0.1', () => { socket.write('GET ' + path + ' HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n') })
      let got = 0
      const go = () => { if (reset) socket.resetAndDestroy(); else socket.destroy(); setTimeout(resolve, 100) }
      socket.on('data', (chunk) => { got += chunk.length; if (after >= 0 && got > after && !socket.destroyed) go() })
      socket.on('error', () => {})
      if (after < 0) setTimeout(go, 100)
    })
    for (const reset of [false, true]) {
      for (let i = 0; i < 3; i++) await leave('/file', 100000, reset)
      for (let i = 0; i < 3; i++) await leave('/slow', -1, reset)
    }
    await new Promise((resolve) => setTimeout(resolve, 300))
    console.log(JSON.stringify({ errors }))
    server.close()
  `
  const { stdout, stderr } = await new Promise<{ stdout: string, stderr: string }>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_DEBUG: 'koa-downloads' } }, (error, out, err) => { if (error) reject(error); else resolve({ stdout: out, stderr: err }) })
  })
  t.deepEqual(JSON.parse(stdout), { errors: 0 })
  const gone = stderr.split('\n').filter((line) => line.includes('client went away'))
  t.is(gone.filter((line) => line.includes('/file: client went away (')).length, 6, stderr)
  t.is(gone.filter((line) => line.includes('/slow: client went away (')).length, 6, stderr)
  t.is(gone.length, 12, stderr)
  // The reason is the failure's own (the signal's, for a stat() the leaving aborted), not the status text thrown for it.
  t.true(gone.filter((line) => line.endsWith('/slow: client went away (client went away)')).length >= 3, stderr)
  t.false(stderr.includes('Internal Server Error'), stderr)
  t.false(/ failed: /.test(stderr), stderr)
})

test.serial('a source failing mid-body with a client\'s error code (ERR_STREAM_PREMATURE_CLOSE from an inner pipeline, ECONNRESET, EPIPE) is reported once, as its own error, over HTTP/1.1 and to an HTTP/1.0 client (whose connection is reset first)', async t => {
  const app = await startApp((ctx) => {
    const code = String(ctx.query.code)
    const source = new Readable({ read () {} })
    source.push(Buffer.alloc(64 * 1024))
    setTimeout(() => { source.destroy(Object.assign(new Error(`the source broke (${code})`), { code })) }, 50)
    ctx.body = new VirtualFile(source, { name: 'export.bin' })
  })
  t.teardown(app.close)
  for (const code of ['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE']) {
    for (const version of ['1.1', '1.0']) {
      const before = app.errors.length
      const socket = connect(app.port, '127.0.0.1', () => { socket.write(`GET /?code=${code} HTTP/${version}\r\nHost: x\r\n\r\n`) })
      socket.on('data', () => {})
      socket.on('error', () => {})
      await new Promise((resolve) => { socket.on('close', resolve) })
      t.true(await settle(() => app.errors.length > before), `${code} HTTP/${version}: reported`)
      await new Promise((resolve) => { setTimeout(resolve, 100) })
      t.deepEqual(app.errors.slice(before).map((error) => error.message), [`the source broke (${code})`], `${code} HTTP/${version}`)
    }
  }
})

/**
 * An app with `outer` mounted before downloads() (it runs after the route, on the way back) and
 * `route` after it, listening on loopback; its 'error' events collected.
 */
async function outerApp (t: ExecutionContext, outer: Koa.Middleware, route: Koa.Middleware): Promise<{ port: number, errors: Error[] }> {
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(outer)
  app.use(downloads())
  app.use(route)
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { port: (server.address() as AddressInfo).port, errors }
}

/** A route whose export sends a first line, then fails 10 ms later as an upstream reset does (ECONNRESET). */
function failingExport (ctx: Koa.Context): void {
  const source = new Readable({ read () {} })
  source.push('id,name\n')
  setTimeout(() => { source.destroy(Object.assign(new Error('upstream reset'), { code: 'ECONNRESET' })) }, 10)
  ctx.body = new VirtualFile(source, { name: 'export.csv' })
}

test.serial('an error a middleware throws after next() is the response\'s outcome, sent and reported, although the unsent body\'s source had failed meanwhile with a client\'s code', async t => {
  const { port, errors } = await outerApp(t, async (ctx, next) => {
    await next()
    // e.g. an audit log written after the route, then a quota decided
    await new Promise((resolve) => { setTimeout(resolve, 50) })
    ctx.throw(403, 'quota exceeded')
  }, failingExport)
  const res = await fetch(`http://127.0.0.1:${port}/`)
  t.is(res.status, 403)
  t.is(await res.text(), 'quota exceeded')
  await new Promise((resolve) => { setTimeout(resolve, 100) })
  t.deepEqual(errors.map((error) => error.message), ['quota exceeded'])
})

test.serial('a source of unknown length closed before its end with no error (a cursor closed, a child killed) is reported once, over HTTP/1.1 and 1.0, not taken for a client leaving', async t => {
  const app = await startApp((ctx) => {
    let chunks = 0
    const source = new Readable({ read () { if (chunks++ < 5) this.push(Buffer.alloc(16384)) } })
    setTimeout(() => { source.destroy() }, 100)
    ctx.body = new VirtualFile(source, { name: 'x.bin' })
  })
  t.teardown(app.close)
  for (const version of ['1.1', '1.0']) {
    const before = app.errors.length
    const socket = connect(app.port, '127.0.0.1', () => { socket.write(`GET / HTTP/${version}\r\nHost: x\r\n\r\n`) })
    socket.on('data', () => {})
    socket.on('error', () => {})
    await new Promise((resolve) => { socket.on('close', resolve) })
    t.true(await settle(() => app.errors.length > before), `HTTP/${version}: reported`)
    await new Promise((resolve) => { setTimeout(resolve, 100) })
    t.deepEqual(app.errors.slice(before).map((error) => error.message), ['"x.bin": the source closed before its end'], `HTTP/${version}`)
  }
})

test.serial('a download whose source failed, replaced by a middleware with a stream of its own: a client leaving that stream is not reported as the first source\'s failure', async t => {
  const { port, errors } = await outerApp(t, async (ctx, next) => {
    await next()
    await new Promise((resolve) => { setTimeout(resolve, 50) })
    // the export failed: an apology page of its own, streamed slowly
    const page = new Readable({ read () {} })
    const timer = setInterval(() => { page.push(Buffer.alloc(16384)) }, 5)
    page.on('close', () => { clearInterval(timer) })
    ctx.body = page
  }, failingExport)
  const { raw } = await clientRequest(port, '/', {}, (got, c) => { if (got > 100_000) c.abort() })
  t.true(raw.length > 100_000)
  await new Promise((resolve) => { setTimeout(resolve, 200) })
  t.deepEqual(errors.map((error) => error.message), [])
})

test.serial('an error with a client\'s code (a metering call\'s "socket hang up", ECONNRESET) thrown after next() on a POST whose body was read gets its 500 and is reported: the request is destroyed once read, its client still there', async t => {
  const { port, errors } = await outerApp(t, async (_ctx, next) => {
    await next()
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
  }, async (ctx) => {
    for await (const chunk of ctx.req) t.truthy(chunk)
    ctx.body = new VirtualFile(Readable.from(['a,b\n', '1,2\n']), { name: 'export.csv' })
  })
  const res = await fetch(`http://127.0.0.1:${port}/export`, { method: 'POST', body: '{"from":"2024-01-01"}', signal: AbortSignal.timeout(5000) })
  t.is(res.status, 500)
  await res.arrayBuffer()
  t.deepEqual(errors.map((error) => error.message), ['socket hang up'])
})

test.serial('HTTP/1.0 (nginx\'s default towards the app): a middleware that puts a body of its own in place of a download of unknown length sends it whole, not reset when Koa closes the download\'s stream', async t => {
  const BODY = 8 * 1024 * 1024
  // e.g. a cached copy served instead
  const { port, errors } = await outerApp(t, async (ctx, next) => { await next(); ctx.body = Buffer.alloc(BODY, 98) }, (ctx) => {
    ctx.body = new VirtualFile(Readable.from([Buffer.alloc(1024)]), { name: 'a.bin' })
  })
  let received = 0
  let reset = false
  await new Promise<void>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n')
      // a client that reads late: the reset would drop what the kernel still holds
      socket.pause()
      setTimeout(() => { socket.resume() }, 500)
    })
    socket.on('data', (chunk: Buffer) => { received += chunk.length })
    socket.on('error', () => { reset = true })
    socket.on('close', () => { resolve() })
  })
  t.false(reset, 'closed, not reset')
  t.true(received > BODY, `${received} bytes`)
  t.deepEqual(errors, [])
})

test.serial('a client that leaves while stat(), open() or the part reads are pending is no error for an error handler mounted before downloads(): it sees nothing thrown, and nothing is reported', async t => {
  const digits = Buffer.from('0123456789'.repeat(100))
  const pending = async (signal: AbortSignal | undefined): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, 500)
      signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
    })
  }
  // Each waits 500 ms in one step, honouring the client's signal: stat(), a single range's read(),
  // the reads of a small multipart body.
  const files: Record<string, DownloadFile> = {
    '/stat': { name: 's.bin', stat: async (options) => { await pending(options?.signal); return { size: 1000, etag: '"s"' } }, open: async () => { throw new Error('unused') } },
    '/read': { name: 'r.bin', stat: async () => ({ size: 1000, etag: '"r"' }), read: async (range, options) => { await pending(options?.signal); return digits.subarray(range?.start ?? 0, (range?.end ?? 999) + 1) }, open: async () => { throw new Error('unused') } },
    '/parts': { name: 'p.bin', stat: async () => ({ size: 1000, etag: '"p"' }), read: async (range, options) => { await pending(options?.signal); return digits.subarray(range?.start ?? 0, (range?.end ?? 999) + 1) }, open: async () => { throw new Error('unused') } }
  }
  const seen: string[] = []
  const { port, errors } = await outerApp(t, async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      seen.push(`${ctx.path}: ${(error as { status?: number }).status ?? 0} ${(error as Error).message}`)
      throw error
    }
  }, (ctx) => { ctx.body = files[ctx.path] })
  for (const [path, range] of [['/stat', 'bytes=0-1'], ['/read', 'bytes=0-1'], ['/parts', 'bytes=0-1,500-501']]) {
    const socket = connect(port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nRange: ${range}\r\n\r\n`)
    await new Promise((resolve) => setTimeout(resolve, 150))
    socket.destroy()
  }
  await new Promise((resolve) => setTimeout(resolve, 800))
  t.deepEqual(seen, [])
  t.deepEqual(errors, [])
})
