// FileStream reuses its chunk buffers only where nobody can still hold one: piped alone into a plain
// HTTP/1 response whose writableLength says every byte has gone to the kernel. These tests download
// over real sockets (slow clients, so that writes back up) and check the exact bytes, and count the
// chunk-size buffers allocated: few where reuse is safe, one per chunk wherever a consumer may keep
// chunks (a tee, a transform, a second 'data' listener, a response class or write() of its own).
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { openSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, realpath, rm } from 'node:fs/promises'
import { createServer, get as httpGet, ServerResponse } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { createServer as createTlsServer, get as httpsGet } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Transform } from 'node:stream'
import Koa from 'koa'
import { FileStream, pooledBuffers, setTrimInterval, trimPool } from '../source/file-stream.ts'
import { PathFile } from '../source/path-file.ts'
import { serve } from '../source/serve.ts'

const KiB = 1024
// Not a multiple of any chunk size below: the last chunk is short.
const bytes = randomBytes(6 * 1024 * KiB + 777)
const tls = {
  key: readFileSync(new URL('./fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('./fixtures/tls/cert.pem', import.meta.url))
}

let temp = ''
let path = ''
test.before(async () => {
  // The pool trims itself only when a test says so (test/chunk-pool-trim.test.ts covers the timer):
  // a trim between two downloads would change what the second one allocates.
  setTrimInterval(Infinity)
  temp = await realpath(await mkdtemp(join(tmpdir(), 'kd-chunk-reuse-')))
  path = join(temp, 'big.bin')
  writeFileSync(path, bytes)
})
test.after.always(async () => {
  if (temp !== '') await rm(temp, { recursive: true, force: true })
})

/**
 * Counts the buffers of exactly `size` bytes that FileStream allocates from here on. Every test
 * uses a chunk size of its own, so the concurrent tests of this file (one thread) do not count each
 * other's.
 */
const counted = new Map<number, number>()
const allocUnsafe = Buffer.allocUnsafe.bind(Buffer)
Buffer.allocUnsafe = (size: number) => {
  const seen = counted.get(size)
  if (seen !== undefined && new Error().stack?.includes('FileStream._read') === true) counted.set(size, seen + 1)
  return allocUnsafe(size)
}
function countAllocations (size: number): () => number {
  counted.set(size, 0)
  return () => counted.get(size) ?? 0
}

/** A server of `koaApp(chunkSize)` for this test: its URL, and its chunk allocations counted from now on. */
async function countedApp (t: ExecutionContext, chunkSize: number): Promise<{ url: string, allocations: () => number }> {
  const allocations = countAllocations(chunkSize)
  const port = await listening(t, createServer(koaApp(chunkSize).callback()))
  return { url: `http://127.0.0.1:${port}/`, allocations }
}

/** Full-size chunks in `length` bytes: what a stream that never reuses allocates. */
const fullChunks = (length: number, chunkSize: number): number => Math.floor(length / chunkSize)

async function listening (t: ExecutionContext, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return (server.address() as AddressInfo).port
}

interface Received { status: number, headers: IncomingMessage['headers'], body: Buffer }

/**
 * GET with a client that reads nothing for 200 ms (the kernel's socket buffers fill, a server write
 * stays pending: a chunk in flight for that long) and then slowly (what Node buffered, every 2 ms):
 * the case where a buffer reused too early would go out with other bytes in it.
 */
async function slowGet (url: string, headers: Record<string, string> = {}): Promise<Received> {
  const get = url.startsWith('https:') ? httpsGet : httpGet
  return await new Promise((resolve, reject) => {
    const request = get(url, { headers, ca: tls.cert, agent: false }, (res) => {
      res.pause()
      const chunks: Buffer[] = []
      let timer: NodeJS.Timeout | undefined
      const stall = setTimeout(() => {
        timer = setInterval(() => {
          let chunk: Buffer | null
          while ((chunk = res.read() as Buffer | null) !== null) chunks.push(chunk)
        }, 2)
      }, 200)
      res.once('end', () => {
        clearTimeout(stall)
        clearInterval(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
      })
      res.once('error', (error) => { clearTimeout(stall); clearInterval(timer); reject(error) })
    })
    request.once('error', reject)
  })
}

/**
 * GET read as fast as the client can: the whole body, over a connection of its own (node:http, no
 * keep-alive pool: one of this file's fetch() downloads most likely failed once under the full
 * suite, and its error said no more than "fetch failed"). A body cut short is an error, not a
 * shorter buffer.
 */
async function fastGet (url: string): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('end', () => {
        if (res.complete) resolve(Buffer.concat(chunks))
        else reject(new Error(`the response ended after ${Buffer.concat(chunks).length} bytes, before its end`))
      })
      res.once('error', reject)
    }).once('error', reject)
  })
}

