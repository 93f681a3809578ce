// FileStream: the exact bytes of a range in full-size chunks, a descriptor closed on every way out,
// and the chunk size serve() asks for.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { appendFileSync, fstatSync, openSync, readlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs'
import { mkdtemp, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import request from 'supertest'
import { DescriptorReader, FileStream, readExactly } from '../source/file-stream.ts'
import { firstRead, multipartFromReader, planMultipart } from '../source/multipart.ts'
import { DownloadError } from '../source/errors.ts'
import { FILE_CHUNK_SIZE, PathFile } from '../source/path-file.ts'
import { serve } from '../source/serve.ts'
import type { DownloadFile } from '../source/types.ts'
import { binaryParser } from './helpers/koa.ts'

const KiB = 1024
const bytes = randomBytes(2048 * KiB)

let temp = ''
test.before(async () => {
  temp = await realpath(await mkdtemp(join(tmpdir(), 'kd-file-stream-')))
})
test.after.always(async () => {
  if (temp !== '') await rm(temp, { recursive: true, force: true })
})

/** A file of its own per test, so that a descriptor number can be told apart from another test's. */
function fileOf (name: string, content: Buffer = bytes): string {
  const path = join(temp, name)
  writeFileSync(path, content)
  return path
}

/**
 * Whether `fd` no longer refers to `path`. The number itself may already be reused: ava runs the
 * other test files as threads of this process.
 */
function isClosed (fd: number, path: string): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) !== path
  } catch {
    return true
  }
}

async function closed (stream: FileStream): Promise<void> {
  if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve))
}

test('file-stream: a fast consumer gets the exact range in full-size chunks, and the descriptor is closed at the end', async t => {
  const path = fileOf('fast.bin')
  const fd = openSync(path, 'r')
  const start = 100
  const end = bytes.length - 101
  const stream = new FileStream(fd, start, end, FILE_CHUNK_SIZE)
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  t.true(Buffer.concat(chunks).equals(bytes.subarray(start, end + 1)))
  t.deepEqual(chunks.slice(0, -1).map((c) => c.length), Array(chunks.length - 1).fill(FILE_CHUNK_SIZE))
  t.is(chunks.at(-1)?.length, (end - start + 1) % FILE_CHUNK_SIZE)
  await closed(stream)
  t.true(isClosed(fd, path))
})

test('file-stream: a file truncated under the stream fails it with E_CHANGED (never a short end) and closes the descriptor', async t => {
  const short = fileOf('short.bin', bytes.subarray(0, 1024 * KiB))
  const fd = openSync(short, 'r')
  truncateSync(short, 300 * KiB)
  const stream = new FileStream(fd, 0, 1024 * KiB - 1, FILE_CHUNK_SIZE)
  let received = 0
  const error = await t.throwsAsync(async () => {
    for await (const chunk of stream) received += (chunk as Buffer).length
  })
  t.is((error as { code?: string }).code, 'E_CHANGED')
  t.is(received, 300 * KiB)
  await closed(stream)
  t.true(isClosed(fd, short))
})

test('file-stream: a file rewritten in place under the stream (same size, another mtime: `cp` over it) fails it with E_CHANGED before its last chunk; one appended to ends normally with the bytes opened', async t => {
  const path = fileOf('rewritten.bin', bytes.subarray(0, 1024 * KiB))
  const fd = openSync(path, 'r')
  const opened = fstatSync(fd)
  const stream = new FileStream(fd, 0, 1024 * KiB - 1, FILE_CHUNK_SIZE, opened)
  let received = 0
  const error = await t.throwsAsync(async () => {
    for await (const chunk of stream) {
      if (received === 0) {
        writeFileSync(path, Buffer.alloc(1024 * KiB, 0x5a))
        // A whole second later: the clock's tick could otherwise leave the mtime as it was.
        utimesSync(path, new Date(opened.mtimeMs + 1000), new Date(opened.mtimeMs + 1000))
      }
      received += (chunk as Buffer).length
    }
  })
  t.is((error as { code?: string }).code, 'E_CHANGED')
  t.true(received < 1024 * KiB, 'the consumer never gets every byte')
  await closed(stream)
  t.true(isClosed(fd, path))

  const grown = fileOf('appended.bin', bytes.subarray(0, 1024 * KiB))
  const fd2 = openSync(grown, 'r')
  const before = fstatSync(fd2)
  const appending = new FileStream(fd2, 0, 1024 * KiB - 1, FILE_CHUNK_SIZE, before)
  const chunks: Buffer[] = []
  for await (const chunk of appending) {
    if (chunks.length === 0) {
      appendFileSync(grown, Buffer.alloc(4096, 0x41))
      utimesSync(grown, new Date(before.mtimeMs + 1000), new Date(before.mtimeMs + 1000))
    }
    chunks.push(chunk as Buffer)
  }
  t.true(Buffer.concat(chunks).equals(bytes.subarray(0, 1024 * KiB)))
})

