// multipartFromReader(): the parts of a local file from one descriptor, nearby small ones with one
// read of the span that holds them, sliced into them in the order they are sent. Each case counts
// the reads and checks the body byte for byte.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { fstatSync, openSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import request from 'supertest'
import { DescriptorReader } from '../source/file-stream.ts'
import { DownloadError } from '../source/errors.ts'
import { firstRead, multipartFromReader, planMultipart } from '../source/multipart.ts'
import type { MultipartPlan } from '../source/multipart.ts'
import { PathFile } from '../source/path-file.ts'
import { serve } from '../source/serve.ts'
import type { ByteRange } from '../source/types.ts'
import { binaryParser } from './helpers/koa.ts'

const KiB = 1024
const SIZE = 512 * KiB
const content = randomBytes(SIZE)

let temp = ''
test.before(async () => {
  temp = await mkdtemp(join(tmpdir(), 'kd-multipart-'))
})
test.after.always(async () => {
  if (temp !== '') await rm(temp, { recursive: true, force: true })
})

/** A DescriptorReader that records each read it makes, as [position, length]. */
class CountingReader extends DescriptorReader {
  readonly reads: Array<[number, number]> = []

  override async read (position: number, length: number): Promise<Buffer> {
    this.reads.push([position, length])
    return await super.read(position, length)
  }

  override async readUpTo (position: number, length: number): Promise<Buffer> {
    this.reads.push([position, length])
    return await super.readUpTo(position, length)
  }
}

let files = 0
/** A reader of a file of its own holding `bytes`, with the first read made as serve() makes it. */
async function opened (ranges: ByteRange[], chunkSize: number, bytes = content): Promise<{ path: string, reader: CountingReader, plan: MultipartPlan, first: Buffer }> {
  const path = join(temp, `f${files++}.bin`)
  writeFileSync(path, bytes)
  const fd = openSync(path, 'r')
  const reader = new CountingReader(fd, fstatSync(fd))
  const plan = planMultipart(ranges, bytes.length, 'application/octet-stream')
  const { position, length } = firstRead(plan, chunkSize)
  return { path, reader, plan, first: await reader.read(position, length) }
}

/** The body a plan must give: each part's head and its bytes of `bytes`, in the plan's order, then the tail. */
function expectedBody (plan: MultipartPlan, bytes = content): Buffer {
  return Buffer.concat([...plan.parts.flatMap(({ range, head }) => [head, bytes.subarray(range.start, range.end + 1)]), plan.tail])
}

/** Every chunk a body gives, and how it ends (its error, if it fails). */
async function drained (body: NodeJS.ReadableStream & { destroyed: boolean }): Promise<{ bytes: Buffer, error: Error | undefined }> {
  const chunks: Buffer[] = []
  body.on('data', (chunk: Buffer) => chunks.push(chunk))
  const error = await new Promise<Error | undefined>((resolve) => {
    body.on('end', () => { resolve(undefined) })
    body.on('error', resolve)
  })
  return { bytes: Buffer.concat(chunks), error }
}

const one = (at: number): ByteRange => ({ start: at, end: at })
const spaced = (count: number, from: number, step: number): ByteRange[] => Array.from({ length: count }, (_, i) => one(from + i * step))

