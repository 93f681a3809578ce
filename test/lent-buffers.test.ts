// A single range of a local file within bufferSize is read into memory that the response gives back
// once it has written it out (serve()'s reuseBuffers), when nothing but Koa's respond() read it from
// ctx.body. These tests download over real sockets and check the exact bytes, what was taken back
// (lentBuffers()), that a body anything else read (a cache, a tee, a compressor) stays its own bytes
// for good, and that one found after it was taken back reads as empty.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { mkdtemp, realpath, rm } from 'node:fs/promises'
import { createServer, get as httpGet } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { connect as http2Connect, createServer as createHttp2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import Koa from 'koa'
import type { Middleware } from 'koa'
import { borrow, giveBack, lentBuffers, setTrimInterval, trimPool } from '../source/file-stream.ts'
import { PathFile } from '../source/path-file.ts'
import { serve } from '../source/serve.ts'
import type { ServeOptions } from '../source/serve.ts'
import type { ByteRange, OpenOptions } from '../source/types.ts'

const KiB = 1024
const files = { 'a.bin': randomBytes(512 * KiB), 'b.bin': randomBytes(512 * KiB), 'small.bin': randomBytes(32 * KiB) }

let root = ''
test.before(async () => {
  // The pool trims itself only when a test says so: a trim between two requests would change what
  // was taken back.
  setTrimInterval(Infinity)
  root = await realpath(await mkdtemp(join(tmpdir(), 'kd-lent-')))
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(root, name), bytes)
})
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true })
})

/** Empties the pool of lent memory: two trims give back everything (the first sets the low-water mark). */
function emptyPool (): void {
  trimPool()
  trimPool()
}

interface Reply { status: number, headers: IncomingHttpHeaders, body: Buffer }

/**
 * A Koa app with `before` ahead of serve(options), on a real socket. An app counts reads of its
 * bodies from its first lent range on (serve.ts, countReads()): the response of that first one was
 * made before, so it is never lent. Unless `warm` is false, one range is asked for first (the
 * middlewares in `before` do not see it), and the pool emptied again.
 */
async function start (t: ExecutionContext, before: Middleware[], options: ServeOptions = {}, file: (name: string) => PathFile = (name) => new PathFile(name, { root }), warm = true, app = new Koa()): Promise<(name: string, range?: string) => Promise<Reply>> {
  for (const middleware of before) app.use(async (ctx, next) => { await (ctx.get('x-warm-up') === '1' ? next() : middleware(ctx, next)) })
  app.use(serve(options))
  app.use((ctx) => { ctx.body = file(ctx.path.slice(1)) })
  const server: Server = createServer(app.callback())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const { port } = server.address() as AddressInfo
  const get = async (name: string, range?: string, headers: Record<string, string> = {}): Promise<Reply> => await new Promise<Reply>((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path: `/${name}`, headers: range === undefined ? headers : { ...headers, range } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    }).on('error', reject)
  })
  if (warm) {
    const reply = await get('small.bin', 'bytes=0-16383', { 'x-warm-up': '1' })
    t.is(reply.status, 206)
    await settled()
    emptyPool()
  }
  return async (name, range) => await get(name, range)
}

/** The response gives its body back on 'finish', which may come a moment after the client has the bytes. */
async function settled (): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => { setImmediate(resolve) })
  await new Promise((resolve) => { setTimeout(resolve, 20) })
}

/** Asks for the first three 64 KiB ranges of a.bin, checks their bytes, and waits for the responses to give back what they may. */
async function threeRanges (t: ExecutionContext, get: (name: string, range?: string) => Promise<Reply>): Promise<void> {
  for (const start of [0, 65536, 131072]) {
    const reply = await get('a.bin', `bytes=${start}-${start + 65535}`)
    t.is(reply.status, 206)
    t.true(reply.body.equals(expected('a.bin', start, 65536)))
  }
  await settled()
}

/** Keeps every `ctx.body` a 206 had when serve() was done with it, as a response cache would. */
function keeper (kept: Array<{ body: Buffer, name: string, start: number }>): Middleware {
  return async (ctx, next) => {
    await next()
    const match = /^bytes (\d+)-/.exec(String(ctx.response.get('Content-Range')))
    if (Buffer.isBuffer(ctx.body) && match !== null) kept.push({ body: ctx.body, name: ctx.path.slice(1), start: Number(match[1]) })
  }
}