test('file-stream: destroyed midway (client abort) → the descriptor is closed', async t => {
  const path = fileOf('aborted.bin')
  const fd = openSync(path, 'r')
  const stream = new FileStream(fd, 0, bytes.length - 1, FILE_CHUNK_SIZE)
  const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve))
  t.is(first.length, FILE_CHUNK_SIZE)
  stream.destroy()
  await closed(stream)
  t.true(isClosed(fd, path))
})

test('file-stream: PathFile.open() reads in the chunkSize it is given; an insane hint falls back to the default', async t => {
  const path = fileOf('hinted.bin')
  const sizesOf = async (chunkSize: unknown): Promise<number[]> => {
    const stream = await new PathFile(path).open({ start: 0, end: 512 * KiB - 1 }, { chunkSize: chunkSize as number })
    const sizes: number[] = []
    for await (const chunk of stream) sizes.push((chunk as Buffer).length)
    return sizes
  }
  t.deepEqual(await sizesOf(64 * KiB), Array(8).fill(64 * KiB))
  t.deepEqual(await sizesOf(undefined), [FILE_CHUNK_SIZE, FILE_CHUNK_SIZE])
  for (const insane of [0, -1, 100, 1.5, '65536', 16 * 1024 * KiB]) t.deepEqual(await sizesOf(insane), [FILE_CHUNK_SIZE, FILE_CHUNK_SIZE], String(insane))
})

test('file-stream: serve({ chunkSize }) hands its chunk size to open(), for a single body and for every multipart part', async t => {
  const seen: Array<number | undefined> = []
  const inner = new PathFile(fileOf('served.bin'))
  const file: DownloadFile = {
    name: 'served.bin',
    stat: async (options) => await inner.stat(options),
    open: async (range, options) => {
      seen.push(options?.chunkSize)
      return await inner.open(range, options)
    }
  }
  const app = new Koa()
  app.use(serve({ chunkSize: 64 * KiB, bufferSize: 0 }))
  app.use((ctx) => { ctx.body = file })
  const whole = await request(app.callback()).get('/').buffer(true).parse(binaryParser)
  t.is(whole.status, 200)
  t.true((whole.body as Buffer).equals(bytes))
  const parts = await request(app.callback()).get('/').set('Range', 'bytes=0-9,100000-100009').buffer(true).parse(binaryParser)
  t.is(parts.status, 206)
  t.deepEqual(seen, [64 * KiB, 64 * KiB, 64 * KiB])
})

test('readExactly / DescriptorReader: a file that ends before the bytes asked for is E_CHANGED at once (never a loop on reads of 0 bytes), whole reads give exactly the bytes', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-read-exactly-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'f.bin')
  const content = randomBytes(100)
  writeFileSync(path, content)
  const fd = openSync(path, 'r')
  const stats = fstatSync(fd)
  const reader = new DescriptorReader(fd, stats)
  t.teardown(() => { reader.close() })
  t.deepEqual(await reader.read(10, 20), content.subarray(10, 30))
  t.deepEqual(await readExactly(fd, 0, 100), content)
  // Truncated under the open descriptor: the read finds the end early.
  truncateSync(path, 40)
  for (const read of [async () => await readExactly(fd, 0, 100), async () => await reader.read(30, 20), async () => await reader.read(60, 40)]) {
    const error = await t.throwsAsync(read())
    t.true(error instanceof DownloadError && error.code === 'E_CHANGED', String(error?.message))
    // The file's end as it is now, also for a read that starts past it.
    t.regex(error?.message ?? '', /^file ended at byte 40, before byte (100|50) \(truncated while being read\)$/)
  }
  // Rewritten in place to the same size with a new mtime: check() tells.
  writeFileSync(path, Buffer.alloc(100, 0x61))
  utimesSync(path, stats.atime, new Date(stats.mtimeMs + 5000))
  t.throws(() => { reader.check() }, { instanceOf: DownloadError, message: /modified while being sent/ })
})

test('multipartFromReader: a body destroyed before it was first read (the client gone at once) closes the descriptor reader; one read to its end closes it too', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-multipart-reader-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'f.bin')
  writeFileSync(path, randomBytes(1000))
  const plan = planMultipart([{ start: 0, end: 4 }, { start: 500, end: 504 }], 1000, 'application/octet-stream')
  for (const readToEnd of [false, true]) {
    const fd = openSync(path, 'r')
    const reader = new DescriptorReader(fd, fstatSync(fd))
    const { position, length } = firstRead(plan, 1024)
    const body = multipartFromReader(reader, plan, await reader.read(position, length), 1024)
    if (readToEnd) t.is(Buffer.concat(await body.toArray() as Buffer[]).length, plan.length)
    else body.destroy()
    if (!body.closed) await once(body, 'close')
    await t.throwsAsync(reader.read(0, 1), { message: /read after close/ }, readToEnd ? 'read to its end' : 'destroyed at once')
  }
})