for (const [label, ranges, chunkSize, reads] of [
  ['32 one-byte parts, 1 KiB apart, ascending: one read of their span', spaced(32, 0, KiB), 256 * KiB, [[0, 31 * KiB + 1]]],
  ['the same, descending: one read', spaced(32, 0, KiB).reverse(), 256 * KiB, [[0, 31 * KiB + 1]]],
  ['in no order, with overlapping and repeated ranges: one read, each part sliced as asked', [{ start: 500, end: 900 }, { start: 100, end: 600 }, one(20), { start: 100, end: 600 }, { start: 850, end: 2000 }, one(20)], 256 * KiB, [[20, 1981]]],
  ['8 parts of 4 KiB, 100 bytes apart: one read', Array.from({ length: 8 }, (_, i) => ({ start: i * 4196, end: i * 4196 + 4095 })), 256 * KiB, [[0, 7 * 4196 + 4096]]],
  ['widely separated parts (100 KiB apart): one read each', spaced(4, 1000, 100 * KiB), 256 * KiB, spaced(4, 1000, 100 * KiB).map(({ start }) => [start, 1])],
  ['parts up to 8 KiB apart join a span, parts farther apart do not (the bytes between them would cost more than the read saved)', [one(0), one(8 * KiB + 1), one(16 * KiB + 3)], 256 * KiB, [[0, 8 * KiB + 2], [16 * KiB + 3, 1]]],
  ['a span is cut where it would pass 64 KiB: the next part starts the next span', spaced(16, 0, 6 * KiB), 256 * KiB, [[0, 60 * KiB + 1], [66 * KiB, 24 * KiB + 1]]],
  ['a span is no larger than chunkSize', spaced(6, 0, 600), 2 * KiB, [[0, 1801], [2400, 601]]],
  ['a part of 16 KiB or more is read alone, in chunks, between spans of the small ones', [one(0), one(100), { start: 1000, end: 1000 + 40 * KiB - 1 }, one(300), one(200)], 16 * KiB, [[0, 101], [1000, 16 * KiB], [1000 + 16 * KiB, 16 * KiB], [1000 + 32 * KiB, 8 * KiB], [200, 101]]],
  ['a span of exactly 64 KiB is one read', [...spaced(8, 0, 8 * KiB), { start: 60 * KiB, end: 64 * KiB - 1 }], 256 * KiB, [[0, 64 * KiB]]],
  ['a span one byte past 64 KiB is cut before the part that would pass it', [...spaced(8, 0, 8 * KiB), { start: 60 * KiB, end: 64 * KiB }], 256 * KiB, [[0, 56 * KiB + 1], [60 * KiB, 4 * KiB + 1]]],
  ['a span of exactly chunkSize is one read', [one(0), one(2047)], 2 * KiB, [[0, 2 * KiB]]],
  ['a span one byte past chunkSize is two reads', [one(0), one(2048)], 2 * KiB, [[0, 1], [2048, 1]]],
  ['descending parts farther apart than 8 KiB do not join either', [one(10 * KiB), one(0)], 256 * KiB, [[10 * KiB, 1], [0, 1]]],
  ['a part of exactly 16 KiB starts no span and joins none', [{ start: 0, end: 16 * KiB - 1 }, one(16 * KiB + 10), { start: 17 * KiB, end: 33 * KiB - 1 }], 256 * KiB, [[0, 16 * KiB], [16 * KiB + 10, 1], [17 * KiB, 16 * KiB]]],
  ['a large first part: the read before the headers is one chunk of it, not the whole part', [{ start: 0, end: 40 * KiB - 1 }, one(100)], 16 * KiB, [[0, 16 * KiB], [16 * KiB, 16 * KiB], [32 * KiB, 8 * KiB], [100, 1]]],
  ['parts at the file\'s last bytes: the span ends with the file', [one(SIZE - 5000), { start: SIZE - 3, end: SIZE - 1 }, one(SIZE - 1)], 256 * KiB, [[SIZE - 5000, 5000]]]
] as Array<[string, ByteRange[], number, Array<[number, number]>]>) {
  test(`multipartFromReader: ${label}; the body byte for byte, the descriptor closed`, async t => {
    const { reader, plan, first } = await opened(ranges, chunkSize)
    const { bytes, error } = await drained(multipartFromReader(reader, plan, first, chunkSize))
    t.is(error, undefined)
    t.true(bytes.equals(expectedBody(plan)))
    t.is(bytes.length, plan.length)
    t.deepEqual(reader.reads, reads)
    await t.throwsAsync(reader.read(0, 1), { message: /read after close/ })
  })
}

test('multipartFromReader: a file truncated in the middle of a span sends the parts before its end whole and is cut at the first part past it, with that part\'s read error; the descriptor closed', async t => {
  // The first part is read alone (20 KiB) before the headers; the truncation comes after that.
  const ranges = [{ start: 100 * KiB, end: 120 * KiB - 1 }, one(0), one(1000), one(2000), one(3000), one(4000)]
  const { path, reader, plan, first } = await opened(ranges, 256 * KiB)
  truncateSync(path, 2500)
  const { bytes, error } = await drained(multipartFromReader(reader, plan, first, 256 * KiB))
  t.true(error instanceof DownloadError && error.code === 'E_CHANGED', String(error))
  t.is(error?.message, 'file ended at byte 2500, before byte 3001 (truncated while being read)')
  // Everything up to the head of part 3000 (as a read of that part alone would have left it), no byte of it.
  const expected = expectedBody(plan)
  const cut = expected.indexOf(plan.parts[4]!.head) + plan.parts[4]!.head.length
  t.true(bytes.equals(expected.subarray(0, cut)), `${bytes.length} bytes, expected ${cut}`)
  t.deepEqual(reader.reads, [[100 * KiB, 20 * KiB], [0, 4001]])
  await t.throwsAsync(reader.read(0, 1), { message: /read after close/ })
})

test('multipartFromReader: a file truncated by its last byte cuts a span that ends there at the part holding it', async t => {
  const ranges = [{ start: 50 * KiB, end: 70 * KiB - 1 }, one(SIZE - 300), one(SIZE - 1), one(SIZE - 200)]
  const { path, reader, plan, first } = await opened(ranges, 256 * KiB)
  truncateSync(path, SIZE - 1)
  const { bytes, error } = await drained(multipartFromReader(reader, plan, first, 256 * KiB))
  t.is(error?.message, `file ended at byte ${SIZE - 1}, before byte ${SIZE} (truncated while being read)`)
  const expected = expectedBody(plan)
  t.true(bytes.equals(expected.subarray(0, expected.indexOf(plan.parts[2]!.head) + plan.parts[2]!.head.length)))
  t.false(bytes.includes(plan.tail))
})