function expected (name: string, start: number, length: number): Buffer {
  return files[name as keyof typeof files].subarray(start, start + length)
}

test.serial('a single range within bufferSize is sent from memory taken back once written; the next range fills it again', async (t) => {
  emptyPool()
  const get = await start(t, [])
  const first = await get('a.bin', 'bytes=0-65535')
  t.is(first.status, 206)
  t.is(first.headers['content-range'], `bytes 0-65535/${512 * KiB}`)
  t.is(first.headers['content-length'], '65536')
  t.true(first.body.equals(expected('a.bin', 0, 65536)))
  await settled()
  t.is(lentBuffers(65536), 1)
  const second = await get('b.bin', 'bytes=65536-131071')
  t.is(second.status, 206)
  t.true(second.body.equals(expected('b.bin', 65536, 65536)))
  await settled()
  // Lent again and taken back again: no new memory.
  t.is(lentBuffers(65536), 1)
})

test.serial('\'finish\' and \'close\' listeners that read the body, added before or after serve()\'s, get it whole, and it is not lent; one read after the response closed finds it empty', async (t) => {
  emptyPool()
  const seen: Array<{ when: string, body: Buffer }> = []
  const later: Buffer[] = []
  const get = await start(t, [async (ctx, next) => {
    const when = ctx.query.when
    const note = (label: string) => () => { if (Buffer.isBuffer(ctx.body)) seen.push({ when: label, body: ctx.body }) }
    if (when === 'finish-before') ctx.res.once('finish', note(when))
    if (when === 'close-before') ctx.res.once('close', note(when))
    await next()
    if (when === 'finish-after') ctx.res.once('finish', note(when))
    if (when === 'close-after') ctx.res.once('close', note(when))
    if (when === 'later') ctx.res.once('close', () => { setTimeout(() => { if (Buffer.isBuffer(ctx.body)) later.push(ctx.body) }, 50) })
  }])
  for (const [i, when] of ['finish-before', 'close-before', 'finish-after', 'close-after'].entries()) {
    const reply = await get(`a.bin?when=${when}`, `bytes=${i * 65536}-${i * 65536 + 65535}`)
    t.true(reply.body.equals(expected('a.bin', i * 65536, 65536)))
  }
  await settled()
  t.is(lentBuffers(65536), 0)
  t.deepEqual(seen.map(({ when }) => when), ['finish-before', 'close-before', 'finish-after', 'close-after'])
  for (const [i, { body }] of seen.entries()) t.true(body.equals(expected('a.bin', i * 65536, 65536)))
  const reply = await get('a.bin?when=later', 'bytes=0-65535')
  t.true(reply.body.equals(expected('a.bin', 0, 65536)))
  await new Promise((resolve) => { setTimeout(resolve, 100) })
  t.is(lentBuffers(65536), 1)
  t.is(later.length, 1)
  t.is(later[0]!.length, 0)
})

test.serial('a fresh app lends from its second range on: the first one\'s response was made before it counted reads', async (t) => {
  emptyPool()
  const get = await start(t, [], {}, undefined, false)
  for (const [i, start] of [0, 65536, 131072].entries()) {
    const reply = await get('a.bin', `bytes=${start}-${start + 65535}`)
    t.true(reply.body.equals(expected('a.bin', start, 65536)))
    await settled()
    t.is(lentBuffers(65536), i === 0 ? 0 : 1)
  }
})

test.serial('code that reads the body without ctx.body (Koa\'s _body, a spread or Object.assign of the response) is counted too: never taken back, its buffer intact', async (t) => {
  for (const take of [
    (response: object) => (response as { _body: unknown })._body,
    (response: object) => ({ ...response } as { _body?: unknown })._body,
    (response: object) => (Object.assign({}, response) as { _body?: unknown })._body
  ]) {
    emptyPool()
    const taken: unknown[] = []
    const get = await start(t, [async (ctx, next) => {
      await next()
      if (ctx.path === '/a.bin') taken.push(take(ctx.response))
    }])
    for (let i = 0; i < 6; i++) {
      const name = i % 2 === 0 ? 'a.bin' : 'b.bin'
      const reply = await get(name, `bytes=${i * 65536}-${i * 65536 + 65535}`)
      t.true(reply.body.equals(expected(name, i * 65536, 65536)))
    }
    await settled()
    t.is(taken.length, 3)
    for (const [i, body] of taken.entries()) t.true(Buffer.isBuffer(body) && body.equals(expected('a.bin', i * 2 * 65536, 65536)), String(take))
    // The b.bin ranges were lent, one piece of memory in turn.
    t.is(lentBuffers(65536), 1)
  }
})

