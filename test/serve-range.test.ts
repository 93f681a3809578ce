import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import Koa from 'koa'
import request from 'supertest'
import { download } from '../source/download.ts'
import { downloads } from '../source/downloads.ts'
import { multipartStream, planMultipart } from '../source/multipart.ts'
import { serve } from '../source/serve.ts'
import { PathFile } from '../source/path-file.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import type { DownloadFile } from '../source/types.ts'
import { rawRequest } from './helpers/file-contract.ts'
import { binaryParser, downloadApp, fixtureRoot } from './helpers/koa.ts'

const digits = readFileSync(`${fixtureRoot}/digits.txt`) // 1000 bytes: "0123456789" × 100
const binary = readFileSync(`${fixtureRoot}/binary.bin`) // 200 000 bytes, above the buffer threshold
const app = downloadApp((ctx) => {
  ctx.body = download(new PathFile(ctx.path.slice(1), { root: fixtureRoot }))
})
const server = app.callback()

/** An app serving `file`, listening on loopback until the test ends: its port, and the errors it reported. */
async function listening (t: ExecutionContext, file: DownloadFile): Promise<{ port: number, errors: Error[] }> {
  const errors: Error[] = []
  const koa = downloadApp((ctx) => { ctx.body = file })
  koa.on('error', (error: Error) => { errors.push(error) })
  const listener = createServer(koa.callback()).listen(0, '127.0.0.1')
  t.teardown(() => { listener.close() })
  await once(listener, 'listening')
  return { port: (listener.address() as AddressInfo).port, errors }
}

function get (path: string, headers: Record<string, string> = {}) {
  let req = request(server).get(path).buffer(true).parse(binaryParser)
  for (const [name, value] of Object.entries(headers)) req = req.set(name, value)
  return req
}

test('range: one range → 206 with Content-Range, Content-Length and exactly those bytes', async t => {
  const res = await get('/digits.txt', { Range: 'bytes=10-19' })
  t.is(res.status, 206)
  t.is(res.headers['content-range'], 'bytes 10-19/1000')
  t.is(res.headers['content-length'], '10')
  t.is(res.headers['accept-ranges'], 'bytes')
  t.deepEqual(res.body, digits.subarray(10, 20))
})

test('range: a 206 carries every header the 200 would (type, disposition, validators)', async t => {
  const full = await get('/digits.txt')
  const part = await get('/digits.txt', { Range: 'bytes=0-0' })
  t.is(part.status, 206)
  for (const name of ['content-type', 'content-disposition', 'etag', 'last-modified', 'accept-ranges']) {
    t.is(part.headers[name], full.headers[name], name)
  }
})

test('range: open-ended first- reaches the end; last ≥ size clamps to size − 1', async t => {
  const open = await get('/digits.txt', { Range: 'bytes=990-' })
  t.is(open.status, 206)
  t.is(open.headers['content-range'], 'bytes 990-999/1000')
  t.deepEqual(open.body, digits.subarray(990))
  const clamped = await get('/digits.txt', { Range: 'bytes=995-5000' })
  t.is(clamped.headers['content-range'], 'bytes 995-999/1000')
  t.deepEqual(clamped.body, digits.subarray(995))
})

test('range: suffix -N gives the last N bytes; N ≥ size gives the whole file as a 206 (not 416 as range-parser does)', async t => {
  const tail = await get('/digits.txt', { Range: 'bytes=-5' })
  t.is(tail.status, 206)
  t.is(tail.headers['content-range'], 'bytes 995-999/1000')
  t.deepEqual(tail.body, digits.subarray(995))
  const whole = await get('/digits.txt', { Range: 'bytes=-5000' })
  t.is(whole.status, 206)
  t.is(whole.headers['content-range'], 'bytes 0-999/1000')
  t.deepEqual(whole.body, digits)
})

test('range: nothing satisfiable → 416 with Content-Range bytes */size, no file headers, exact Content-Length', async t => {
  for (const range of ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0']) {
    const res = await get('/digits.txt', { Range: range })
    t.is(res.status, 416, range)
    t.is(res.headers['content-range'], 'bytes */1000', range)
    t.is(res.headers['content-disposition'], undefined, range)
    t.is(res.headers.etag, undefined, range)
    t.is(res.headers['last-modified'], undefined, range)
    t.is(Number(res.headers['content-length']), res.body.length, range)
  }
})