test('multipartFromReader: a file rewritten in place after a span was read is cut before the closing boundary (the fstat stays)', async t => {
  const { path, reader, plan, first } = await opened(spaced(4, 0, 100), 256 * KiB, content.subarray(0, 1000))
  // Same size, another mtime: only the check before the closing boundary can tell.
  writeFileSync(path, Buffer.alloc(1000, 0x61))
  const { atime, mtimeMs } = statSync(path)
  utimesSync(path, atime, new Date(mtimeMs + 5000))
  const { bytes, error } = await drained(multipartFromReader(reader, plan, first, 256 * KiB))
  t.true(error instanceof DownloadError && error.code === 'E_CHANGED', String(error))
  t.regex(error?.message ?? '', /modified while being sent/)
  t.false(bytes.includes(plan.tail))
  t.deepEqual(reader.reads, [[0, 301]])
})

test('multipartFromReader: a body destroyed after its first chunk (the client gone) reads no further and closes the descriptor', async t => {
  // Parts of 20 KiB, far apart: each goes out on its own as it is read.
  const ranges = Array.from({ length: 8 }, (_, i) => ({ start: i * 60 * KiB, end: i * 60 * KiB + 20 * KiB - 1 }))
  const { reader, plan, first } = await opened(ranges, 256 * KiB)
  const body = multipartFromReader(reader, plan, first, 256 * KiB)
  await once(body, 'readable')
  body.destroy()
  if (!body.closed) await once(body, 'close')
  t.true(reader.reads.length < ranges.length, `${reader.reads.length} reads`)
  await t.throwsAsync(reader.read(0, 1), { message: /read after close/ })
})

test('multipartFromReader: a body destroyed in the middle of its spans reads no further span and closes the descriptor', async t => {
  // 32 parts of 15 KiB, 100 bytes apart: spans of four parts (60.3 KiB), eight spans in all.
  const ranges = Array.from({ length: 32 }, (_, i) => ({ start: i * (15 * KiB + 100), end: i * (15 * KiB + 100) + 15 * KiB - 1 }))
  const { reader, plan, first } = await opened(ranges, 256 * KiB)
  const body = multipartFromReader(reader, plan, first, 256 * KiB)
  await once(body, 'readable')
  body.destroy()
  const readsAtDestroy = reader.reads.length
  if (!body.closed) await once(body, 'close')
  await new Promise((resolve) => setImmediate(resolve))
  t.is(reader.reads[0]?.[1], 4 * (15 * KiB + 100) - 100)
  t.true(reader.reads.length < 8, `${reader.reads.length} reads`)
  // No read starts once the body is destroyed (one already in flight is counted before).
  t.is(reader.reads.length, readsAtDestroy)
  await t.throwsAsync(reader.read(0, 1), { message: /read after close/ })
})

test.serial('serve(): 32 one-byte ranges of a local file are one read, made before the headers; widely separated ones one read each; bodies byte for byte', async t => {
  const path = join(temp, 'served.bin')
  writeFileSync(path, content)
  const reads: Array<[number, number]> = []
  const { read, readUpTo } = DescriptorReader.prototype
  DescriptorReader.prototype.read = async function (position, length) {
    reads.push([position, length])
    return await read.call(this, position, length)
  }
  DescriptorReader.prototype.readUpTo = async function (position, length) {
    reads.push([position, length])
    return await readUpTo.call(this, position, length)
  }
  t.teardown(() => { Object.assign(DescriptorReader.prototype, { read, readUpTo }) })
  const app = new Koa()
  app.use(serve())
  app.use((ctx) => { ctx.body = new PathFile(path) })
  for (const [ranges, expected] of [
    [spaced(32, 7, 200), [[7, 31 * 200 + 1]]],
    [spaced(32, 7, 200).reverse(), [[7, 31 * 200 + 1]]],
    [[one(SIZE - 1), one(0), { start: 1000, end: 1999 }], [[SIZE - 1, 1], [0, 2000]]],
    [spaced(3, 10, 200 * KiB), [[10, 1], [200 * KiB + 10, 1], [400 * KiB + 10, 1]]]
  ] as Array<[ByteRange[], Array<[number, number]>]>) {
    reads.length = 0
    const header = `bytes=${ranges.map(({ start, end }) => `${start}-${end}`).join(',')}`
    const res = await request(app.callback()).get('/').set('Range', header).buffer(true).parse(binaryParser)
    t.is(res.status, 206, header)
    const boundary = /boundary=(\S+)$/.exec(res.headers['content-type'] ?? '')?.[1] ?? ''
    const body = Buffer.concat([...ranges.map(({ start, end }, index) => Buffer.concat([
      Buffer.from(`${index === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${start}-${end}/${SIZE}\r\n\r\n`, 'latin1'),
      content.subarray(start, end + 1)
    ])), Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')])
    t.true((res.body as Buffer).equals(body), header)
    t.deepEqual(reads, expected, header)
  }
})
