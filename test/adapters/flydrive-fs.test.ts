import { mkdtemp, mkdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import test from 'ava'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import Koa from 'koa'
import { StorageFile, storage } from '../../adapters/flydrive/index.ts'
import { fileContract, rawRequest } from '../helpers/file-contract.ts'
import { listen } from '../helpers/listen.ts'

let root = ''
let disk: Disk

test.serial.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-fs-disk-'))
  disk = new Disk(new FSDriver({ location: root, visibility: 'private' }))
})
test.after.always(async () => { await rm(root, { recursive: true, force: true }) })

fileContract(test, 'flydrive fs', () => ({
  file: (key) => storage(disk).file(key),
  declaredTypes: false,
  put: async (key, bytes) => {
    await mkdir(dirname(join(root, key)), { recursive: true })
    await writeFile(join(root, key), bytes)
    // a file at rest: its ETag is weak while the second of its mtime lasts (etag.ts statEtag)
    await utimes(join(root, key), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000))
  }
}), { server: false })

test('flydrive fs: path is the absolute path inside the disk location; no url by default', (t) => {
  const file = new StorageFile(disk, 'docs/ünïcödé résumé.txt')
  t.is(file.path, join(root, 'docs/ünïcödé résumé.txt'))
  t.is(file.url, undefined)
  t.is(file.name, 'ünïcödé résumé.txt')
})

test('flydrive fs: a refused key has neither path nor url, so no offload rule can match it', async (t) => {
  for (const key of ['../etc/passwd', '/etc/passwd', 'a/../../b', 'a\\b', 'a\0b', '', 'a/./b']) {
    const file = new StorageFile(disk, key)
    t.is(file.path, undefined, key)
    t.is(file.url, undefined, key)
    const error = await t.throwsAsync(file.stat())
    t.is((error as { code?: string }).code, 'E_NOT_FOUND', key)
  }
})

test('flydrive fs: stat() gives a strong mtime+size ETag (flydrive\'s own is weak) and no declared type', async (t) => {
  const file = storage(disk).file('contract/object.bin')
  const stat = await file.stat()
  t.is(stat.size, 262144)
  t.regex(stat.etag ?? '', /^"[0-9a-f]+-[0-9a-f]+"$/)
  t.is(stat.contentType, undefined)
  t.true(stat.lastModified instanceof Date)
})

test('flydrive fs: open(range) reads just that range', async (t) => {
  await writeFile(join(root, 'digits.txt'), '0123456789')
  const file = storage(disk).file('digits.txt')
  const stream = await file.open({ start: 2, end: 5 })
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  t.is(Buffer.concat(chunks).toString(), '2345')
})

test('flydrive fs: open() reads in the chunkSize serve() hands it, like a PathFile', async (t) => {
  await writeFile(join(root, 'chunked.bin'), Buffer.alloc(512 * 1024, 7))
  const file = storage(disk).file('chunked.bin')
  await file.stat()
  const sizes = async (chunkSize?: number): Promise<number[]> => {
    const out: number[] = []
    for await (const chunk of await file.open(undefined, { chunkSize })) out.push((chunk as Buffer).length)
    return out
  }
  t.deepEqual(await sizes(64 * 1024), Array(8).fill(64 * 1024))
  t.deepEqual(await sizes(), [256 * 1024, 256 * 1024])
})

test('flydrive fs: storage() url option gives file.url from a base URL, encoded per segment', (t) => {
  const media = storage(disk, { url: 'https://cdn.example.com/media/' })
  t.is(media.file("odd/(1) a+b@c'd%e&f.bin").url, 'https://cdn.example.com/media/odd/%281%29%20a%2Bb%40c%27d%25e%26f.bin')
  t.is(media.file('../x').url, undefined)
})

test('flydrive fs: options are validated at setup with TypeErrors naming the option', (t) => {
  t.throws(() => storage(disk, { url: 'not a url' }), { instanceOf: TypeError, message: /storage\(\): url/ })
  // The key is resolved against the base, which would drop its query (a CDN token) from every URL.
  for (const base of ['https://cdn.example.com/media/?token=abc', 'https://cdn.example.com/media/#x', 'https://cdn.example.com/media/?']) {
    t.throws(() => storage(disk, { url: base }), { instanceOf: TypeError, message: /^storage\(\): a url base must have no query or fragment/ }, base)
  }
  t.is(storage(disk, { url: (key) => `https://cdn.example.com/media/${encodeURIComponent(key)}?token=abc` }).file('a b.txt').url, 'https://cdn.example.com/media/a%20b.txt?token=abc')
  t.throws(() => new StorageFile(disk, 'a', { idleTimeout: 0 }), { instanceOf: TypeError, message: /idleTimeout/ })
  // Past setTimeout()'s limit the timer would fire at once: every request a 504.
  t.throws(() => new StorageFile(disk, 'a', { idleTimeout: 2 ** 31 }), { instanceOf: TypeError, message: /^StorageFile\(\): idleTimeout must be an integer from 1 to 2147483647 \(ms\)$/ })
  t.notThrows(() => new StorageFile(disk, 'a', { idleTimeout: 2 ** 31 - 1 }))
  t.throws(() => new StorageFile(disk, 'a', { nope: 1 } as never), { instanceOf: TypeError, message: /unknown option "nope"/ })
  t.throws(() => new StorageFile({} as never, 'a'), { instanceOf: TypeError, message: /flydrive Disk/ })
})

test('flydrive fs: without serve()/downloads(), a StorageFile is never answered as JSON (its key and absolute path)', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kd-json-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  await writeFile(join(root, 'private.txt'), 'private')
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use((ctx) => { ctx.body = storage(new Disk(new FSDriver({ location: root, visibility: 'private' }))).file('private.txt') })
  const res = await rawRequest(await listen(t, app))
  t.is(res.status, 500)
  t.false(res.body.toString('latin1').includes(root))
  t.false(res.body.toString('latin1').includes('private.txt'))
  t.regex(errors[0]?.message ?? '', /^koa-downloads: a StorageFile reached a JSON serialiser/)
})