test('range: invalid syntax or an unknown unit is ignored → 200 with the whole file', async t => {
  for (const range of ['bytes=abc', 'items=0-4', 'bytes=--6', 'bytes=5-1', 'bytes 0-4', 'bytes=+1-2', 'bytes=0-4,x']) {
    const res = await get('/digits.txt', { Range: range })
    t.is(res.status, 200, range)
    t.is(res.headers['content-range'], undefined, range)
    t.deepEqual(res.body, digits, range)
  }
})

test('range: units are case-insensitive', async t => {
  const res = await get('/digits.txt', { Range: 'BYTES=0-1' })
  t.is(res.status, 206)
  t.deepEqual(res.body, digits.subarray(0, 2))
})

test('range: a Range on an empty file is ignored → 200 with an empty body', async t => {
  const res = await get('/empty.txt', { Range: 'bytes=0-10' })
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '0')
  t.is(res.body.length, 0)
})

test('range: HEAD ignores Range → 200 with the full Content-Length and no body', async t => {
  const res = await request(server).head('/digits.txt').set('Range', 'bytes=0-9')
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '1000')
  t.is(res.headers['content-range'], undefined)
})

test('range: several ranges → multipart/byteranges with exact Content-Length and each part read from the source', async t => {
  const res = await get('/digits.txt', { Range: 'bytes=0-4, 500-504,-3' })
  t.is(res.status, 206)
  const type = res.headers['content-type'] ?? ''
  const match = /^multipart\/byteranges; boundary=([0-9A-Za-z]{1,70})$/.exec(type)
  t.truthy(match, type)
  t.is(res.headers['content-range'], undefined)
  t.is(Number(res.headers['content-length']), res.body.length)
  const b = match?.[1] ?? ''
  const expected = `--${b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-4/1000\r\n\r\n01234` +
    `\r\n--${b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 500-504/1000\r\n\r\n01234` +
    `\r\n--${b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 997-999/1000\r\n\r\n789` +
    `\r\n--${b}--\r\n`
  t.is(res.body.toString('latin1'), expected)
})

test('range: multipart from a local file, byte for byte: parts larger than chunkSize (read in several reads), one-byte parts, the last byte; a PathFile subclass overriding open() and read() gets one of them per part', async t => {
  const ranges: Array<[number, number]> = [[0, 0], [1000, 6119], [9000, 9000], [50_000, 52_047], [199_999, 199_999]]
  const header = `bytes=${ranges.map(([start, end]) => `${start}-${end}`).join(',')}`
  const opened: Array<[number, number]> = []
  class Counted extends PathFile {
    override async open (...args: Parameters<PathFile['open']>): ReturnType<PathFile['open']> {
      opened.push([args[0]?.start ?? -1, args[0]?.end ?? -1])
      return await super.open(...args)
    }

    override async read (...args: Parameters<PathFile['read']>): ReturnType<PathFile['read']> {
      opened.push([args[0]?.start ?? -1, args[0]?.end ?? -1])
      return await super.read(...args)
    }
  }
  for (const make of [(path: string) => new PathFile(path, { root: fixtureRoot }), (path: string) => new Counted(path, { root: fixtureRoot })]) {
    const app = new Koa()
    app.use(serve({ chunkSize: 1024 }))
    app.use((ctx) => { ctx.body = make('binary.bin') })
    const res = await request(app.callback()).get('/').set('Range', header).buffer(true).parse(binaryParser)
    t.is(res.status, 206)
    const b = /boundary=(\S+)$/.exec(res.headers['content-type'] ?? '')?.[1] ?? ''
    const expected = Buffer.concat([...ranges.map(([start, end], index) => Buffer.concat([
      Buffer.from(`${index === 0 ? '' : '\r\n'}--${b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${start}-${end}/200000\r\n\r\n`, 'latin1'),
      binary.subarray(start, end + 1)
    ])), Buffer.from(`\r\n--${b}--\r\n`, 'latin1')])
    t.true((res.body as Buffer).equals(expected))
    t.is(Number(res.headers['content-length']), expected.length)
  }
  // The plain PathFile reads its parts from one descriptor; the subclass's own read() (the body is
  // within bufferSize: read before the headers) saw each part.
  t.deepEqual(opened, ranges)
})

