// One PathFile instance serving many requests (made once at startup, not per request): each
// response's bytes must be those of the file its own stat() described, whatever another request's
// stat() saw in between.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { once } from 'node:events'
import { appendFile, mkdtemp, open, rename, rm, utimes, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DownloadError } from '../source/errors.ts'
import { PathFile } from '../source/path-file.ts'
import { downloadApp } from './helpers/koa.ts'
import { fetchBytes, listen } from './helpers/listen.ts'

let temp = ''
test.before(async () => {
  temp = await mkdtemp(join(tmpdir(), 'kd-path-file-shared-'))
})
test.after.always(async () => {
  if (temp !== '') await rm(temp, { recursive: true, force: true })
})

const etagOf = (mtime: number, size: number): string => `"${mtime.toString(16)}-${size.toString(16)}"`

async function version (path: string, fill: number, size: number, mtime: number): Promise<void> {
  await writeFile(path, Buffer.alloc(size, fill))
  await utimes(path, mtime, mtime)
}

for (const [label, change] of [
  ['rewritten in place (same size, new mtime)', async (path: string) => { await version(path, 0x62, 4096, 1700000500) }],
  ['replaced by rename (same size and mtime, new inode)', async (path: string) => {
    await version(`${path}.new`, 0x62, 4096, 1700000000)
    await rename(`${path}.new`, path)
  }]
] as const) {
  test(`path-file shared: open()/read() given an earlier stat() refuse a file ${label} after it, whatever a later stat() saw`, async t => {
    for (const root of [undefined, temp]) {
      const path = join(temp, `api-${root === undefined ? 'plain' : 'rooted'}-${label.slice(0, 9)}.bin`)
      await version(path, 0x61, 4096, 1700000000)
      const file = new PathFile(path, { root })
      const first = await file.stat()
      t.is(first.etag, etagOf(1700000000, 4096))
      await change(path)
      const second = await file.stat() // another request, on the same instance
      for (const call of [() => file.open(undefined, { stat: first }), () => file.read(undefined, { stat: first }), () => file.read({ start: 0, end: 9 }, { stat: first })]) {
        const error = await t.throwsAsync(call())
        t.true(error instanceof DownloadError && error.code === 'E_CHANGED', `root ${String(root)}: ${String(error?.message)}`)
      }
      // The later stat()'s own response reads the new bytes; so does a caller that passes no stat
      // (the last stat() of the instance, as before).
      t.true((await file.read(undefined, { stat: second })).equals(Buffer.alloc(4096, 0x62)))
      t.true((await file.read()).equals(Buffer.alloc(4096, 0x62)))
    }
  })
}

test('path-file shared: a descriptor opened ahead for one request is not handed to another request planned on an older stat()', async t => {
  const path = join(temp, 'ahead.bin')
  await version(path, 0x61, 4096, 1700000000)
  const file = new PathFile(path, { root: temp })
  const older = await file.stat() // request A, planned on the old file
  await version(`${path}.new`, 0x62, 4096, 1700000500)
  await rename(`${path}.new`, path)
  await file.stat({ willRead: 'whole' }) // request B opens the new file ahead, in this same turn
  // A reads now: the held descriptor is of another file than A's stat() described.
  const error = await t.throwsAsync(file.read(undefined, { stat: older }))
  t.true(error instanceof DownloadError && error.code === 'E_CHANGED', String(error?.message))
})

test('path-file shared: a stat() result of another instance is not taken as this one\'s', async t => {
  const a = join(temp, 'a.txt')
  const b = join(temp, 'b.txt')
  await version(a, 0x61, 10, 1700000000)
  await version(b, 0x62, 20, 1700000000)
  const fileA = new PathFile(a)
  const fileB = new PathFile(b)
  await fileA.stat()
  const statB = await fileB.stat()
  // fileA reads its own file, checked against its own last stat(), never fileB's path.
  t.true((await fileA.read(undefined, { stat: statB })).equals(Buffer.alloc(10, 0x61)))
})

/**
 * Request A for two parts of about 16 MiB of a PathFile shared by every request (apart: close
 * ranges are merged into one); its client reads nothing until `change` has run and request B has
 * stat()ed the same instance, so the server is held in the first part (far more than the socket
 * buffers take). Then A reads on: how its response ends, and its body.
 */
async function heldMultipart (t: ExecutionContext, name: string, change: (path: string) => Promise<void>): Promise<{ outcome: string, body: Buffer, length: number, size: number }> {
  const path = join(temp, name)
  const size = 32 * 1024 * 1024
  const half = size / 2
  await version(path, 0x01, size, 1700000000) // bytes that no part header contains
  const shared = new PathFile(path) // made once, served to every request
  const url = new URL(await listen(t, downloadApp((ctx) => { ctx.body = shared })))
  const a = request({ host: url.hostname, port: url.port, path: '/', headers: { Range: `bytes=0-${half - 1},${half + 65536}-${size - 1}` } })
  a.end()
  const [res] = await once(a, 'response') as [IncomingMessage]
  res.pause()
  t.is(res.statusCode, 206)
  t.regex(String(res.headers['content-type']), /^multipart\/byteranges; boundary=/)
  t.is(res.headers.etag, etagOf(1700000000, size))
  await change(path)
  const b = await fetchBytes(url.origin, '/', 'head')
  t.is(b.status, 200)
  t.not(b.headers.etag, etagOf(1700000000, size), 'B sees the changed file')
  const received: Buffer[] = []
  res.on('data', (chunk: Buffer) => received.push(chunk))
  const outcome = await new Promise<string>((resolve) => {
    res.on('end', () => { resolve(res.complete ? 'complete' : 'cut') })
    res.on('error', () => { resolve('cut') })
    res.resume()
  })
  return { outcome, body: Buffer.concat(received), length: Number(res.headers['content-length']), size }
}