/**
 * GET with a client that takes 16 KiB every 2 ms from start to end: the socket's buffers stay full,
 * so that the server's last writes are still queued in the response when its stream has ended.
 */
async function throttledGet (url: string, headers: Record<string, string> = {}): Promise<Received> {
  return await new Promise((resolve, reject) => {
    const request = httpGet(url, { headers, agent: false }, (res) => {
      res.pause()
      const chunks: Buffer[] = []
      const timer = setInterval(() => {
        const chunk = (res.read(16 * KiB) ?? res.read()) as Buffer | null
        if (chunk !== null) chunks.push(chunk)
      }, 2)
      res.once('end', () => {
        clearInterval(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
      })
      res.once('error', (error) => { clearInterval(timer); reject(error) })
    })
    request.once('error', reject)
  })
}

/** A Koa app serving the big file with `chunkSize`, `wrap` applied to the body serve() sets. */
function koaApp (chunkSize: number, wrap?: (ctx: Koa.Context) => void): Koa {
  const app = new Koa()
  app.silent = true
  if (wrap !== undefined) app.use(async (ctx, next) => { await next(); wrap(ctx) })
  app.use(serve({ chunkSize, bufferSize: 0 }))
  app.use((ctx) => { ctx.body = new PathFile('big.bin', { root: temp }) })
  return app
}

test('chunk reuse: a slow client of plain Koa gets the exact file, and a handful of chunk buffers did it all', async t => {
  const chunkSize = 64 * KiB + 1 * KiB
  const { url, allocations } = await countedApp(t, chunkSize)
  const response = await slowGet(url)
  t.is(response.status, 200)
  t.is(response.headers['content-length'], String(bytes.length))
  t.true(response.body.equals(bytes))
  t.true(fullChunks(bytes.length, chunkSize) > 90)
  t.true(allocations() <= 4, `${allocations()} buffers of ${chunkSize} bytes`)
})

test('chunk reuse: eight slow and fast clients at once, and a long single range, all get their exact bytes', async t => {
  const chunkSize = 64 * KiB + 2 * KiB
  const { url, allocations } = await countedApp(t, chunkSize)
  const results = await Promise.all([slowGet(url), fastGet(url), slowGet(url), fastGet(url), slowGet(url), slowGet(url), fastGet(url), slowGet(url, { Range: 'bytes=1000-5000000' })])
  for (const result of results.slice(0, -1)) t.true((Buffer.isBuffer(result) ? result : result.body).equals(bytes))
  const range = results.at(-1) as Received
  t.is(range.status, 206)
  t.is(range.headers['content-range'], `bytes 1000-5000000/${bytes.length}`)
  t.true(range.body.equals(bytes.subarray(1000, 5000001)))
  // Never more than a few per download (8 downloads, ~95 chunks each).
  t.true(allocations() <= 8 * 4, `${allocations()} buffers of ${chunkSize} bytes`)
})

test('chunk reuse: over TLS too, with a slow client (the exact bytes; buffers reused)', async t => {
  const chunkSize = 64 * KiB + 3 * KiB
  const allocations = countAllocations(chunkSize)
  const port = await listening(t, createTlsServer(tls, koaApp(chunkSize).callback()))
  const response = await slowGet(`https://127.0.0.1:${port}/`)
  t.is(response.status, 200)
  t.true(response.body.equals(bytes))
  t.true(allocations() <= 4, `${allocations()} buffers of ${chunkSize} bytes`)
})

test('chunk reuse: a body piped through a tee (PassThrough) by a middleware keeps every chunk its own', async t => {
  const chunkSize = 64 * KiB + 4 * KiB
  const allocations = countAllocations(chunkSize)
  const app = koaApp(chunkSize, (ctx) => { ctx.body = (ctx.body as FileStream).pipe(new PassThrough()) })
  const port = await listening(t, createServer(app.callback()))
  const response = await slowGet(`http://127.0.0.1:${port}/`)
  t.is(response.status, 200)
  t.true(response.body.equals(bytes))
  t.is(allocations(), fullChunks(bytes.length, chunkSize))
})

test('chunk reuse: a transform that keeps the chunks it is given finds them intact after the download', async t => {
  const chunkSize = 64 * KiB + 5 * KiB
  const allocations = countAllocations(chunkSize)
  const kept: Buffer[] = []
  const app = koaApp(chunkSize, (ctx) => {
    ctx.body = (ctx.body as FileStream).pipe(new Transform({ transform (chunk: Buffer, _encoding, callback) { kept.push(chunk); callback(null, chunk) } }))
  })
  const port = await listening(t, createServer(app.callback()))
  const response = await slowGet(`http://127.0.0.1:${port}/`)
  t.true(response.body.equals(bytes))
  t.true(Buffer.concat(kept).equals(bytes))
  t.is(allocations(), fullChunks(bytes.length, chunkSize))
})

/** node:http serving the file through a FileStream piped into `res`, with `also` applied to the stream. */
function nodeServer (chunkSize: number, also: (stream: FileStream, res: ServerResponse) => void, options: { ServerResponse?: typeof ServerResponse } = {}): Server {
  return createServer(options, (req, res) => {
    const stream = new FileStream(openSync(path, 'r'), 0, bytes.length - 1, chunkSize)
    res.setHeader('Content-Length', bytes.length)
    also(stream, res)
    stream.pipe(res)
  })
}

for (const [how, extraKiB, listen] of [
  ['a second \'data\' listener', 6, (stream: FileStream, kept: Buffer[]) => { stream.on('data', (chunk: Buffer) => kept.push(chunk)) }],
  ['a prepended \'data\' listener', 7, (stream: FileStream, kept: Buffer[]) => { stream.prependListener('data', (chunk: Buffer) => kept.push(chunk)) }],
  ['a \'data\' listener added once', 8, (stream: FileStream, kept: Buffer[]) => { stream.once('data', (chunk: Buffer) => kept.push(chunk)) }]
] as const) {
  test(`chunk reuse: ${how} beside the response pipe gets chunks that stay intact`, async t => {
    const chunkSize = 64 * KiB + extraKiB * KiB
    const allocations = countAllocations(chunkSize)
    const kept: Buffer[] = []
    // The listener comes before the pipe (it starts the flow; the pipe joins in the same turn).
    const port = await listening(t, nodeServer(chunkSize, (stream) => { listen(stream, kept) }))
    const response = await slowGet(`http://127.0.0.1:${port}/`)
    t.true(response.body.equals(bytes))
    if (how.includes('once')) {
      t.is(kept.length, 1)
      t.true(kept[0]!.equals(bytes.subarray(0, chunkSize)))
    } else {
      t.true(Buffer.concat(kept).equals(bytes))
    }
    t.is(allocations(), fullChunks(bytes.length, chunkSize))
  })
}

test('chunk reuse: piped into a plain node:http response, the same reuse as under Koa', async t => {
  const chunkSize = 64 * KiB + 14 * KiB
  const allocations = countAllocations(chunkSize)
  const port = await listening(t, nodeServer(chunkSize, () => {}))
  const response = await slowGet(`http://127.0.0.1:${port}/`)
  t.true(response.body.equals(bytes))
  t.true(allocations() <= 4, `${allocations()} buffers of ${chunkSize} bytes`)
})

test('chunk reuse: a response class of its own, or a write() replaced on the response, gets fresh buffers', async t => {
  const chunkSize = 64 * KiB + 15 * KiB
  const allocations = countAllocations(chunkSize)
  class OwnResponse extends ServerResponse {}
  const subclassed = await listening(t, nodeServer(chunkSize, () => {}, { ServerResponse: OwnResponse as typeof ServerResponse }))
  t.true((await slowGet(`http://127.0.0.1:${subclassed}/`)).body.equals(bytes))
  t.is(allocations(), fullChunks(bytes.length, chunkSize))

  const written: Buffer[] = []
  const patched = await listening(t, nodeServer(chunkSize, (_stream, res) => {
    const write = res.write.bind(res) as (chunk: Buffer) => boolean
    res.write = ((chunk: Buffer) => { written.push(chunk); return write(chunk) }) as typeof res.write
  }))
  t.true((await slowGet(`http://127.0.0.1:${patched}/`)).body.equals(bytes))
  t.true(Buffer.concat(written).equals(bytes))
  t.is(allocations(), 2 * fullChunks(bytes.length, chunkSize))
})

// The first chunk, pushed before the pipe, goes to the response like the rest, and is reused
// like them, unless someone has read it: a fast client (the buffers come back at once) and a slow one.
for (const [client, extraKiB] of [['slow', 16], ['fast', 22]] as const) {
  test(`chunk reuse: a chunk read by hand before the pipe stays intact; the chunks after it are reused (${client} client)`, async t => {
    const chunkSize = 64 * KiB + extraKiB * KiB
    const allocations = countAllocations(chunkSize)
    const firsts: Buffer[] = []
    const server = createServer((req, res) => {
      const stream = new FileStream(openSync(path, 'r'), 0, bytes.length - 1, chunkSize)
      stream.once('readable', () => {
        const first = stream.read(chunkSize) as Buffer
        firsts.push(first)
        res.setHeader('Content-Length', bytes.length - first.length)
        stream.pipe(res)
      })
    })
    const port = await listening(t, server)
    const url = `http://127.0.0.1:${port}/`
    const get = async (): Promise<Buffer> => client === 'slow' ? (await slowGet(url)).body : await fastGet(url)
    // Three at once, three times: more chances for a buffer wrongly reused to be written over.
    for (let round = 0; round < 3; round++) {
      for (const body of await Promise.all([get(), get(), get()])) t.true(body.equals(bytes.subarray(chunkSize)))
    }
    t.is(firsts.length, 9)
    for (const first of firsts) t.true(first.equals(bytes.subarray(0, chunkSize)))
    t.true(allocations() <= 9 * 5, `${allocations()} buffers of ${chunkSize} bytes`)
  })
}

// A 'readable' listener that keeps the first ten chunks it reads and then leaves the pipe alone:
// joining after the pipe, or there before it and reading after it.
for (const [when, extraKiB] of [['joins after the pipe', 17], ['is there before the pipe and reads after it', 18]] as const) {
  test(`chunk reuse: a 'readable' listener that ${when}, keeps what it reads and leaves, gets intact chunks`, async t => {
    const chunkSize = 64 * KiB + extraKiB * KiB
    const allocations = countAllocations(chunkSize)
    const kept: Buffer[] = []
    const port = await listening(t, createServer((req, res) => {
      const stream = new FileStream(openSync(path, 'r'), 0, bytes.length - 1, chunkSize)
      res.setHeader('Content-Length', bytes.length)
      const onReadable = (): void => {
        let chunk: Buffer | null
        while (kept.length < 10 && (chunk = stream.read() as Buffer | null) !== null) kept.push(chunk)
        if (kept.length === 10) stream.off('readable', onReadable)
      }
      if (when === 'joins after the pipe') stream.pipe(res)
      stream.on('readable', onReadable)
      if (when !== 'joins after the pipe') stream.pipe(res)
    }))
    const response = await slowGet(`http://127.0.0.1:${port}/`)
    t.true(response.body.equals(bytes))
    const seen = Buffer.concat(kept)
    t.is(kept.length, 10)
    t.true(seen.equals(bytes.subarray(0, seen.length)))
    t.is(allocations(), fullChunks(bytes.length, chunkSize))
  })
}

// Across streams: a finished download's free buffers (its spares at once, the chunks it lent once
// its response has finished) go to a pool the next downloads of that chunk size read into.

test('chunk reuse: the next downloads start from the buffers a finished one freed', async t => {
  const chunkSize = 64 * KiB + 19 * KiB
  const { url, allocations } = await countedApp(t, chunkSize)
  t.true((await fastGet(url)).equals(bytes))
  const first = allocations()
  t.true(first >= 2, `${first} buffers of ${chunkSize} bytes`)
  for (let i = 0; i < 4; i++) t.true((await fastGet(url)).equals(bytes))
  // Four more downloads of ~75 chunks each, one after the other, on the first one's buffers: a
  // pool that gave nothing back would need `first` for each, one that never got the first chunk
  // (pushed before the pipe) one for each.
  t.true(allocations() - first <= 2, `${first} buffers, then ${allocations() - first} for four more downloads`)
})

test('chunk reuse: the pool keeps the buffers of a burst of concurrent downloads for the next burst', async t => {
  // 1 MiB chunks, eight downloads at once: more chunks in flight than a pool of a few MiB holds
  // (with 4 MiB, three: the others went to the GC, and the next burst allocated them again).
  const chunkSize = 1024 * KiB + 23 * KiB
  const { url, allocations } = await countedApp(t, chunkSize)
  const burst = async (): Promise<void> => {
    const bodies = await Promise.all(Array.from({ length: 8 }, async () => await fastGet(url)))
    for (const body of bodies) t.true(body.equals(bytes))
  }
  await burst()
  const first = allocations()
  t.true(first > 8, `${first} buffers of ${chunkSize} bytes for the first burst`)
  t.true(pooledBuffers(chunkSize) > 3, `${pooledBuffers(chunkSize)} buffers kept`)
  await burst()
  await burst()
  t.true(allocations() - first <= 4, `${first} buffers, then ${allocations() - first} for two more bursts`)
})

test('chunk reuse: the last chunks still queued in the response when the stream ends reach the pool only once written', async t => {
  // A response that takes every chunk at once (a high-water mark above the file) and a client that
  // reads nothing until the stream has ended: most of the file, its last full chunks included,
  // still waits in the response then (more than the kernel's socket buffers hold). Streams of
  // another file started right then read into whatever the pool holds: a chunk given to it before
  // the response has written it would reach the client with their bytes in it.
  const chunkSize = 1024 * KiB + 27 * KiB
  const file = randomBytes(16 * chunkSize)
  const other = randomBytes(4 * chunkSize)
  writeFileSync(join(temp, 'queued.bin'), file)
  writeFileSync(join(temp, 'queued-other.bin'), other)
  let pending = -1
  let readers: Promise<Buffer[]> | undefined
  const { promise: ended, resolve: end } = Promise.withResolvers<void>()
  const server = createServer({ highWaterMark: 64 * 1024 * KiB }, (req, res) => {
    const stream = new FileStream(openSync(join(temp, 'queued.bin'), 'r'), 0, file.length - 1, chunkSize)
    res.setHeader('Content-Length', file.length)
    stream.once('close', () => {
      pending = res.writableLength
      readers = Promise.all(Array.from({ length: 4 }, async () => await readAll(new FileStream(openSync(join(temp, 'queued-other.bin'), 'r'), 0, other.length - 1, chunkSize))))
      end()
    })
    stream.pipe(res)
  })
  const port = await listening(t, server)
  const body = await new Promise<Buffer>((resolve, reject) => {
    httpGet(`http://127.0.0.1:${port}/`, { agent: false }, (res) => {
      res.pause()
      ended.then(async () => await readers).then(() => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.once('end', () => { resolve(Buffer.concat(chunks)) })
        res.resume()
      }, reject)
    }).once('error', reject)
  })
  t.true(pending > 4 * chunkSize, `${pending} bytes left in the response when the stream closed`)
  t.true(body.equals(file))
  for (const read of await readers!) t.true(read.equals(other))
})