test('range: the parts come in the order the Range header asked for them (RFC 9110 §15.3.7.2), a merged one where its first range was', async t => {
  for (const app of [server, downloadApp((ctx) => { ctx.body = download(new VirtualFile(digits, { name: 'digits.txt' })) }).callback()]) {
    const res = await request(app).get('/digits.txt').set('Range', 'bytes=-3, 500-504,0-4,502-509').buffer(true).parse(binaryParser)
    t.is(res.status, 206)
    const b = /boundary=(\S+)$/.exec(res.headers['content-type'] ?? '')?.[1] ?? ''
    const part = (range: string, bytes: string): string => `--${b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes ${range}/1000\r\n\r\n${bytes}\r\n`
    t.is((res.body as Buffer).toString('latin1'), part('997-999', '789') + part('500-509', '0123456789') + part('0-4', '01234') + `--${b}--\r\n`)
    t.is(Number(res.headers['content-length']), (res.body as Buffer).length)
  }
})

test('range: overlapping and adjacent ranges are coalesced, never sending more than the file', async t => {
  const res = await get('/digits.txt', { Range: 'bytes=0-99,50-149,150-199' })
  t.is(res.status, 206)
  t.is(res.headers['content-range'], 'bytes 0-199/1000')
  t.deepEqual(res.body, digits.subarray(0, 200))
})

test('range: more parts than maxRanges (32) after coalescing → 200 with the whole file; 32 are served', async t => {
  // 33 parts, 1 000 bytes apart: too far apart to be merged, one more than the default cap of 32
  const many = Array.from({ length: 33 }, (_, i) => `${i * 1000}-${i * 1000 + 1}`).join(',')
  const res = await get('/binary.bin', { Range: `bytes=${many}` })
  t.is(res.status, 200)
  t.deepEqual(res.body, binary)
  const atCap = await get('/binary.bin', { Range: `bytes=${many.split(',').slice(0, 32).join(',')}` })
  t.is(atCap.status, 206)
  t.regex(atCap.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/)
})

test('range: large files are streamed from the requested offset (above the buffer threshold)', async t => {
  const res = await get('/binary.bin', { Range: 'bytes=100000-199999' })
  t.is(res.status, 206)
  t.is(res.headers['content-length'], '100000')
  t.deepEqual(res.body, binary.subarray(100000))
  const multi = await get('/binary.bin', { Range: 'bytes=0-69999,130000-199999' })
  t.is(multi.status, 206)
  t.is(Number(multi.headers['content-length']), multi.body.length)
  t.true(multi.body.includes(binary.subarray(0, 70000)), 'first part: bytes 0-69999')
  t.true(multi.body.includes(binary.subarray(130000)), 'second part: bytes 130000-199999')
  t.true(multi.body.includes('Content-Range: bytes 0-69999/200000\r\n'))
  t.true(multi.body.includes('Content-Range: bytes 130000-199999/200000\r\n'))
  t.true(multi.body.length - 140000 < 400, 'nothing but the two parts and their part headers')
})

test('if-range: a matching strong ETag keeps the range; another ETag → 200 full', async t => {
  const { headers } = await get('/digits.txt')
  const etag = headers.etag ?? ''
  const kept = await get('/digits.txt', { Range: 'bytes=0-1', 'If-Range': etag })
  t.is(kept.status, 206)
  const other = await get('/digits.txt', { Range: 'bytes=0-1', 'If-Range': '"something-else"' })
  t.is(other.status, 200)
  t.deepEqual(other.body, digits)
})

test('if-range: a weak ETag never matches (strong comparison) → 200 full', async t => {
  const { headers } = await get('/digits.txt')
  const res = await get('/digits.txt', { Range: 'bytes=0-1', 'If-Range': `W/${headers.etag ?? ''}` })
  t.is(res.status, 200)
})

test('if-range: a date equal to an old-enough Last-Modified keeps the range; another date → 200', async t => {
  const { headers } = await get('/digits.txt')
  const lastModified = headers['last-modified'] ?? ''
  const kept = await get('/digits.txt', { Range: 'bytes=0-1', 'If-Range': lastModified })
  t.is(kept.status, 206)
  const later = new Date(Date.parse(lastModified) + 1000).toUTCString()
  const other = await get('/digits.txt', { Range: 'bytes=0-1', 'If-Range': later })
  t.is(other.status, 200)
})