for (const [label, change] of [
  // Written beside it and renamed over it: A's descriptor keeps reading the old file, whatever B's stat() saw.
  ['replaced by rename', async (path: string) => {
    await version(`${path}.new`, 0x02, 32 * 1024 * 1024, 1700000500)
    await rename(`${path}.new`, path)
  }],
  // Appended to (a log): the bytes planned are still there, and the size grew with the mtime.
  ['appended to', async (path: string) => {
    await appendFile(path, Buffer.alloc(4096, 0x02))
    await utimes(path, 1700000500, 1700000500)
  }]
] as const) {
  test(`path-file shared: a file ${label} while a multipart response is sent: every part comes whole from the version its headers describe (one descriptor for all parts)`, async t => {
    const { outcome, body, length, size } = await heldMultipart(t, `${label.slice(0, 8)}-multipart.bin`, change)
    t.is(outcome, 'complete')
    t.is(body.length, length)
    t.false(body.includes(0x02), 'no byte of the new version under the old ETag')
    // Both parts whole, each byte of the old version at its place.
    const text = body.toString('latin1')
    const parts = [[0, size / 2 - 1], [size / 2 + 65536, size - 1]]
    for (const [start, end] of parts) {
      const head = `Content-Range: bytes ${start}-${end}/${size}\r\n\r\n`
      const at = text.indexOf(head) + head.length
      t.true(at > head.length, head)
      t.true(body.subarray(at, at + end! - start! + 1).equals(Buffer.alloc(end! - start! + 1, 0x01)))
      t.is(body.subarray(at + end! - start! + 1, at + end! - start! + 3).toString('latin1'), '\r\n')
    }
  })
}

for (const [label, rewrite] of [
  // writeFile(): truncated, then written again; A's next read may find the file short.
  ['truncated and written again', async (path: string, size: number) => { await writeFile(path, Buffer.alloc(size, 0x02)) }],
  // Written over without a truncation (same size): only the mtime tells, checked before the closing boundary.
  ['overwritten in place', async (path: string, size: number) => {
    const handle = await open(path, 'r+')
    try {
      await handle.write(Buffer.alloc(size, 0x02), 0, size, 0)
    } finally {
      await handle.close()
    }
  }]
] as const) {
  test(`path-file shared: a file ${label} while a multipart response is sent: the response is cut short, never completed with mixed bytes`, async t => {
    const name = `rewritten-multipart-${label.slice(0, 5)}.bin`
    const { outcome, body, size } = await heldMultipart(t, name, async (path) => {
      await rewrite(path, 32 * 1024 * 1024)
      await utimes(path, 1700000500, 1700000500)
    })
    t.is(outcome, 'cut', `A received ${body.length} bytes`)
    t.false(body.toString('latin1').endsWith('--\r\n'), 'no closing boundary')
    t.true(body.length < size, `${body.length} bytes`)

    // A request after the change gets the new version whole.
    const url = new URL(await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(join(temp, name)) })))
    const c = await fetchBytes(url.origin, '/').set('Range', 'bytes=0-3,500-508')
    t.is(c.status, 206)
    t.true((c.body as Buffer).includes(Buffer.alloc(9, 0x02)))
    t.false((c.body as Buffer).includes(0x01))
  })
}

test('path-file: a file replaced between stat() and the first part of a multipart response is planned again (a complete 206 of the new version, its ETag), not cut off', async t => {
  const path = join(temp, 'replaced-before-parts.bin')
  await version(path, 0x01, 8192, 1700000000) // both ranges below are inside the old version too
  let replaced = false
  // Replaces the file once, right after the first stat(): the stat() serve() plans with is the old version's.
  class ReplacedAfterStat extends PathFile {
    override async stat (options?: Parameters<PathFile['stat']>[0]): ReturnType<PathFile['stat']> {
      const stat = await super.stat(options)
      if (!replaced) {
        replaced = true
        await version(`${path}.new`, 0x02, 8192, 1700000500)
        await rename(`${path}.new`, path)
      }
      return stat
    }
  }
  const url = new URL(await listen(t, downloadApp((ctx) => { ctx.body = new ReplacedAfterStat(path) })))
  const res = await fetchBytes(url.origin, '/').set('Range', 'bytes=0-3,6000-6003')
  t.true(replaced)
  t.is(res.status, 206)
  t.is(res.headers.etag, etagOf(1700000500, 8192))
  const body = res.body as Buffer
  t.is(Number(res.headers['content-length']), body.length)
  t.true(body.toString('latin1').includes('Content-Range: bytes 6000-6003/8192\r\n\r\n\x02\x02\x02\x02'))
  t.false(body.includes(0x01), 'no byte of the old version')
})