/** Every byte of a stream, read through 'readable' (which, before any pipe, leaves chunk reuse on). */
async function readAll (stream: FileStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  stream.on('readable', () => {
    let chunk: Buffer | null
    while ((chunk = stream.read() as Buffer | null) !== null) chunks.push(chunk)
  })
  await once(stream, 'end')
  return Buffer.concat(chunks)
}

test('chunk reuse: the pool gives back the buffers no download took since its last trim, and keeps those in use', async t => {
  const chunkSize = 64 * KiB + 29 * KiB
  const { url, allocations } = await countedApp(t, chunkSize)
  const bodies = await Promise.all(Array.from({ length: 4 }, async () => await fastGet(url)))
  for (const body of bodies) t.true(body.equals(bytes))
  const kept = pooledBuffers(chunkSize)
  t.true(kept >= 4, `${kept} buffers kept after four downloads at once`)
  // A first trim only starts the count: every buffer came into the pool since.
  trimPool(chunkSize)
  t.is(pooledBuffers(chunkSize), kept)
  // One download in this interval: the buffers it took (and gave back) stay, the rest go.
  t.true((await fastGet(url)).equals(bytes))
  const afterOne = allocations()
  trimPool(chunkSize)
  const inUse = pooledBuffers(chunkSize)
  t.true(inUse >= 1 && inUse < kept, `${inUse} of ${kept} buffers kept after one download`)
  t.true((await fastGet(url)).equals(bytes))
  t.is(allocations(), afterOne, 'the next download ran on the buffers kept')
  // Two intervals with no download: nothing left, and the next download allocates again.
  trimPool(chunkSize)
  trimPool(chunkSize)
  t.is(pooledBuffers(chunkSize), 0)
  t.true((await fastGet(url)).equals(bytes))
  t.true(allocations() > afterOne)
})