test.serial('an app whose response prototype is sealed, or answers to _body already, serves ranges without lending', async (t) => {
  emptyPool()
  const sealed = new Koa()
  Object.seal(sealed.response)
  const fromSealed = await start(t, [], {}, undefined, true, sealed)
  const other = new Koa()
  let reads = 0
  Object.defineProperty(other.response, '_body', {
    get (this: { bodyHeld?: unknown }) { reads++; return this.bodyHeld },
    set (this: { bodyHeld?: unknown }, value: unknown) { this.bodyHeld = value },
    configurable: true
  })
  const fromOther = await start(t, [], {}, undefined, true, other)
  for (const get of [fromSealed, fromOther]) {
    for (const start of [0, 65536, 131072]) {
      const reply = await get('a.bin', `bytes=${start}-${start + 65535}`)
      t.is(reply.status, 206)
      t.true(reply.body.equals(expected('a.bin', start, 65536)))
    }
  }
  await settled()
  t.is(lentBuffers(65536), 0)
  t.true(reads > 0)
})

test.serial('a 206 body that a middleware reads (a cache) is never taken back: it stays its own bytes while other ranges are lent', async (t) => {
  emptyPool()
  const kept: Array<{ body: Buffer, name: string, start: number }> = []
  const cache = keeper(kept)
  // The cache sees /a.bin only; /b.bin is lent.
  const get = await start(t, [async (ctx, next) => { await (ctx.path === '/a.bin' ? cache(ctx, next) : next()) }])
  for (let i = 0; i < 40; i++) {
    const name = i % 2 === 0 ? 'a.bin' : 'b.bin'
    const start = (i * 65536) % (512 * KiB)
    const reply = await get(name, `bytes=${start}-${start + 65535}`)
    t.true(reply.body.equals(expected(name, start, 65536)))
  }
  await settled()
  t.is(kept.length, 20)
  for (const { body, name, start } of kept) t.true(body.equals(expected(name, start, 65536)), `kept ${name} ${start}`)
  // The b.bin responses went round one piece of memory.
  t.is(lentBuffers(65536), 1)
})

