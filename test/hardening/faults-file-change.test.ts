import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'
import { link, mkdir, mkdtemp, realpath, rename, rm, symlink, truncate, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { PathFile } from '../../source/path-file.ts'
import type { ByteRange, DownloadFile, FileStat } from '../../source/types.ts'
import { clientRequest, fdsUnder, settle, split, startApp } from './fault-kit.ts'

const rejections: unknown[] = []
process.on('unhandledRejection', (reason) => { rejections.push(reason) })
test.after('no unhandled rejection while files change under the server', t => { t.deepEqual(rejections, []) })

let base = ''
let count = 0
test.before(async () => { base = await realpath(await mkdtemp(join(tmpdir(), 'kd-change-'))) })
test.after.always(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

/** A fresh root per test with `file.bin` of `size` random bytes, plus a decoy outside it. */
async function fresh (size: number): Promise<{ root: string, path: string, old: Buffer, decoy: Buffer }> {
  const dir = join(base, String(count++))
  const root = join(dir, 'root')
  await mkdir(root, { recursive: true })
  const old = randomBytes(size)
  const decoy = Buffer.from(`DECOY ${randomBytes(8).toString('hex')}`)
  await writeFile(join(root, 'file.bin'), old)
  // At rest: a file of the current second has a weak ETag, which turns strong when the second ends
  // (etag.ts statEtag) — between a response and the stat a test compares it with.
  await utimes(join(root, 'file.bin'), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000))
  await writeFile(join(dir, 'secret.txt'), decoy)
  return { root, path: join(root, 'file.bin'), old, decoy }
}

/** A PathFile with a hook that runs after each stat(): the moment between stat and open. */
class Hooked implements DownloadFile {
  readonly name = 'file.bin'
  readonly inner: PathFile
  readonly hook: (nth: number) => Promise<void>
  stats = 0
  constructor (root: string, hook: (nth: number) => Promise<void>) {
    this.inner = new PathFile('file.bin', { root })
    this.hook = hook
  }

  get path (): string | undefined { return this.inner.path }
  async stat (): Promise<FileStat> {
    const stat = await this.inner.stat()
    await this.hook(++this.stats)
    return stat
  }

  async open (range?: ByteRange): Promise<Readable> { return await this.inner.open(range) }
  async read (range?: ByteRange): Promise<Buffer> { return await this.inner.read(range) }
}

async function get (t: ExecutionContext, file: DownloadFile, headers: Record<string, string> = {}): Promise<ReturnType<typeof split> & { errors: Error[] }> {
  const app = await startApp((ctx) => { ctx.body = file })
  t.teardown(app.close)
  const { raw } = await clientRequest(app.port, '/', headers)
  return { ...split(raw), errors: app.errors }
}

for (const size of [1000, 3_000_000]) {
  const kind = size < 65536 ? 'small file (one read)' : 'large file (streamed)'

  test(`${kind} replaced by rename between stat and open: the new file is served under its own length and ETag, never under the old ones`, async t => {
    const { root, path } = await fresh(size)
    const replacement = randomBytes(size + 777)
    const file = new Hooked(root, async (nth) => {
      if (nth !== 1) return
      await writeFile(path + '.new', replacement)
      await utimes(path + '.new', new Date(Date.now() - 1_800_000), new Date(Date.now() - 1_800_000))
      await rename(path + '.new', path)
    })
    const res = await get(t, file)
    const now = await new PathFile(path).stat()
    t.is(res.status, 200)
    t.is(res.headers['content-length'], String(replacement.length))
    t.is(res.headers.etag, now.etag)
    t.true(res.body.equals(replacement))
    t.is(file.stats, 2, 'planned again once')
  })

  test(`${kind} replaced at every attempt: 503 with no byte of either file, logged`, async t => {
    const { root, path, old } = await fresh(size)
    const file = new Hooked(root, async (nth) => {
      await writeFile(path + '.new', randomBytes(size + nth))
      await rename(path + '.new', path)
    })
    const res = await get(t, file)
    t.is(res.status, 503)
    t.is(res.body.toString(), 'Service Unavailable')
    t.is(res.headers.etag, undefined)
    t.false(res.body.includes(old.subarray(0, 16)))
    t.true(await settle(() => res.errors.some((e) => /changed/.test(((e as { cause?: Error }).cause ?? e).message))), `logged: ${res.errors.map((e) => e.message).join(' | ')}`)
  })

  test(`${kind} truncated in place between stat and open: planned again for the new size, never the old length`, async t => {
    const { root, path, old } = await fresh(size)
    const file = new Hooked(root, async (nth) => { if (nth === 1) await truncate(path, Math.floor(size / 3)) })
    const res = await get(t, file)
    t.is(res.status, 200)
    t.is(res.headers['content-length'], String(Math.floor(size / 3)))
    t.true(res.body.equals(old.subarray(0, Math.floor(size / 3))))
  })

  test(`${kind} swapped for a symlink to a secret between stat and open: 404, the secret never sent`, async t => {
    const { root, path, decoy } = await fresh(size)
    const file = new Hooked(root, async (nth) => {
      if (nth !== 1) return
      await unlink(path)
      await symlink('../secret.txt', path)
    })
    const res = await get(t, file)
    t.is(res.status, 404)
    t.false(res.body.includes(decoy))
  })

  test(`${kind} deleted between stat and open: 404 (clean), nothing sent`, async t => {
    const { root, path } = await fresh(size)
    const file = new Hooked(root, async (nth) => { if (nth === 1) await unlink(path) })
    const res = await get(t, file)
    t.is(res.status, 404)
    t.is(res.body.toString(), 'Not Found')
  })
}

test('a symlink swapped in after stat() that leads out of the root is a 404 even when it reaches the very file stat() described: open() checks where its own descriptor leads', async t => {
  // The stat() saw root/file.bin, a hard link of a file outside the root (same inode). A symlink
  // renamed over it then leads out of the root to that inode: comparing the inode alone would pass.
  const { root, path } = await fresh(1000)
  const outside = join(root, '..', 'outside.bin')
  await writeFile(outside, 'OUTSIDE THE ROOT\n')
  await unlink(path)
  await link(outside, path)
  const file = new Hooked(root, async (nth) => {
    if (nth !== 1) return
    await symlink('../outside.bin', path + '.link')
    await rename(path + '.link', path)
  })
  const res = await get(t, file)
  t.is(res.status, 404)
  t.is(res.body.toString(), 'Not Found')
})

test('a FIFO renamed over the file between stat and open: 404, and no thread-pool thread is left waiting for a writer', async t => {
  const { root, path } = await fresh(1000)
  const fifo = path + '.fifo'
  const file = new Hooked(root, async (nth) => {
    if (nth !== 1) return
    execFileSync('mkfifo', [fifo])
    await rename(fifo, path)
  })
  const app = await startApp((ctx) => { ctx.body = file })
  t.teardown(app.close)
  const response = clientRequest(app.port, '/', {})
  // An open() that waits for a writer never answers: after 5 s this test writes to the FIFO itself
  // (which lets such an open() return) and fails.
  let released = false
  const deadline = setTimeout(() => {
    released = true
    const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
    closeSync(writer)
  }, 5000)
  const { raw } = await response
  clearTimeout(deadline)
  t.false(released, 'the request waited for a FIFO writer')
  const res = split(raw)
  t.is(res.status, 404)
  t.is(res.body.toString(), 'Not Found')
})

test('a file truncated while it is being sent: the connection is aborted, the client gets fewer bytes than Content-Length, and the failure is logged', async t => {
  const size = 16 * 1024 * 1024
  const { root, path, old } = await fresh(size)
  const app = await startApp((ctx) => { ctx.body = new PathFile('file.bin', { root }) })
  t.teardown(app.close)
  let truncated = false
  const { raw } = await clientRequest(app.port, '/', {}, (_got, c) => {
    if (truncated) return
    truncated = true
    c.pause()
    truncate(path, 1024 * 1024).then(() => { c.resume() }, () => { c.resume() })
  })
  const res = split(raw)
  t.is(res.status, 200)
  t.is(res.headers['content-length'], String(size))
  t.true(res.body.length < size, `got ${res.body.length} of ${size}`)
  t.true(res.body.length > 0)
  t.true(res.body.equals(old.subarray(0, res.body.length)), 'every byte that was sent is a byte of the file at its place')
  t.true(await settle(() => app.errors.some((e) => /truncated/.test(e.message))), `logged: ${app.errors.map((e) => e.message).join(' | ')}`)
  t.true(await settle(() => fdsUnder(root).length === 0), `fds left: ${fdsUnder(root).join(', ')}`)
})

test('a file replaced by rename while it is being sent: the client gets the old file whole (the open handle keeps it), consistent with the headers', async t => {
  const size = 8 * 1024 * 1024
  const { root, path, old } = await fresh(size)
  const app = await startApp((ctx) => { ctx.body = new PathFile('file.bin', { root }) })
  t.teardown(app.close)
  let replaced = false
  const etag = (await new PathFile(path).stat()).etag
  const { raw } = await clientRequest(app.port, '/', {}, (_got, c) => {
    if (replaced) return
    replaced = true
    c.pause()
    writeFile(path + '.new', randomBytes(100)).then(async () => { await rename(path + '.new', path) }).then(() => { c.resume() }, () => { c.resume() })
  })
  const res = split(raw)
  t.is(res.status, 200)
  t.is(res.headers.etag, etag)
  t.true(res.body.equals(old))
  t.true(await settle(() => fdsUnder(root).length === 0))
})