test('chunk reuse: slow and fast clients of two files, in waves, each get their own file\'s exact bytes from pooled buffers', async t => {
  const chunkSize = 64 * KiB + 20 * KiB
  const other = randomBytes(3 * 1024 * KiB + 555)
  writeFileSync(join(temp, 'other.bin'), other)
  const allocations = countAllocations(chunkSize)
  const app = new Koa()
  app.use(serve({ chunkSize, bufferSize: 0 }))
  app.use((ctx) => { ctx.body = new PathFile(ctx.path === '/other' ? 'other.bin' : 'big.bin', { root: temp }) })
  const port = await listening(t, createServer(app.callback()))
  const big = `http://127.0.0.1:${port}/big`
  const small = `http://127.0.0.1:${port}/other`
  const fast = fastGet
  let downloads = 0
  for (let wave = 0; wave < 3; wave++) {
    const [a, b, c, d, e, f] = await Promise.all([slowGet(big), fast(small), slowGet(small), fast(big), fast(small), slowGet(big, { Range: 'bytes=70000-' })])
    downloads += 6
    t.true(a.body.equals(bytes), `wave ${wave}: slow big`)
    t.true(b.equals(other), `wave ${wave}: fast other`)
    t.true(c.body.equals(other), `wave ${wave}: slow other`)
    t.true(d.equals(bytes), `wave ${wave}: fast big`)
    t.true(e.equals(other), `wave ${wave}: fast other`)
    t.is(f.status, 206)
    t.true(f.body.equals(bytes.subarray(70000)), `wave ${wave}: slow range of big`)
  }
  // Far fewer than one per chunk (each download has 38–76 full chunks).
  t.true(allocations() <= downloads * 4, `${allocations()} buffers of ${chunkSize} bytes for ${downloads} downloads`)
})