test.serial('a \'finish\' listener that reads the body before serve()\'s rules lending out; the app\'s other bodies are untouched by the counting', async (t) => {
  emptyPool()
  const logged: Buffer[] = []
  const get = await start(t, [async (ctx, next) => {
    if (ctx.path === '/json') {
      ctx.body = { ok: true }
      return
    }
    if (ctx.path === '/text') {
      ctx.body = 'plain'
      return
    }
    if (ctx.path === '/deleted') {
      ctx.body = 'gone'
      delete (ctx.response as unknown as { _body?: unknown })._body
      ctx.body = `after delete: ${String(ctx.response.body)}`
      return
    }
    ctx.res.once('finish', () => { if (Buffer.isBuffer(ctx.response.body)) logged.push(ctx.response.body) })
    await next()
  }])
  await threeRanges(t, get)
  t.is(lentBuffers(65536), 0)
  for (const [i, body] of logged.entries()) t.true(body.equals(expected('a.bin', i * 65536, 65536)))
  // The app's response prototype counts reads now; Koa's body setter still types and sizes bodies.
  const json = await get('json')
  t.is(json.headers['content-type'], 'application/json; charset=utf-8')
  t.is(json.body.toString(), '{"ok":true}')
  const text = await get('text')
  t.is(text.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(text.headers['content-length'], '5')
  t.is(text.body.toString(), 'plain')
  // Deleting Koa's _body clears the body, as before.
  t.is((await get('deleted')).body.toString(), 'after delete: undefined')
})

test.serial('the memory past a lent body is zeros: its .buffer shows no earlier response', async (t) => {
  emptyPool()
  const get = await start(t, [async (ctx, next) => {
    await next()
    if (ctx.path !== '/b.bin' || !Buffer.isBuffer(ctx.body)) return
    const body = ctx.body
    const tail = new Uint8Array(body.buffer, body.byteOffset + body.length)
    ctx.set('x-tail', `${body.buffer.byteLength} ${tail.length} ${tail.every((byte) => byte === 0)}`)
  }])
  for (const start of [0, 65536, 131072]) await get('a.bin', `bytes=${start}-${start + 65535}`)
  await settled()
  t.is(lentBuffers(65536), 1)
  const reply = await get('b.bin', 'bytes=1000-40999')
  t.true(reply.body.equals(expected('b.bin', 1000, 40000)))
  t.is(reply.headers['x-tail'], '65536 25536 true')
})

test.serial('ranges of 8 KiB up are lent in memory of the next power of two; shorter ones and whole files are new buffers', async (t) => {
  emptyPool()
  const get = await start(t, [])
  for (const [range, length] of [['bytes=100-20099', 20000], ['bytes=7-8198', 8192], ['bytes=1000-9999', 9000]] as const) {
    const reply = await get('a.bin', range)
    t.is(reply.status, 206)
    t.true(reply.body.equals(expected('a.bin', Number(range.slice(6, range.indexOf('-'))), length)))
  }
  await settled()
  t.is(lentBuffers(32768), 1)
  t.is(lentBuffers(8192), 1)
  t.is(lentBuffers(16384), 1)
  emptyPool()
  const small = await get('a.bin', 'bytes=0-8190')
  t.is(small.body.length, 8191)
  const whole = await get('small.bin')
  t.is(whole.status, 200)
  t.true(whole.body.equals(files['small.bin']))
  const multipart = await get('a.bin', 'bytes=0-9999,200000-219999')
  t.is(multipart.status, 206)
  t.regex(String(multipart.headers['content-type']), /^multipart\/byteranges/)
  // Above bufferSize: streamed (FileStream's own chunk pool).
  const streamed = await get('a.bin', 'bytes=0-65536')
  t.true(streamed.body.equals(expected('a.bin', 0, 65537)))
  await settled()
  for (const size of [8192, 16384, 32768, 65536, 131072]) t.is(lentBuffers(size), 0, `${size}`)
})

test.serial('concurrent ranges on lent memory: every response its own bytes, every body a middleware read its own for good', async (t) => {
  emptyPool()
  const kept: Array<{ body: Buffer, name: string, start: number }> = []
  const cache = keeper(kept)
  // One request in three passes a cache that reads its body; the others are lent.
  const get = await start(t, [async (ctx, next) => { await (ctx.query.cache === '1' ? cache(ctx, next) : next()) }])
  const sizes = [65536, 65536, 40000, 20000, 9000]
  for (let round = 0; round < 12; round++) {
    await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const name = (round + i) % 2 === 0 ? 'a.bin' : 'b.bin'
      const length = sizes[(round * 16 + i) % sizes.length]!
      const start = ((round * 7919 + i * 104729) % (512 * KiB - length))
      const reply = await get(`${name}${(round * 16 + i) % 3 === 0 ? '?cache=1' : ''}`, `bytes=${start}-${start + length - 1}`)
      t.is(reply.status, 206)
      t.true(reply.body.equals(expected(name, start, length)), `${name} ${start}+${length}`)
    }))
  }
  await settled()
  t.is(kept.length, 64)
  for (const { body, name, start } of kept) t.true(body.length > 0 && body.equals(expected(name.replace(/\?.*/, ''), start, body.length)), `kept ${name} ${start}`)
  t.true(lentBuffers(65536) > 0 && lentBuffers(65536) <= 16, `${lentBuffers(65536)} of 64 KiB`)
})

