import { get } from 'node:http'
import { Readable } from 'node:stream'
import test from 'ava'
import type { DriverContract } from 'flydrive/types'
import Koa from 'koa'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { StorageFile } from '../../adapters/flydrive/index.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { leavingBesideStaying } from '../helpers/leaving.ts'
import { listen } from '../helpers/listen.ts'
import { downloadApp } from '../helpers/koa.ts'

// A custom flydrive driver (a database-backed store, say): the driver contract's metadata and
// whole-object stream, nothing else. Its calls take no abort signal and no timeout.

/** A driver over `objects`, whose calls can be made to wait (`hold`) until released. */
function customDriver (objects: Record<string, { bytes: Buffer, contentLength?: unknown }>): { driver: DriverContract, calls: string[], hold: { metadata?: Promise<void> | undefined, stream?: Promise<void> | undefined }, streams: Readable[] } {
  const calls: string[] = []
  const hold: { metadata?: Promise<void> | undefined, stream?: Promise<void> | undefined } = {}
  const streams: Readable[] = []
  const driver = {
    getMetaData: async (key: string) => {
      calls.push(`getMetaData ${key}`)
      await hold.metadata
      const object = objects[key]
      if (object === undefined) throw Object.assign(new Error(`${key} not found`), { code: 'ENOENT' })
      return { contentLength: object.contentLength ?? object.bytes.length, contentType: 'application/octet-stream', etag: '"v1"', lastModified: new Date('2026-01-01T00:00:00Z') }
    },
    getStream: async (key: string) => {
      calls.push(`getStream ${key}`)
      await hold.stream
      // As a storage sends it: in chunks, over time (the source is still open when the headers go).
      const bytes = objects[key]?.bytes ?? Buffer.alloc(0)
      let at = 0
      const stream = new Readable({
        read () {
          setTimeout(() => {
            this.push(at < bytes.length ? bytes.subarray(at, at + 16_384) : null)
            at += 16_384
          }, 2)
        }
      })
      streams.push(stream)
      return stream
    }
  } as unknown as DriverContract
  return { driver, calls, hold, streams }
}

test('custom driver: a length given as a string of digits is a length: a body that ends short is cut, never a complete chunked 200', async (t) => {
  const { driver } = customDriver({
    'short.bin': { bytes: Buffer.alloc(50_000, 0x61), contentLength: '102400' },
    'whole.bin': { bytes: Buffer.alloc(102_400, 0x62), contentLength: '102400' }
  })
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(new StorageFile(driver, ctx.path.slice(1))) }))
  const whole = await rawRequest(`${base}/whole.bin`)
  t.is(whole.status, 200)
  t.is(whole.headers['content-length'], '102400')
  t.true(whole.complete)
  t.is(whole.body.length, 102_400)
  const short = await rawRequest(`${base}/short.bin`)
  t.is(short.status, 200)
  t.is(short.headers['content-length'], '102400')
  t.false(short.complete)
})

test('custom driver: metadata that never comes is a 504 after idleTimeout, and so is a stream that never comes (given later, it is destroyed)', async (t) => {
  const { driver, hold, streams } = customDriver({ 'a.bin': { bytes: Buffer.alloc(1000, 0x61) } })
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(new StorageFile(driver, ctx.path.slice(1), { idleTimeout: 200 })) }))
  let release: () => void = () => {}
  hold.metadata = new Promise((resolve) => { release = resolve })
  const noMetadata = await rawRequest(`${base}/a.bin`)
  t.is(noMetadata.status, 504)
  release()
  hold.metadata = undefined
  hold.stream = new Promise((resolve) => { release = resolve })
  const noStream = await rawRequest(`${base}/a.bin`)
  t.is(noStream.status, 504)
  release()
  while (streams.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setImmediate(resolve))
  t.true(streams[0]?.destroyed, 'the stream that came late is destroyed')
  hold.stream = undefined
  const fine = await rawRequest(`${base}/a.bin`)
  t.is(fine.status, 200)
  t.is(fine.body.length, 1000)
})