test('chunk reuse: throttled clients keep their bytes, up to the last chunk, while downloads of another file run beside them on pooled buffers', async t => {
  // Chunks below the response's highWaterMark (16 KiB): its write() says go on while it still
  // holds some, so the stream can end with its last chunks not yet written.
  const chunkSize = 2 * KiB + 21
  const app = new Koa()
  app.use(serve({ chunkSize, bufferSize: 0 }))
  app.use((ctx) => { ctx.body = new PathFile(ctx.path === '/other' ? 'other-2.bin' : 'big.bin', { root: temp }) })
  const other = randomBytes(bytes.length)
  writeFileSync(join(temp, 'other-2.bin'), other)
  const port = await listening(t, createServer(app.callback()))
  const fast = fastGet
  // The fast downloads of another file read into whatever buffers the pool gives them, while the
  // throttled ones run and as they end.
  const slow = [throttledGet(`http://127.0.0.1:${port}/big`), throttledGet(`http://127.0.0.1:${port}/big`, { Range: 'bytes=1000-' })]
  let done = false
  const all = Promise.all(slow).finally(() => { done = true })
  let fastOnes = 0
  while (!done) {
    t.true((await fast(`http://127.0.0.1:${port}/other`)).equals(other))
    fastOnes++
  }
  const [whole, tail] = await all as [Received, Received]
  t.true(whole.body.equals(bytes))
  t.is(tail.status, 206)
  t.true(tail.body.equals(bytes.subarray(1000)))
  t.true(fastOnes >= 1, `${fastOnes} fast downloads`)
})