test.serial('not taken back when the app sends the body itself (ctx.respond = false)', async (t) => {
  emptyPool()
  const sent: Buffer[] = []
  const get = await start(t, [async (ctx, next) => {
    await next()
    // One read, as Koa's respond() makes.
    const body: unknown = ctx.body
    if (!Buffer.isBuffer(body)) return
    ctx.respond = false
    sent.push(body)
    ctx.res.writeHead(ctx.status, ctx.response.headers as Record<string, string>)
    ctx.res.end(body)
  }])
  for (const start of [0, 65536]) {
    const reply = await get('a.bin', `bytes=${start}-${start + 65535}`)
    t.is(reply.status, 206)
    t.true(reply.body.equals(expected('a.bin', start, 65536)))
  }
  await settled()
  t.is(lentBuffers(65536), 0)
  t.true(sent[0]!.equals(expected('a.bin', 0, 65536)))
})

test.serial('not taken back when a middleware sends a body of its own made from it', async (t) => {
  emptyPool()
  const kept: Buffer[] = []
  const get = await start(t, [async (ctx, next) => {
    await next()
    if (!Buffer.isBuffer(ctx.body)) return
    kept.push(ctx.body)
    ctx.body = Readable.from([ctx.body.subarray(0, 1000), ctx.body.subarray(1000)])
  }])
  const reply = await get('a.bin', 'bytes=0-65535')
  t.is(reply.status, 206)
  t.true(reply.body.equals(expected('a.bin', 0, 65536)))
  await settled()
  t.is(lentBuffers(65536), 0)
  await get('a.bin', 'bytes=65536-131071')
  await get('b.bin', 'bytes=0-65535')
  await settled()
  t.true(kept[0]!.equals(expected('a.bin', 0, 65536)))
})

test.serial('not taken back from a response whose end() is not Node\'s own (a tap keeping what it is given)', async (t) => {
  emptyPool()
  const tapped: Buffer[] = []
  const get = await start(t, [async (ctx, next) => {
    const end = ctx.res.end.bind(ctx.res)
    ctx.res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(chunk)) tapped.push(chunk)
      return (end as (...args: unknown[]) => unknown)(chunk, ...rest)
    }) as typeof ctx.res.end
    await next()
  }])
  await threeRanges(t, get)
  t.is(lentBuffers(65536), 0)
  t.is(tapped.length, 3)
  for (const [i, chunk] of tapped.entries()) t.true(chunk.equals(expected('a.bin', i * 65536, 65536)))
})

test.serial('not taken back while Node\'s response end() or socket _writeGeneric() is wrapped process-wide (an agent teeing bodies)', async (t) => {
  const { ServerResponse } = await import('node:http')
  const { Socket } = await import('node:net')
  const response = ServerResponse.prototype as unknown as Record<string, (...args: unknown[]) => unknown>
  const socket = Socket.prototype as unknown as Record<string, (...args: unknown[]) => unknown>
  for (const [target, name] of [[response, 'end'], [socket, '_writeGeneric']] as const) {
    emptyPool()
    const get = await start(t, [])
    const original = target[name]!
    const tapped: Buffer[] = []
    target[name] = function (this: unknown, ...args: unknown[]) {
      for (const arg of args) {
        if (Buffer.isBuffer(arg) && arg.length >= 8192) tapped.push(arg)
        // _writeGeneric(writev, data): data is the chunk list when writev
        if (Array.isArray(arg)) for (const item of arg as Array<{ chunk?: unknown }>) if (Buffer.isBuffer(item?.chunk) && item.chunk.length >= 8192) tapped.push(item.chunk)
      }
      return original.apply(this, args)
    }
    try {
      for (const start of [0, 65536, 131072]) {
        const reply = await get('a.bin', `bytes=${start}-${start + 65535}`)
        t.true(reply.body.equals(expected('a.bin', start, 65536)))
      }
      await settled()
      t.is(lentBuffers(65536), 0, name)
    } finally {
      target[name] = original
    }
    t.true(tapped.length >= 3, `${name}: ${tapped.length} tapped`)
    for (const [i, chunk] of tapped.slice(-3).entries()) t.true(chunk.equals(expected('a.bin', i * 65536, 65536)), name)
  }
})

test.serial('not taken back when the connection is gone before the body is written', async (t) => {
  emptyPool()
  const get = await start(t, [async (ctx, next) => {
    await next()
    ctx.req.socket.destroy()
  }])
  await t.throwsAsync(get('a.bin', 'bytes=0-65535'))
  await settled()
  t.is(lentBuffers(65536), 0)
})

