// One PathFile instance serving many requests (made once at startup, not per request): each
// response's bytes must be those of the file its own stat() described, whatever another request's
// stat() saw in between.
import test from 'ava'
import { once } from 'node:events'
import { mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises'
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

test('path-file shared: the parts of a multipart response all come from the version its headers describe', async t => {
  const path = join(temp, 'shared-multipart.bin')
  const size = 32 * 1024 * 1024
  const half = size / 2
  await version(path, 0x01, size, 1700000000) // bytes that no part header contains
  const shared = new PathFile(path) // made once, served to every request
  const url = new URL(await listen(t, downloadApp((ctx) => { ctx.body = shared })))

  // Request A: two parts of about 16 MiB (apart: close ranges are merged into one); the client reads nothing until told, so the server is held in the
  // first part (far more than the socket buffers take), and the second part is opened later.
  const a = request({ host: url.hostname, port: url.port, path: '/', headers: { Range: `bytes=0-${half - 1},${half + 65536}-${size - 1}` } })
  a.end()
  const [res] = await once(a, 'response') as [IncomingMessage]
  res.pause()
  t.is(res.statusCode, 206)
  t.regex(String(res.headers['content-type']), /^multipart\/byteranges; boundary=/)
  t.is(res.headers.etag, etagOf(1700000000, size))

  // Meanwhile the file is replaced (written beside it, renamed over it: A's open descriptor keeps
  // reading the old one), and request B stat()s the same instance.
  await version(`${path}.new`, 0x02, size, 1700000500)
  await rename(`${path}.new`, path)
  const b = await fetchBytes(url.origin, '/', 'head')
  t.is(b.status, 200)
  t.is(b.headers.etag, etagOf(1700000500, size))

  // A then reads on: its first part from the old file, and its second part must not be the new
  // file under the old ETag. The headers have gone out, so the response is cut short there
  // (never completed with mixed bytes).
  const received: Buffer[] = []
  res.on('data', (chunk: Buffer) => received.push(chunk))
  const outcome = await new Promise<string>((resolve) => {
    res.on('end', () => { resolve(res.complete ? 'complete' : 'cut') })
    res.on('error', () => { resolve('cut') })
    res.resume()
  })
  const body = Buffer.concat(received)
  t.is(outcome, 'cut', `A received ${body.length} bytes, ${body.includes(0x02) ? 'some' : 'none'} of the new version`)
  t.false(body.includes(0x02), 'no byte of the new version under the old ETag')
  // The first part came from the old file up to the cut. The cut comes when the second part fails,
  // and destroying the response drops what Node still held for the socket (up to a chunk or two),
  // so "whole" cannot be promised: all but at most 1 MiB of it.
  const head = body.indexOf('\r\n\r\n') + 4
  const first = body.subarray(head, head + half)
  t.true(head > 4 && first.length > half - 1024 * 1024, `the first part went out (${first.length} of ${half} bytes)`)
  t.true(first.equals(Buffer.alloc(first.length, 0x01)), 'every byte of it from the old version')

  // A request after the change gets the new version whole.
  const c = await fetchBytes(url.origin, '/').set('Range', 'bytes=0-3,5-8')
  t.is(c.status, 206)
  t.true((c.body as Buffer).includes(Buffer.alloc(4, 0x02)))
  t.false((c.body as Buffer).includes(0x01))
})

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