// Chunks someone kept must never reach the pool, where the next download of that chunk size would
// read another file's bytes into them: each case keeps chunks, then more downloads run on the same
// chunk size, then the kept chunks are compared.

test('chunk reuse: a \'data\' listener added by a \'pipe\' listener on the response (a body logger) keeps intact chunks after more downloads', async t => {
  const chunkSize = 64 * KiB + 23 * KiB
  const other = randomBytes(bytes.length)
  writeFileSync(join(temp, 'other-3.bin'), other)
  const allocations = countAllocations(chunkSize)
  const kept: Buffer[] = []
  let logged = 0
  const port = await listening(t, createServer((req, res) => {
    const first = logged++ === 0
    const stream = new FileStream(openSync(first ? path : join(temp, 'other-3.bin'), 'r'), 0, bytes.length - 1, chunkSize)
    res.setHeader('Content-Length', bytes.length)
    if (first) res.once('pipe', (source: FileStream) => { source.on('data', (chunk: Buffer) => { kept.push(chunk) }) })
    stream.pipe(res)
  }))
  const url = `http://127.0.0.1:${port}/`
  const fast = async (): Promise<Buffer> => await fastGet(url)
  t.true((await fast()).equals(bytes))
  t.is(allocations(), fullChunks(bytes.length, chunkSize))
  // Downloads of another file on the same chunk size: they would read into any kept chunk pooled.
  for (let i = 0; i < 3; i++) t.true((await fast()).equals(other))
  t.true(Buffer.concat(kept).equals(bytes))
})