test.serial('reuseBuffers: false: a new buffer per range, never taken back or detached', async (t) => {
  emptyPool()
  const late: Buffer[] = []
  const get = await start(t, [async (ctx, next) => {
    await next()
    ctx.res.once('close', () => { setTimeout(() => { if (Buffer.isBuffer(ctx.body)) late.push(ctx.body) }, 20) })
  }], { reuseBuffers: false })
  for (const start of [0, 65536, 131072, 196608]) {
    const reply = await get('b.bin', `bytes=${start}-${start + 65535}`)
    t.true(reply.body.equals(expected('b.bin', start, 65536)))
  }
  await settled()
  t.is(lentBuffers(65536), 0)
  t.is(late.length, 4)
  for (const [i, body] of late.entries()) t.true(body.equals(expected('b.bin', i * 65536, 65536)))
  t.throws(() => serve({ reuseBuffers: 'no' as never }), { instanceOf: TypeError, message: 'serve(): reuseBuffers must be a boolean' })
})

test.serial('a PathFile subclass with a read() of its own is read through it, into buffers of its own', async (t) => {
  emptyPool()
  const seen: ByteRange[] = []
  class Reversed extends PathFile {
    override async read (range?: ByteRange, options?: OpenOptions): Promise<Buffer> {
      if (range !== undefined) seen.push(range)
      return (await super.read(range, options)).reverse()
    }
  }
  const get = await start(t, [], {}, (name) => new Reversed(name, { root }), false)
  const reply = await get('a.bin', 'bytes=0-65535')
  t.is(reply.status, 206)
  t.true(reply.body.equals(Buffer.from(expected('a.bin', 0, 65536)).reverse()))
  t.deepEqual(seen, [{ start: 0, end: 65535 }])
  await settled()
  t.is(lentBuffers(65536), 0)
})

test.serial('not taken back over HTTP/2 (Koa on the compatibility API)', async (t) => {
  emptyPool()
  const app = new Koa()
  app.use(serve())
  app.use((ctx) => { ctx.body = new PathFile(ctx.path.slice(1), { root }) })
  const server = createHttp2Server(app.callback())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = http2Connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(() => { client.close(); server.close() })
  for (const start of [0, 65536]) {
    const request = client.request({ ':path': '/a.bin', range: `bytes=${start}-${start + 65535}` })
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    const [headers] = await once(request, 'response') as [Record<string, unknown>]
    await once(request, 'end')
    t.is(headers[':status'], 206)
    t.true(Buffer.concat(chunks).equals(expected('a.bin', start, 65536)))
  }
  await settled()
  t.is(lentBuffers(65536), 0)
})

test.serial('borrow() and giveBack(): memory given back is detached from every view at once, and lent once', (t) => {
  emptyPool()
  const first = borrow(65536)
  t.is(first.length, 65536)
  t.is(first.buffer.byteLength, 65536)
  first.fill(1)
  const slice = first.subarray(10, 20)
  giveBack(first)
  t.is(lentBuffers(65536), 1)
  t.is(first.length, 0)
  t.is(slice.length, 0)
  // Given back twice (by a bug): the second time it is detached, and ignored.
  giveBack(first)
  t.is(lentBuffers(65536), 1)
  const second = borrow(50000)
  t.is(lentBuffers(65536), 0)
  t.is(second.length, 50000)
  t.is(second.buffer.byteLength, 65536)
  // The memory moved without a copy: what was written is still there, and past the body only zeros.
  t.is(second[0], 1)
  t.true(new Uint8Array(second.buffer, 50000).every((byte) => byte === 0))
  // Only the whole memory of a loan is taken back.
  giveBack(second.subarray(1))
  t.is(lentBuffers(65536), 0)
  const third = borrow(65536)
  t.not(third.buffer, second.buffer)
  // Shorter than 8 KiB, or longer than 8 MiB: new memory, never lent.
  const small = borrow(8191)
  giveBack(small)
  t.is(lentBuffers(8192), 0)
  t.is(small.length, 8191)
  t.is(borrow(8 * 1024 * 1024 + 1).length, 8 * 1024 * 1024 + 1)
  emptyPool()
})