test('custom driver: a client that leaves while the metadata is awaited ends the wait, and no stream is asked for', async (t) => {
  const { driver, calls, hold } = customDriver({ 'a.bin': { bytes: Buffer.alloc(1000, 0x61) } })
  // The request's middleware chain ends, serve() included: the wait for the driver ended with the client.
  let served: () => void = () => {}
  const done = new Promise<void>((resolve) => { served = resolve })
  const koa = new Koa()
  koa.silent = true
  koa.use(async (_ctx, next) => {
    try {
      await next()
    } finally {
      served()
    }
  })
  koa.use(downloads())
  koa.use((ctx) => { ctx.body = download(new StorageFile(driver, ctx.path.slice(1), { idleTimeout: 60_000 })) })
  const base = await listen(t, koa)
  let release: () => void = () => {}
  hold.metadata = new Promise((resolve) => { release = resolve })
  const req = get(`${base}/a.bin`)
  req.on('error', () => {})
  while (calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  req.destroy()
  // Within a generous 5 s, not the 60 s idle timeout, and before the driver answers.
  const ended = await Promise.race([done.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => { resolve(false) }, 5000))])
  t.true(ended, 'serve() stopped waiting for the driver when the client left')
  // The metadata comes after the client left: nothing more is asked of the driver.
  release()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.deepEqual(calls, ['getMetaData a.bin'])
})

test('custom driver: one written in JavaScript that answers with plain values (no promises), as `await` allows, is served', async (t) => {
  const bytes = Buffer.alloc(1000, 0x70)
  const driver = {
    getMetaData: () => ({ contentLength: bytes.length, etag: '"plain"' }),
    getStream: () => Readable.from([bytes])
  } as unknown as DriverContract
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(new StorageFile(driver, 'plain.bin')) }))
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 200)
  t.deepEqual(res.body, bytes)
})

test('StorageFile keeps no failed stat(): the storage failing once is that call\'s answer, and the next stat() asks it again', async (t) => {
  const objects: Record<string, { bytes: Buffer }> = {}
  const { driver, calls } = customDriver(objects)
  const file = new StorageFile(driver, 'late.bin')
  await t.throwsAsync(file.stat(), { message: /not found/ })
  objects['late.bin'] = { bytes: Buffer.from('here now') }
  t.is((await file.stat()).size, 8)
  t.is((await file.stat()).size, 8)
  t.deepEqual(calls, ['getMetaData late.bin', 'getMetaData late.bin'])
})

test('StorageFile shared by requests: a client leaving while the stat() it started is pending does not fail the request that joined it', async (t) => {
  const bytes = Buffer.from('hello world\n')
  let calls = 0
  const driver = {
    getMetaData: async () => {
      calls++
      await new Promise((resolve) => setTimeout(resolve, 300))
      return { contentLength: bytes.length, contentType: 'text/plain', etag: '"v1"', lastModified: new Date('2026-01-01T00:00:00Z') }
    },
    getStream: async () => Readable.from([bytes])
  } as unknown as DriverContract
  const shared = new StorageFile(driver, 'report.txt')
  const errors: Array<Error & { status?: number }> = []
  const app = downloadApp((ctx) => { ctx.body = download(shared) })
  app.on('error', (error: Error & { status?: number }) => { errors.push(error) })
  const base = await listen(t, app)
  const { leftWithError, stayed } = await leavingBesideStaying(`${base}/`)
  t.true(leftWithError)
  t.is(stayed.status, 200)
  t.is(stayed.body.toString(), 'hello world\n')
  t.is(calls, 2)
  t.deepEqual(errors.filter((error) => (error.status ?? 500) >= 500), [])
})

test('flydrive driver: a stream that arrives after the adapter gave up (idleTimeout) and fails while it is closed (an fs stream of a file deleted meanwhile) does not end the process; the client has its 504', async (t) => {
  const { createReadStream } = await import('node:fs')
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = await mkdtemp(join(tmpdir(), 'kd-late-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'late.txt')
  await writeFile(path, 'hello\n')
  let delivered: () => void = () => {}
  const late = new Promise<void>((resolve) => { delivered = resolve })
  const driver = {
    async getMetaData () { return { contentType: 'text/plain', contentLength: 6, etag: '"x"', lastModified: new Date(Date.now() - 60_000) } },
    async getStream () {
      await new Promise((resolve) => setTimeout(resolve, 300))
      await rm(path, { force: true })
      // No 'error' listener of the driver's own: the open fails after the adapter closed it.
      setTimeout(delivered, 100)
      return createReadStream(path)
    }
  } as unknown as DriverContract
  const app = downloadApp((ctx) => { ctx.body = new StorageFile(driver, 'late.txt', { idleTimeout: 100 }) })
  const res = await fetch(`${await listen(t, app)}/`)
  t.is(res.status, 504)
  t.is(await res.text(), 'Gateway Timeout')
  // The late stream's failure has had its turn: an unhandled 'error' would have ended this worker.
  await late
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.pass()
})