test('if-range: a date equal to a Last-Modified of the current second (weak) → 200 with the whole file and without that Last-Modified, so that a server in front applying If-Range by the date alone (lighttpd) cannot cut a range out of it; an older Last-Modified is kept on a 200', async t => {
  let modified = new Date()
  const fresh = downloadApp((ctx) => {
    ctx.body = new VirtualFile('0123456789', { name: 'x.txt', lastModified: modified })
  })
  // Retried in the unlikely case that the second ends between the two requests.
  let res
  for (let attempt = 0; attempt < 3; attempt++) {
    modified = new Date()
    const date = new Date(Math.floor(modified.getTime() / 1000) * 1000).toUTCString()
    res = await request(fresh.callback()).get('/').set('Range', 'bytes=0-1').set('If-Range', date)
    if (Math.floor(Date.now() / 1000) === Math.floor(modified.getTime() / 1000)) break
  }
  t.is(res?.status, 200)
  t.is(res?.text, '0123456789')
  t.is(res?.headers['last-modified'], undefined)
  t.truthy(res?.headers.etag)
  // Another date than the Last-Modified: the whole file, which keeps its Last-Modified.
  modified = new Date(Date.now() - 60_000)
  const other = await request(fresh.callback()).get('/').set('Range', 'bytes=0-1').set('If-Range', new Date(Date.now() - 120_000).toUTCString())
  t.is(other.status, 200)
  t.is(other.headers['last-modified'], new Date(Math.floor(modified.getTime() / 1000) * 1000).toUTCString())
})

test('if-range: without Last-Modified a date never matches → 200', async t => {
  const dateless = downloadApp((ctx) => {
    ctx.body = new VirtualFile('0123456789', { name: 'x.txt' })
  })
  const res = await request(dateless.callback()).get('/').set('Range', 'bytes=0-1').set('If-Range', new Date().toUTCString())
  t.is(res.status, 200)
  t.is(res.text, '0123456789')
})

test('range: in-memory content serves ranges by slicing; ranges: false turns ranges off', async t => {
  const memory = downloadApp((ctx) => {
    ctx.body = download(new VirtualFile('héllo wörld', { name: 'x.txt' }))
  })
  const res = await request(memory.callback()).get('/').set('Range', 'bytes=1-2').buffer(true).parse(binaryParser)
  t.is(res.status, 206)
  t.deepEqual(res.body, Buffer.from('héllo wörld').subarray(1, 3))
  const off = downloadApp((ctx) => {
    ctx.body = new VirtualFile('hello', { name: 'x.txt' })
  }, { ranges: false })
  const full = await request(off.callback()).get('/').set('Range', 'bytes=1-2')
  t.is(full.status, 200)
  t.is(full.headers['accept-ranges'], 'none')
  t.is(full.text, 'hello')
})

test('range: a POST answered with a download ignores Range', async t => {
  const res = await request(server).post('/digits.txt').set('Range', 'bytes=0-1').buffer(true).parse(binaryParser)
  t.is(res.status, 200)
  t.deepEqual(res.body, digits)
})

test('options: downloads() and serve() name themselves in option errors', t => {
  t.throws(() => downloadApp(() => {}, { bufferSize: -1 }), { instanceOf: TypeError, message: 'downloads(): bufferSize must be a non-negative integer' })
  t.throws(() => serve({ maxRanges: 0 }), { instanceOf: TypeError, message: 'serve(): maxRanges must be a positive integer' })
  t.throws(() => serve({ rules: [] } as never), { instanceOf: TypeError, message: 'serve(): unknown option "rules" (allowed: bufferSize, chunkSize, etag, lastModified, ranges, maxRanges, endTimeout, reuseBuffers)' })
  t.throws(() => downloads({ rule: [] } as never), { instanceOf: TypeError, message: 'downloads(): unknown option "rule" (allowed: rules, bufferSize, chunkSize, etag, lastModified, ranges, maxRanges, endTimeout, reuseBuffers)' })
  for (const chunkSize of [0, 1023, 8 * 1024 * 1024 + 1, 65536.5, Number.NaN, '65536']) {
    t.throws(() => serve({ chunkSize: chunkSize as number }), { instanceOf: TypeError, message: 'serve(): chunkSize must be an integer from 1024 to 8388608 (bytes)' }, String(chunkSize))
  }
  t.is(typeof serve({ chunkSize: 1024 }), 'function')
  t.is(typeof downloads({ chunkSize: 8 * 1024 * 1024 }), 'function')
})

