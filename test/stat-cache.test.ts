// StatCache: what PathFile's stat() found, shared for maxAge ms by the PathFiles given it. Only
// responses that send no byte of the file (304, 412, HEAD) may describe a file as it was; every
// response that sends bytes opens and checks the file itself. Real files, real servers: a cached
// answer shows itself by describing a file that is no longer there, or no longer that size.
import test from 'ava'
import { mkdir, mkdtemp, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import request from 'supertest'
import { apache } from '../source/backends/apache.ts'
import { nginx } from '../source/backends/nginx.ts'
import { downloads } from '../source/downloads.ts'
import Koa from 'koa'
import { PathFile } from '../source/path-file.ts'
import { sendfile } from '../source/sendfile.ts'
import { StatCache, statWasCached } from '../source/stat-cache.ts'
import type { FileStat, StatOptions } from '../source/types.ts'
import { utimesSync, writeFileSync } from 'node:fs'
import { binaryParser, downloadApp } from './helpers/koa.ts'

let temp = ''
let outside = ''
test.before(async () => {
  temp = await mkdtemp(join(tmpdir(), 'kd-stat-cache-'))
  outside = await mkdtemp(join(tmpdir(), 'kd-stat-cache-outside-'))
  await writeFile(join(outside, 'secret.txt'), 'outside the root\n')
})
test.after.always(async () => {
  for (const dir of [temp, outside]) if (dir !== '') await rm(dir, { recursive: true, force: true })
})

const etagOf = (mtime: number, size: number): string => `"${mtime.toString(16)}-${size.toString(16)}"`

async function version (path: string, body: string, mtime: number): Promise<void> {
  await writeFile(path, body)
  await utimes(path, mtime, mtime)
}

/** A fresh root per test, with `a.txt` (mtime 1700000000) in it. */
async function rootWithFile (name: string, body = 'first version\n'): Promise<string> {
  const root = join(temp, name)
  await mkdir(root)
  await version(join(root, 'a.txt'), body, 1700000000)
  return root
}

function app (root: string, cache: StatCache, options: { followSymlinks?: boolean } = {}): ReturnType<typeof request> {
  return request(downloadApp((ctx) => {
    ctx.body = new PathFile(ctx.path, { root, statCache: cache, ...options })
  }).callback())
}

test('stat-cache: a HEAD within maxAge describes the file stat() saw, without looking at it again; after maxAge it looks again', async t => {
  const root = await rootWithFile('head')
  const cache = new StatCache({ maxAge: 1500 })
  const client = app(root, cache)
  const first = await client.head('/a.txt')
  t.is(first.status, 200)
  t.is(first.headers['content-length'], '14')
  t.is(first.headers.etag, etagOf(1700000000, 14))
  t.is(cache.size, 1)
  await unlink(join(root, 'a.txt'))
  // Gone, but within maxAge: the cached stat answers.
  const cached = await client.head('/a.txt')
  t.is(cached.status, 200)
  t.is(cached.headers['content-length'], '14')
  t.is(cached.headers.etag, etagOf(1700000000, 14))
  await sleep(1600)
  t.is((await client.head('/a.txt')).status, 404)
  t.is(cache.size, 0)
})

test('stat-cache: a revalidation within maxAge is a 304 from the cache; a rewrite shows after maxAge', async t => {
  const root = await rootWithFile('revalidate')
  const cache = new StatCache({ maxAge: 1500 })
  const client = app(root, cache)
  const etag = etagOf(1700000000, 14)
  t.is((await client.get('/a.txt').set('If-None-Match', etag)).status, 304)
  await version(join(root, 'a.txt'), 'second version, longer\n', 1700000100)
  // The trade StatCache documents: up to maxAge after a change, the old validators still match.
  const stale = await client.get('/a.txt').set('If-None-Match', etag)
  t.is(stale.status, 304)
  t.is(stale.headers.etag, etag)
  await sleep(1600)
  const fresh = await client.get('/a.txt').set('If-None-Match', etag).buffer(true).parse(binaryParser)
  t.is(fresh.status, 200)
  t.is(fresh.headers.etag, etagOf(1700000100, 23))
  t.is(fresh.headers['content-length'], '23')
  t.is((fresh.body as Buffer).toString(), 'second version, longer\n')
})

test('stat-cache: a response that sends bytes never sends them under stale validators: a file rewritten within maxAge is planned again from the file itself', async t => {
  const root = await rootWithFile('bytes')
  const cache = new StatCache({ maxAge: 60_000 })
  const client = app(root, cache)
  t.is((await client.head('/a.txt')).headers.etag, etagOf(1700000000, 14))
  await version(join(root, 'a.txt'), 'second version, longer\n', 1700000100)
  const newTag = etagOf(1700000100, 23)
  // A conditional GET whose tag no longer matches the cached one: 200 with the new file.
  const changed = await client.get('/a.txt').set('If-None-Match', '"other"').buffer(true).parse(binaryParser)
  t.is(changed.status, 200)
  t.is(changed.headers.etag, newTag)
  t.is(changed.headers['content-length'], '23')
  t.is((changed.body as Buffer).toString(), 'second version, longer\n')
  // ...and the cache now holds what that open found: a HEAD shows the new file.
  t.is((await client.head('/a.txt')).headers.etag, newTag)

  await version(join(root, 'a.txt'), 'third!\n', 1700000200)
  // A range under an If-Range holding the cached (old) tag: the cache says it matches, the open
  // finds another file, and the request planned again sends the whole new file (RFC 9110 §13.1.5).
  const ranged = await client.get('/a.txt').set('Range', 'bytes=0-3').set('If-Range', newTag).buffer(true).parse(binaryParser)
  t.is(ranged.status, 200)
  t.is(ranged.headers.etag, etagOf(1700000200, 7))
  t.is((ranged.body as Buffer).toString(), 'third!\n')

  await version(join(root, 'a.txt'), 'F' + '.'.repeat(198) + 'V\n', 1700000300)
  t.is((await client.head('/a.txt')).headers.etag, etagOf(1700000200, 7)) // cached, no bytes sent
  // Several ranges (stat() without a read announced, so from the cache): the parts are the new file's.
  const multi = await client.get('/a.txt').set('Range', 'bytes=0-0,199-199').buffer(true).parse(binaryParser)
  t.is(multi.status, 206)
  t.regex(multi.headers['content-type'] as string, /^multipart\/byteranges; boundary=/)
  t.is(multi.headers.etag, etagOf(1700000300, 201))
  const text = (multi.body as Buffer).toString()
  t.true(text.includes('Content-Range: bytes 0-0/201\r\n\r\nF\r\n'), text)
  t.true(text.includes('Content-Range: bytes 199-199/201\r\n\r\nV\r\n'), text)
})

test('stat-cache: a file removed within maxAge is a 404 for a GET, and forgotten: the next HEAD is a 404 too', async t => {
  const root = await rootWithFile('removed')
  const cache = new StatCache({ maxAge: 60_000 })
  const client = app(root, cache)
  t.is((await client.head('/a.txt')).status, 200)
  await unlink(join(root, 'a.txt'))
  t.is((await client.head('/a.txt')).status, 200) // cached
  t.is((await client.get('/a.txt').set('If-None-Match', '"other"')).status, 404)
  t.is((await client.head('/a.txt')).status, 404)
  t.is(cache.size, 0)
  // The same through a plain GET (its stat() opens the file: no cached answer, the entry dropped).
  await version(join(root, 'b.txt'), 'bee\n', 1700000000)
  t.is((await client.head('/b.txt')).status, 200)
  await unlink(join(root, 'b.txt'))
  t.is((await client.get('/b.txt')).status, 404)
  t.is((await client.head('/b.txt')).status, 404)
  t.is(cache.size, 0)
})

test('stat-cache: a file swapped for a symlink out of the root within maxAge is never read: the GET is a 404', async t => {
  const root = await rootWithFile('swapped')
  const cache = new StatCache({ maxAge: 60_000 })
  const client = app(root, cache)
  t.is((await client.head('/a.txt')).status, 200)
  await unlink(join(root, 'a.txt'))
  await symlink(join(outside, 'secret.txt'), join(root, 'a.txt'))
  // The cached HEAD describes the file that was checked (no byte of anything is sent)...
  t.is((await client.head('/a.txt')).headers.etag, etagOf(1700000000, 14))
  // ...but any response with bytes opens the path, and the descriptor is outside the root.
  for (const headers of [{}, { 'If-None-Match': '"other"' }, { Range: 'bytes=0-1,3-4' }]) {
    const response = await client.get('/a.txt').set(headers).buffer(true).parse(binaryParser)
    t.is(response.status, 404, JSON.stringify(headers))
    t.false((response.body as Buffer).toString().includes('outside the root'))
  }
})

test('stat-cache: PathFiles that confine differently do not share entries (followSymlinks fills the cache, the confined file still refuses the symlink)', async t => {
  const root = await rootWithFile('modes')
  await symlink(join(outside, 'secret.txt'), join(root, 'link.txt'))
  const cache = new StatCache()
  const follow = app(root, cache, { followSymlinks: true })
  const confined = app(root, cache)
  const followed = await follow.head('/link.txt')
  t.is(followed.status, 200)
  t.is(followed.headers['content-length'], '17')
  t.is((await confined.head('/link.txt')).status, 404)
  t.is((await confined.get('/link.txt').set('If-None-Match', '"x"')).status, 404)
  t.is(cache.size, 1)
})

test('stat-cache: maxEntries bounds it, the oldest look making room; clear() forgets everything', async t => {
  const root = await rootWithFile('entries')
  await version(join(root, 'b.txt'), 'bee\n', 1700000000)
  const cache = new StatCache({ maxEntries: 1 })
  const client = app(root, cache)
  t.is((await client.head('/a.txt')).status, 200)
  t.is((await client.head('/b.txt')).status, 200)
  t.is(cache.size, 1)
  await rename(join(root, 'a.txt'), join(root, 'a.moved'))
  await rename(join(root, 'b.txt'), join(root, 'b.moved'))
  t.is((await client.head('/a.txt')).status, 404) // pushed out by b.txt
  t.is((await client.head('/b.txt')).status, 200) // still cached
  cache.clear()
  t.is(cache.size, 0)
  t.is((await client.head('/b.txt')).status, 404)
})

test('stat-cache: a response that opens a cached file renews its entry (the newest look is the last pushed out)', async t => {
  const root = await rootWithFile('renew')
  for (const name of ['b.txt', 'c.txt']) await version(join(root, name), 'bee\n', 1700000000)
  const cache = new StatCache({ maxEntries: 2 })
  const client = app(root, cache)
  t.is((await client.head('/a.txt')).status, 200)
  t.is((await client.head('/b.txt')).status, 200)
  // a.txt from the cache, then opened and found unchanged: its entry is renewed, b.txt is now the oldest.
  const got = await client.get('/a.txt').set('If-None-Match', '"other"').buffer(true).parse(binaryParser)
  t.is(got.status, 200)
  t.is((got.body as Buffer).toString(), 'first version\n')
  t.is((await client.head('/c.txt')).status, 200)
  t.is(cache.size, 2)
  await unlink(join(root, 'a.txt'))
  await unlink(join(root, 'b.txt'))
  t.is((await client.head('/a.txt')).status, 200) // still cached
  t.is((await client.head('/b.txt')).status, 404) // pushed out by c.txt
})

test('stat-cache: a GET refreshes the entry with what its open found', async t => {
  const root = await rootWithFile('refresh')
  const cache = new StatCache({ maxAge: 60_000 })
  const client = app(root, cache)
  t.is(cache.size, 0)
  const got = await client.get('/a.txt').buffer(true).parse(binaryParser)
  t.is(got.status, 200)
  t.is(cache.size, 1)
  await unlink(join(root, 'a.txt'))
  t.is((await client.head('/a.txt')).headers.etag, etagOf(1700000000, 14))
})

test('stat-cache: sendfile() takes a statCache', async t => {
  const root = await rootWithFile('sendfile')
  const cache = new StatCache({ maxAge: 60_000 })
  const server = request(downloadApp(async (ctx) => { await sendfile(ctx, ctx.path, { root, statCache: cache }) }).callback())
  t.is((await server.head('/a.txt')).status, 200)
  await unlink(join(root, 'a.txt'))
  t.is((await server.head('/a.txt')).status, 200)
  t.is((await server.get('/a.txt')).status, 404)
})

test('stat-cache: options are checked', t => {
  t.throws(() => new StatCache({ maxAge: 0 }), { instanceOf: TypeError, message: 'StatCache: maxAge must be an integer from 1 to 2147483647 (ms)' })
  t.throws(() => new StatCache({ maxAge: 1.5 }), { instanceOf: TypeError, message: /maxAge/ })
  t.throws(() => new StatCache({ maxAge: 2_147_483_648 }), { instanceOf: TypeError, message: /maxAge/ })
  t.throws(() => new StatCache({ maxEntries: 0 }), { instanceOf: TypeError, message: 'StatCache: maxEntries must be a positive integer' })
  t.throws(() => new StatCache({ maxage: 5 } as never), { instanceOf: TypeError, message: 'StatCache: unknown option "maxage" (allowed: maxAge, maxEntries)' })
  t.throws(() => new StatCache(null as never), { instanceOf: TypeError, message: 'StatCache: options must be an object' })
  const cache = new StatCache()
  t.is(cache.maxAge, 1000)
  t.is(cache.maxEntries, 10_000)
  t.throws(() => new PathFile('a.txt', { statCache: {} as never }), { instanceOf: TypeError, message: 'PathFile: statCache must be a StatCache' })
  // A path refused at construction (outside the root) never reaches the cache.
  t.is(new PathFile('../x', { root: temp, statCache: cache }).path, undefined)
  t.is(cache.size, 0)
})

test('stat-cache: an offload never takes its confinement or its validators from the cache (X-Sendfile rules; nginx with a Range and an If-Range date)', async t => {
  const root = await rootWithFile('offload')
  await version(join(root, 'v.txt'), 'version one\n', 1700000000)
  const cache = new StatCache({ maxAge: 60_000 })
  const offloading = (rule: ReturnType<typeof apache> | ReturnType<typeof nginx>): ReturnType<typeof request> => {
    const app = new Koa()
    app.silent = true
    app.use(downloads({ rules: [rule] }))
    app.use((ctx) => { ctx.body = new PathFile(ctx.path, { root, statCache: cache }) })
    return request(app.callback())
  }
  const viaApache = offloading(apache({ sourceDir: root, destinationDir: root }))
  const viaNginx = offloading(nginx({ sourceDir: root, destinationUrl: '/protected/' }))
  // In the cache (a HEAD of the streaming app, the cache's own kind of answer).
  t.is((await app(root, cache).head('/v.txt')).status, 200)
  // Replaced: the X-Sendfile response carries the new file's validators, which the proxy answers If-Range with.
  await version(join(root, 'v.txt'), 'version two, longer\n', 1700000100)
  const replaced = await viaApache.get('/v.txt')
  t.is(replaced.status, 200)
  t.is(replaced.headers['x-sendfile'], join(root, 'v.txt'))
  t.is(replaced.headers.etag, etagOf(1700000100, 20))
  // Swapped for a symlink out of the root: never handed to a proxy, which would follow it.
  await version(join(root, 'b.txt'), 'bee\n', 1700000000)
  t.is((await app(root, cache).head('/b.txt')).status, 200)
  await unlink(join(root, 'b.txt'))
  await symlink(join(outside, 'secret.txt'), join(root, 'b.txt'))
  t.is((await app(root, cache).head('/b.txt')).status, 200) // stale, as documented: no bytes
  const sendfile = await viaApache.get('/b.txt')
  t.is(sendfile.status, 404)
  t.is(sendfile.headers['x-sendfile'], undefined)
  await version(join(root, 'c.txt'), 'sea\n', 1700000000)
  t.is((await app(root, cache).head('/c.txt')).status, 200)
  await unlink(join(root, 'c.txt'))
  await symlink(join(outside, 'secret.txt'), join(root, 'c.txt'))
  t.is((await app(root, cache).head('/c.txt')).status, 200)
  const accel = await viaNginx.get('/c.txt').set('Range', 'bytes=0-3').set('If-Range', 'Tue, 14 Nov 2023 22:13:20 GMT')
  t.is(accel.status, 404)
  t.is(accel.headers['x-accel-redirect'], undefined)
})

test('stat-cache: a 416 is never judged on a cached size (a file grown since is served its range)', async t => {
  const root = await rootWithFile('grown', '0123456789\n')
  const cache = new StatCache({ maxAge: 60_000 })
  const client = app(root, cache)
  t.is((await client.head('/a.txt')).headers['content-length'], '11')
  await version(join(root, 'a.txt'), '0123456789\n'.repeat(10), 1700000100)
  const newTag = etagOf(1700000100, 110)
  for (const headers of [{ Range: 'bytes=20-20,105-109' }, { Range: 'bytes=20-29', 'If-None-Match': '"other"' }, { Range: 'bytes=20-29', 'If-Unmodified-Since': 'Fri, 01 Jan 2100 00:00:00 GMT' }]) {
    const response = await client.get('/a.txt').set(headers).buffer(true).parse(binaryParser)
    t.is(response.status, 206, JSON.stringify(headers))
    t.is(response.headers.etag, newTag)
    const body = (response.body as Buffer).toString()
    t.true(headers.Range.includes(',') ? body.includes('Content-Range: bytes 20-20/110\r\n\r\n9\r\n') && body.includes('Content-Range: bytes 105-109/110\r\n\r\n6789\n\r\n') : body === '9\n01234567', body)
  }
  // A range past the end of the file as it is now is still a 416, with its current size.
  const past = await client.get('/a.txt').set('Range', 'bytes=500-600,700-800')
  t.is(past.status, 416)
  t.is(past.headers['content-range'], 'bytes */110')
})

test('stat-cache: one entry per file, whatever the path\'s spelling; renewing the newest entry of a full cache pushes nothing out', async t => {
  const root = await rootWithFile('spelling')
  await version(join(root, 'b.txt'), 'bee\n', 1700000000)
  const cache = new StatCache({ maxEntries: 2, maxAge: 60_000 })
  await new PathFile('a.txt', { root, statCache: cache }).stat()
  for (const spelling of ['/a.txt', './a.txt', 'x/../a.txt', join(root, 'a.txt')]) await new PathFile(spelling, { root, statCache: cache }).stat()
  t.is(cache.size, 1)
  await new PathFile('b.txt', { root, statCache: cache }).stat()
  // b.txt, the newest, opened and renewed while the cache is full: a.txt stays.
  const b = new PathFile('b.txt', { root, statCache: cache })
  t.is((await b.read(undefined, { stat: await b.stat() })).toString(), 'bee\n')
  t.is(cache.size, 2)
  await unlink(join(root, 'a.txt'))
  t.is((await new PathFile('./a.txt', { root, statCache: cache }).stat()).size, 14)
})

/** A wrapper as the docs show them (docs/migrating-from-koa-send.md): stat() copies what PathFile's gives. */
class Copying extends PathFile {
  override async stat (options?: StatOptions): Promise<FileStat> {
    return { ...await super.stat(options) }
  }
}

/** A wrapper whose stat() passes no options on to PathFile's (TypeScript allows it). */
class Forgetful extends PathFile {
  override async stat (): Promise<FileStat> {
    return { ...await super.stat(), contentType: 'text/plain' }
  }
}

test('stat-cache: the mends hold for PathFile subclasses, whether their stat() copies the result or drops its options', async t => {
  for (const Wrapper of [Copying, Forgetful]) {
    const root = await rootWithFile(`subclass-${Wrapper.name}`, '0123456789\n')
    const cache = new StatCache({ maxAge: 60_000 })
    const streaming = request(downloadApp((ctx) => { ctx.body = new Wrapper(ctx.path, { root, statCache: cache }) }).callback())
    t.is((await streaming.head('/a.txt')).headers['content-length'], '11')
    await version(join(root, 'a.txt'), '0123456789\n'.repeat(10), 1700000100)
    // A 416 is judged on the current size.
    const grown = await streaming.get('/a.txt').set('Range', 'bytes=20-29').set('If-None-Match', '"other"').buffer(true).parse(binaryParser)
    t.is(grown.status, 206, Wrapper.name)
    t.is(grown.headers['content-range'], 'bytes 20-29/110')
    // An offload looks at the file itself: a symlink out of the root is not handed to the proxy.
    await version(join(root, 'b.txt'), 'bee\n', 1700000000)
    t.is((await streaming.head('/b.txt')).status, 200)
    await unlink(join(root, 'b.txt'))
    await symlink(join(outside, 'secret.txt'), join(root, 'b.txt'))
    const app = new Koa()
    app.silent = true
    app.use(downloads({ rules: [apache({ sourceDir: root, destinationDir: root })] }))
    app.use((ctx) => { ctx.body = new Wrapper(ctx.path, { root, statCache: cache }) })
    const offloaded = await request(app.callback()).get('/b.txt')
    t.is(offloaded.status, 404, Wrapper.name)
    t.is(offloaded.headers['x-sendfile'], undefined)
  }
})

test('stat-cache: a plan made from a stale entry does not use up the one retry a file changed during the request gets', async t => {
  const root = await rootWithFile('retry')
  const path = join(root, 'a.txt')
  let mtime = 1700000000
  const rewrite = (body: string): void => {
    writeFileSync(path, body)
    mtime += 10
    utimesSync(path, mtime, mtime)
  }
  let armed = false
  // A writer racing the request once: the file is rewritten right after its first look at the file itself.
  class Raced extends PathFile {
    override async stat (options?: StatOptions): Promise<FileStat> {
      const stat = await super.stat(options)
      if (armed && !statWasCached(this)) {
        armed = false
        rewrite('written during the request\n')
      }
      return stat
    }
  }
  const cache = new StatCache({ maxAge: 60_000 })
  const client = request(downloadApp((ctx) => { ctx.body = new Raced(ctx.path, { root, statCache: cache }) }).callback())
  t.is((await client.get('/a.txt').set('If-None-Match', '"x"')).status, 200)
  rewrite('version two, written before the request\n')
  armed = true
  const raced = await client.get('/a.txt').set('If-None-Match', '"x"').buffer(true).parse(binaryParser)
  t.is(raced.status, 200)
  t.is((raced.body as Buffer).toString(), 'written during the request\n')
  t.is(raced.headers.etag, etagOf(mtime, 27))
})