// A write() replaced once the pipe is made (from a 'pipe' listener on the response: a body
// logger, a throttle), where the check made before the pipe cannot see it.
for (const kind of ['keeps what it is given', 'writes each chunk later'] as const) {
  test(`chunk reuse: a write() replaced by a 'pipe' listener that ${kind} gets intact chunks, and the client the exact file, while downloads of another file run on pooled buffers`, async t => {
    const chunkSize = 64 * KiB + (kind === 'keeps what it is given' ? 25 : 26) * KiB
    const other = randomBytes(bytes.length)
    const otherName = `other-write-${chunkSize}.bin`
    writeFileSync(join(temp, otherName), other)
    const allocations = countAllocations(chunkSize)
    const kept: Buffer[] = []
    const port = await listening(t, createServer((req, res) => {
      const replaced = req.url === '/replaced'
      const stream = new FileStream(openSync(replaced ? path : join(temp, otherName), 'r'), 0, bytes.length - 1, chunkSize)
      res.setHeader('Content-Length', bytes.length)
      if (replaced) {
        res.once('pipe', () => {
          const write = res.write.bind(res) as (chunk: Buffer) => boolean
          res.write = ((chunk: Buffer) => {
            kept.push(chunk)
            if (kind === 'keeps what it is given') return write(chunk)
            setTimeout(() => { if (!res.destroyed) write(chunk) }, 5)
            return true
          }) as typeof res.write
          if (kind === 'writes each chunk later') {
            const end = res.end.bind(res) as () => typeof res
            res.end = (() => { setTimeout(() => { end() }, 10); return res }) as typeof res.end
          }
        })
      }
      stream.pipe(res)
    }))
    const url = `http://127.0.0.1:${port}`
    let done = false
    const replaced = fastGet(`${url}/replaced`).finally(() => { done = true })
    let others = 0
    while (!done || others < 3) {
      t.true((await fastGet(`${url}/other`)).equals(other))
      others++
    }
    t.true((await replaced).equals(bytes))
    t.true(Buffer.concat(kept).equals(bytes))
    // Every chunk of the replaced download was its own (the others may have reused theirs).
    t.true(allocations() >= fullChunks(bytes.length, chunkSize), `${allocations()} buffers of ${chunkSize} bytes`)
  })
}

test('chunk reuse: a chunk read before the pipe and put back with unshift(), kept by the reader, stays intact after more downloads', async t => {
  const chunkSize = 64 * KiB + 24 * KiB
  const other = randomBytes(bytes.length)
  writeFileSync(join(temp, 'other-4.bin'), other)
  const peeked: Buffer[] = []
  const port = await listening(t, createServer((req, res) => {
    const peek = req.url === '/peek'
    const stream = new FileStream(openSync(peek ? path : join(temp, 'other-4.bin'), 'r'), 0, bytes.length - 1, chunkSize)
    res.setHeader('Content-Length', bytes.length)
    stream.once('readable', () => {
      if (peek) {
        const first = stream.read() as Buffer
        peeked.push(first)
        stream.unshift(first)
      }
      stream.pipe(res)
    })
  }))
  const fast = async (path: string): Promise<Buffer> => await fastGet(`http://127.0.0.1:${port}${path}`)
  for (let i = 0; i < 3; i++) {
    t.true((await fast('/peek')).equals(bytes))
    t.true((await fast('/other')).equals(other))
  }
  t.is(peeked.length, 3)
  for (const first of peeked) t.true(first.equals(bytes.subarray(0, first.length)))
})