test('multipart: a first part opened ahead is destroyed when the body is destroyed before reaching it (client gone at once); the other parts are never opened', async t => {
  const source = new VirtualFile(digits, { name: 'digits.txt' })
  let opens = 0
  const file = { name: 'digits.txt', stat: async () => await source.stat(), open: async (...args: Parameters<VirtualFile['open']>) => { opens++; return await source.open(...args) } }
  const plan = planMultipart([{ start: 0, end: 4 }, { start: 500, end: 504 }], 1000, 'text/plain')
  const first = await source.open({ start: 0, end: 4 })
  const body = multipartStream(file, plan, {}, first)
  body.destroy()
  await once(body, 'close')
  t.true(first.destroyed)
  t.is(opens, 0)

  // Read whole, the first part is the stream given and the second is opened: the exact body.
  const whole = multipartStream(file, plan, {}, await source.open({ start: 0, end: 4 }))
  const bytes = Buffer.concat(await whole.toArray() as Buffer[]).toString('latin1')
  t.is(opens, 1)
  t.true(bytes.includes('Content-Range: bytes 0-4/1000\r\n\r\n01234\r\n--') && bytes.includes('Content-Range: bytes 500-504/1000\r\n\r\n01234\r\n--'))
  // Byte for byte: both heads, each part's bytes from the file, the closing boundary, and the planned length.
  const expected = Buffer.concat([plan.parts[0]!.head, digits.subarray(0, 5), plan.parts[1]!.head, digits.subarray(500, 505), plan.tail]).toString('latin1')
  t.is(bytes, expected)
  t.is(bytes.length, plan.length)
})

test('a wrapper whose read() returns fewer bytes than stat() announced is a clean 503 (planned again, then refused), never a short 200 or 206 passed as complete: whole, one range, several ranges', async t => {
  let reads = 0
  const short = {
    name: 'short.bin',
    stat: async () => ({ size: 1000, etag: '"s"' }),
    // The bytes of a file that really has 400: a range past them comes short or empty.
    read: async (range?: { start: number, end: number }) => { reads++; return Buffer.alloc(Math.max(0, Math.min(range?.end ?? 999, 399) - (range?.start ?? 0) + 1), 0x61) },
    open: async () => { throw new Error('open() is not used for a body within bufferSize') }
  }
  const shortApp = downloadApp((ctx) => { ctx.body = short }).callback()
  for (const range of [undefined, 'bytes=0-599', 'bytes=0-9,500-509']) {
    reads = 0
    let req = request(shortApp).get('/').buffer(true).parse(binaryParser)
    if (range !== undefined) req = req.set('Range', range)
    const res = await req
    t.is(res.status, 503, String(range))
    t.is(res.headers['content-range'], undefined, String(range))
    t.false((res.body as Buffer).includes(Buffer.alloc(10, 0x61)), String(range))
    t.true(reads >= 2, `${String(range)}: planned again once (${reads} reads)`)
  }
})

test('multipart within bufferSize: a client that leaves stops the part reads, even with a read() that ignores the abort signal', async t => {
  let reads = 0
  const slow = {
    name: 'slow.bin',
    stat: async () => ({ size: digits.length, etag: '"w"' }),
    // 200 ms per part, whatever the signal says.
    read: async (range?: { start: number, end: number }) => {
      reads++
      await new Promise((resolve) => setTimeout(resolve, 200))
      return digits.subarray(range?.start ?? 0, (range?.end ?? digits.length - 1) + 1)
    },
    open: async () => { throw new Error('open() is not used for a body within bufferSize') }
  }
  const { port, errors } = await listening(t, slow)
  // Eight parts: 1.6 s of reads; the client leaves after about one of them.
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=${Array.from({ length: 8 }, (_, i) => `${i * 120}-${i * 120 + 1}`).join(',')}\r\n\r\n`)
  await new Promise((resolve) => setTimeout(resolve, 250))
  socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.true(reads >= 1 && reads <= 5, `${reads} of 8 parts read`)
  t.deepEqual(errors, [], 'a client leaving is no error')
})

test('multipart: a source whose part ends before its range does is cut right there (the client sees fewer bytes than Content-Length at once), never left waiting, and reported', async t => {
  // No read(): every part is streamed from open(). The second part comes with 5 of its 11 bytes.
  const ends = {
    name: 'ends.bin',
    stat: async () => ({ size: digits.length, etag: '"e"' }),
    open: async (range?: { start: number, end: number }) => {
      const start = range?.start ?? 0
      const end = start === 500 ? start + 4 : range?.end ?? digits.length - 1
      return Readable.from([digits.subarray(start, end + 1)])
    }
  }
  const { port, errors } = await listening(t, ends)
  const res = await rawRequest(`http://127.0.0.1:${port}/`, { headers: { Range: 'bytes=0-10,500-510,900-910' } })
  t.is(res.status, 206)
  t.false(res.complete)
  t.true(res.body.length < Number(res.headers['content-length']), `${res.body.length} of ${String(res.headers['content-length'])} bytes`)
  // Up to the short part's own bytes, nothing after them (not the third part).
  t.true(res.body.toString('latin1').endsWith('Content-Range: bytes 500-510/1000\r\n\r\n01234'), JSON.stringify(res.body.toString('latin1').slice(-60)))
  t.regex(errors[0]?.message ?? '', /^multipart: part 500-510 delivered 5 bytes$/)
})

test('multipart: a source that sends more than a part\'s range never puts bytes past Content-Length (the connection is cut instead)', async t => {
  // A third-party wrapper whose open(range) ignores range.end, as an origin ignoring Range would.
  const sloppy = {
    name: 'sloppy.txt',
    stat: async () => ({ size: digits.length, etag: '"s"' }),
    open: async (range?: { start: number, end: number }) => Readable.from([digits.subarray(range?.start ?? 0)])
  }
  const { port, errors } = await listening(t, sloppy)
  const socket = connect(port, '127.0.0.1')
  socket.end('GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,150-159\r\n\r\n')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  await once(socket, 'close')
  const raw = Buffer.concat(chunks)
  const split = raw.indexOf('\r\n\r\n')
  const head = raw.subarray(0, split).toString('latin1')
  t.regex(head, /^HTTP\/1\.1 206 /)
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1])
  const body = raw.subarray(split + 4)
  // Cut short (the client can tell the body is incomplete), and never a byte of the overrun.
  t.true(body.length < length, `${body.length} of ${length} bytes`)
  t.false(body.toString('latin1').includes('0123456789012'))
  t.regex(errors[0]?.message ?? '', /^multipart: part 0-9 delivered more than 10 bytes$/)
})

test('endTimeout: a source of known size that sends its bytes but never ends is cut — the whole file, a single range and each part of a multipart response (which waited for good); one that ends in time is whole', async t => {
  const content = Buffer.from('0123456789'.repeat(100))
  /** A custom wrapper whose streams send their bytes and then never end. */
  const stuck: DownloadFile = {
    name: 'stuck.bin',
    stat: async () => ({ size: content.length, etag: '"s1"' }),
    open: async (range) => {
      const stream = new PassThrough()
      stream.write(range === undefined ? content : content.subarray(range.start, range.end + 1))
      return stream
    }
  }
  const app = new Koa()
  app.silent = true
  app.use(serve({ endTimeout: 200 }))
  app.use((ctx) => { ctx.body = stuck })
  const server = app.listen(0, '127.0.0.1')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  await once(server, 'listening')
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const range of [undefined, 'bytes=0-9', 'bytes=0-9,500-509']) {
    const started = Date.now()
    const res = await rawRequest(base + '/', { headers: range === undefined ? {} : { Range: range } })
    t.is(res.status, range === undefined ? 200 : 206, String(range))
    t.false(res.complete, `${String(range)}: cut, not complete`)
    t.true(Date.now() - started < 10_000, `${String(range)}: cut after endTimeout, not left open`)
  }
  t.throws(() => serve({ endTimeout: 0 }), { instanceOf: TypeError, message: /endTimeout must be an integer from 1 to 2147483647/ })
})
