import test from 'ava'
import fc from 'fast-check'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { download } from '../source/download.ts'
import { PathFile } from '../source/path-file.ts'
import type { PathFileOptions } from '../source/path-file.ts'
import type { StatOptions } from '../source/types.ts'
import { assertErrorResponse } from './helpers/error-response.ts'
import { decoySecret, downloadApp, fixtureRoot } from './helpers/koa.ts'
import { fetchBytes, listen } from './helpers/listen.ts'

const decoyBytes = 'TOP SECRET'

let temp = ''
test.before(async () => {
  temp = await mkdtemp(join(tmpdir(), 'kd-path-file-'))
})
test.after.always(async () => {
  if (temp !== '') await rm(temp, { recursive: true, force: true })
})

/** An app that answers `?p=<path>` with a bare PathFile confined to the fixture root. */
async function rootedApp (t: import('ava').ExecutionContext, root = fixtureRoot): Promise<string> {
  return await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(String(ctx.query.p), { root }) }))
}

const q = (path: string): string => `/?p=${encodeURIComponent(path)}`

// [path under the root, bytes, Content-Type, Content-Disposition]
const hostile: Array<[string, string, string, string]> = [
  ['hello.txt', 'Hello, world!\n', 'text/plain; charset=utf-8', 'attachment; filename="hello.txt"'],
  ['some thing.txt', 'some thing\n', 'text/plain; charset=utf-8', 'attachment; filename="some thing.txt"'],
  ['ünïcödé.txt', 'unicode name\n', 'text/plain; charset=utf-8', "attachment; filename=\"unicode.txt\"; filename*=UTF-8''%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt"],
  ['%41.txt', 'percent A\n', 'text/plain; charset=utf-8', "attachment; filename=\"_41.txt\"; filename*=UTF-8''%2541.txt"],
  ['snow ☃/nested.txt', 'snowman\n', 'text/plain; charset=utf-8', 'attachment; filename="nested.txt"'],
  ['.hidden', 'hidden\n', 'application/octet-stream', 'attachment; filename=".hidden"'],
  ['say "hi".txt', 'quoted\n', 'text/plain; charset=utf-8', "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt"],
  ['report.pdf', '%PDF-1.4\n% tiny\n', 'application/pdf', 'attachment; filename="report.pdf"'],
  ['subdir/file.txt', 'sub\n', 'text/plain; charset=utf-8', 'attachment; filename="file.txt"'],
  ['empty.txt', '', 'text/plain; charset=utf-8', 'attachment; filename="empty.txt"']
]

for (const [path, bytes, type, disposition] of hostile) {
  test(`path-file: ${JSON.stringify(path)} is served with its exact bytes, type and disposition`, async t => {
    const url = await rootedApp(t)
    const res = await fetchBytes(url, q(path))
    t.is(res.status, 200)
    t.is((res.body as Buffer).toString('utf8'), bytes)
    t.is(res.headers['content-length'], String(Buffer.byteLength(bytes)))
    t.is(res.headers['content-type'], type)
    t.is(res.headers['content-disposition'], disposition)
    t.is(res.headers['accept-ranges'], 'bytes')
    t.is(res.headers['content-encoding'], undefined)
  })
}

test('path-file: a binary file larger than the buffer size is streamed byte for byte', async t => {
  const url = await rootedApp(t)
  const res = await fetchBytes(url, q('binary.bin'))
  t.is(res.status, 200)
  const expected = await readFile(join(fixtureRoot, 'binary.bin'))
  t.is(expected.length, 200000)
  t.true((res.body as Buffer).equals(expected))
  t.is(res.headers['content-length'], '200000')
  t.is(res.headers['content-type'], 'application/octet-stream')
})

test('path-file: the name option sets the download name, its type and disposition', async t => {
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(join(fixtureRoot, 'hello.txt'), { name: 'greeting.csv' }) }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
  t.is(res.headers['content-type'], 'text/csv; charset=utf-8')
  t.is(res.headers['content-disposition'], 'attachment; filename="greeting.csv"')
})

test('path-file: an explicit contentType is sent verbatim, without an added charset', async t => {
  const url = await listen(t, downloadApp((ctx) => { ctx.body = download(new PathFile('hello.txt', { root: fixtureRoot }), { contentType: 'text/x-custom' }) }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is(res.headers['content-type'], 'text/x-custom')
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
})

test('path-file: x.tar.gz is application/gzip with no Content-Encoding', async t => {
  const gz = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03])
  await writeFile(join(temp, 'archive.tar.gz'), gz)
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile('archive.tar.gz', { root: temp }) }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is(res.headers['content-type'], 'application/gzip')
  t.is(res.headers['content-encoding'], undefined)
  t.true((res.body as Buffer).equals(gz))
})

test('path-file: a strong ETag "<mtime s hex>-<size hex>" and Last-Modified = the mtime in whole seconds', async t => {
  const file = join(temp, 'validators.txt')
  await writeFile(file, 'validators\n')
  // A fractional mtime proves the truncation to whole seconds.
  await utimes(file, 1700000000.75, 1700000000.75)
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(file) }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is(res.headers.etag, `"${(1700000000).toString(16)}-${(11).toString(16)}"`)
  t.is(res.headers['last-modified'], 'Tue, 14 Nov 2023 22:13:20 GMT')
  t.is(res.headers.etag, '"6553f100-b"')
})

test('path-file: the ETag of a fixture is computed from its own stat', async t => {
  const url = await rootedApp(t)
  const res = await fetchBytes(url, q('digits.txt'))
  const stats = await stat(join(fixtureRoot, 'digits.txt'))
  const seconds = Math.floor(stats.mtimeMs / 1000)
  t.is(res.headers.etag, `"${seconds.toString(16)}-${stats.size.toString(16)}"`)
  t.is(res.headers['last-modified'], new Date(seconds * 1000).toUTCString())
})

test('path-file: the ETag changes when the file changes (size or mtime), and the new bytes are sent', async t => {
  const file = join(temp, 'changing.txt')
  await writeFile(file, 'version one\n')
  await utimes(file, 1700000000, 1700000000)
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(file) }))
  const first = await fetchBytes(url, '/')
  t.is((first.body as Buffer).toString(), 'version one\n')
  const firstTag = String(first.headers.etag)

  const fresh = await fetchBytes(url, '/').set('If-None-Match', firstTag)
  t.is(fresh.status, 304, 'unchanged file: 304 for its own ETag')

  await writeFile(file, 'version two!\n')
  await utimes(file, 1700000000, 1700000000)
  const resized = await fetchBytes(url, '/').set('If-None-Match', firstTag)
  t.is(resized.status, 200)
  t.is((resized.body as Buffer).toString(), 'version two!\n')
  t.not(resized.headers.etag, firstTag, 'same mtime, other size → other ETag')

  await writeFile(file, 'version 3!!!\n')
  await utimes(file, 1700000100, 1700000100)
  const retimed = await fetchBytes(url, '/').set('If-None-Match', String(resized.headers.etag))
  t.is(retimed.status, 200)
  t.is((retimed.body as Buffer).toString(), 'version 3!!!\n')
  t.not(retimed.headers.etag, resized.headers.etag, 'same size, other mtime → other ETag')
})

test('path-file: .path is absolute and resolved against root; name is the basename', t => {
  const file = new PathFile('snow ☃/nested.txt', { root: fixtureRoot })
  t.is(file.path, join(fixtureRoot, 'snow ☃', 'nested.txt'))
  t.is(new PathFile(join(fixtureRoot, 'hello.txt'), { root: fixtureRoot }).path, join(fixtureRoot, 'hello.txt'), 'an absolute path inside the root is kept')
  t.is(new PathFile('/hello.txt', { root: fixtureRoot }).path, join(fixtureRoot, 'hello.txt'), 'another absolute path is read relative to the root')
  t.is(new PathFile(decoySecret, { root: fixtureRoot }).path, join(fixtureRoot, decoySecret), 'the decoy outside is re-rooted, so it stays inside')
  t.is(file.name, 'nested.txt')
  t.is(new PathFile('a/b/../c.txt').path, join(process.cwd(), 'a', 'c.txt'))
})

test('path-file: a path refused at construction has no .path, so no offload rule can match it', t => {
  t.is(new PathFile('../secret.txt', { root: fixtureRoot }).path, undefined)
  t.is(new PathFile('hello.txt\0', { root: fixtureRoot }).path, undefined)
  t.is(new PathFile('hello\0.txt').path, undefined)
})

test('path-file: bad constructor arguments are TypeErrors naming the argument', t => {
  t.throws(() => new PathFile(1 as unknown as string), { instanceOf: TypeError, message: /path must be a string/ })
  t.throws(() => new PathFile('x', { root: '' }), { instanceOf: TypeError, message: /root must be a non-empty string/ })
  t.throws(() => new PathFile('x', { root: 1 as unknown as string }), { instanceOf: TypeError, message: /root/ })
  t.throws(() => new PathFile('x', { name: 1 as unknown as string }), { instanceOf: TypeError, message: /name must be a string/ })
  t.throws(() => new PathFile('x', null as unknown as PathFileOptions), { instanceOf: TypeError, message: /^PathFile: options must be an object$/ })
  t.throws(() => new PathFile('../secret.txt', { Root: fixtureRoot } as unknown as PathFileOptions), { instanceOf: TypeError, message: /^PathFile: unknown option "Root" \(allowed: root, name, followSymlinks, statCache\)$/ }, 'a misspelt root never silently drops the confinement')
  t.throws(() => new PathFile('x', { root: fixtureRoot, followSymlinks: 'yes' as unknown as boolean }), { instanceOf: TypeError, message: /^PathFile: followSymlinks must be a boolean$/ })
})

// ——— Confinement ———

const outside: Array<[string, string]> = [
  ['a parent traversal', '../secret.txt'],
  ['a traversal through a subdirectory', 'a/../../secret.txt'],
  ['a traversal after a real directory', 'subdir/../../secret.txt'],
  ['the absolute path of the decoy (taken relative to the root)', decoySecret],
  ['an absolute system path', '/etc/passwd'],
  ['a literal percent-encoded dot-dot name', '%2e%2e/secret.txt'],
  ['a literal percent-encoded slash name', '..%2fsecret.txt'],
  ['a backslash traversal (a literal name on POSIX)', '..\\secret.txt'],
  ['a NUL byte after a real name', 'hello.txt\0'],
  ['a NUL byte before a traversal', '\0../secret.txt'],
  ['a symlink that resolves outside the root', 'escape-link.txt'],
  ['a missing file', 'missing.txt'],
  ['a directory', 'subdir'],
  ['a directory with a hostile name', 'snow ☃'],
  ['the root itself', '.'],
  ['an empty path', ''],
  ['a file used as a directory (ENOTDIR)', 'hello.txt/x'],
  ['a file named with a trailing slash (a directory: ENOTDIR)', 'hello.txt/'],
  ['a file named with a trailing slash and dot', 'hello.txt/.'],
  ['a file in a subdirectory, with a trailing slash', 'subdir/../hello.txt/'],
  ['a 5000-character name (ENAMETOOLONG)', 'x'.repeat(5000)]
]

for (const [title, path] of outside) {
  test(`path-file confinement: ${title} → 404, no file headers, the decoy never sent`, async t => {
    const url = await rootedApp(t)
    const res = await fetchBytes(url, q(path))
    assertErrorResponse(t, res, 404)
    t.false((res.body as Buffer).toString('latin1').includes(decoyBytes))
    t.false(JSON.stringify(res.headers).includes('secret'))
  })
}

test('path-file confinement: HEAD and Range on an escaping symlink are 404 too', async t => {
  const url = await rootedApp(t)
  assertErrorResponse(t, await fetchBytes(url, q('escape-link.txt'), 'head'), 404, { head: true })
  const ranged = await fetchBytes(url, q('escape-link.txt')).set('Range', 'bytes=0-3')
  assertErrorResponse(t, ranged, 404)
})

test('path-file confinement: a symlink inside the root is served under its own name', async t => {
  const url = await rootedApp(t)
  const res = await fetchBytes(url, q('inside-link.txt'))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
  t.is(res.headers['content-disposition'], 'attachment; filename="inside-link.txt"')
})

test('path-file confinement: dot segments that stay inside the root are served', async t => {
  const url = await rootedApp(t)
  for (const path of ['./hello.txt', 'subdir/../hello.txt', 'subdir//../hello.txt']) {
    const res = await fetchBytes(url, q(path))
    t.is(res.status, 200, path)
    t.is((res.body as Buffer).toString(), 'Hello, world!\n', path)
  }
})

test('path-file confinement: a leading slash is relative to the root, not to /', async t => {
  const url = await rootedApp(t)
  const res = await fetchBytes(url, q('/hello.txt'))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
})

test('path-file confinement: a symlinked directory that leads outside → 404; a symlinked root is followed', async t => {
  const root = join(temp, 'confined')
  const away = join(temp, 'away')
  await mkdir(root)
  await mkdir(away)
  await writeFile(join(away, 'secret.txt'), `${decoyBytes}\n`)
  await writeFile(join(root, 'ok.txt'), 'ok\n')
  await symlink(away, join(root, 'door'))
  await symlink(root, join(temp, 'root-link'))

  const url = await rootedApp(t, root)
  const escaped = await fetchBytes(url, q('door/secret.txt'))
  assertErrorResponse(t, escaped, 404)
  t.false((escaped.body as Buffer).toString().includes(decoyBytes))

  const linkedRoot = await rootedApp(t, join(temp, 'root-link'))
  const res = await fetchBytes(linkedRoot, q('ok.txt'))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'ok\n')
})

test('path-file followSymlinks: the root is checked on the path as written; symlinks are followed wherever they point', async t => {
  const root = join(temp, 'follow')
  const away = join(temp, 'follow-away')
  await mkdir(root)
  await mkdir(away)
  await writeFile(join(away, 'shared.txt'), 'shared\n')
  await writeFile(join(root, 'ok.txt'), 'ok\n')
  await symlink(away, join(root, 'door'))
  await symlink(join(away, 'shared.txt'), join(root, 'shared-link.txt'))
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(String(ctx.query.p), { root, followSymlinks: true }) }))
  for (const [path, bytes] of [['ok.txt', 'ok\n'], ['door/shared.txt', 'shared\n'], ['shared-link.txt', 'shared\n'], ['/ok.txt', 'ok\n']] as const) {
    const res = await fetchBytes(url, q(path))
    t.is(res.status, 200, path)
    t.is((res.body as Buffer).toString(), bytes, path)
    const head = await fetchBytes(url, q(path), 'head')
    t.is(head.status, 200, path)
    t.is(head.headers['content-length'], String(bytes.length), path)
    const revalidated = await fetchBytes(url, q(path)).set('If-None-Match', res.headers.etag ?? '')
    t.is(revalidated.status, 304, path)
  }
  // What stays refused: leaving the root lexically, NUL, missing files, directories.
  for (const path of ['../follow-away/shared.txt', 'door/../../follow-away/shared.txt', 'ok.txt\0', 'missing.txt', 'door']) {
    assertErrorResponse(t, await fetchBytes(url, q(path)), 404)
  }
  // The same tree without the option: both symlinks lead out of the root.
  const confined = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(String(ctx.query.p), { root }) }))
  for (const path of ['door/shared.txt', 'shared-link.txt']) assertErrorResponse(t, await fetchBytes(confined, q(path)), 404)
})

test('path-file confinement: a root given with a trailing slash does not admit a sibling with the same prefix', async t => {
  const root = join(temp, 'pre')
  await mkdir(root)
  await mkdir(join(temp, 'prefix'))
  await writeFile(join(temp, 'prefix', 'secret.txt'), `${decoyBytes}\n`)
  const url = await rootedApp(t, `${root}/`)
  const res = await fetchBytes(url, q('../prefix/secret.txt'))
  assertErrorResponse(t, res, 404)
})

// ——— Files that change while being served ———

test('path-file: a file replaced between stat() and open() is never sent under the old validators', async t => {
  const file = join(temp, 'replaced.txt')
  // A plain GET makes serve() pass `willRead`: stat() opens the descriptor itself; the rewrite takes
  // more than that turn, so the descriptor is released and the read opens and checks again. A
  // conditional GET takes the stat → open route.
  for (const [size, label, headers] of [
    [100, 'read() fast path', {}], [300_000, 'streamed', {}],
    [100, 'read() fast path, conditional GET', { 'If-None-Match': '"other"' }], [300_000, 'streamed, conditional GET', { 'If-None-Match': '"other"' }]
  ] as const) {
    await writeFile(file, Buffer.alloc(size, 0x61))
    await utimes(file, 1700000000, 1700000000)
    let replaced = false
    const inner = new PathFile(file)
    // A wrapper that rewrites the file right after the first stat(), as a concurrent deploy would.
    const racing = {
      name: inner.name,
      path: inner.path,
      stat: async (options?: StatOptions) => {
        const stat = await inner.stat(options)
        if (!replaced) {
          replaced = true
          await writeFile(file, Buffer.alloc(size + 1, 0x62))
          await utimes(file, 1700000500, 1700000500)
        }
        return stat
      },
      open: inner.open.bind(inner),
      read: inner.read.bind(inner)
    }
    const url = await listen(t, downloadApp((ctx) => { ctx.body = racing }))
    const res = await fetchBytes(url, '/').set(headers)
    t.is(res.status, 200, label)
    t.is(res.headers['content-length'], String(size + 1), label)
    t.true((res.body as Buffer).equals(Buffer.alloc(size + 1, 0x62)), `${label}: the new bytes`)
    t.is(res.headers.etag, `"${(1700000500).toString(16)}-${(size + 1).toString(16)}"`, `${label}: the new ETag`)
  }
})

/**
 * GETs `url` and stops reading after the first bytes (the server blocks on backpressure), makes
 * `change` to the file, then reads on: the status, whether the response was complete, its bytes.
 */
async function changedWhileSent (url: string, change: () => Promise<void>): Promise<{ status: number, complete: boolean, bytes: number }> {
  return await new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let bytes = 0
      res.once('data', (chunk: Buffer) => {
        bytes += chunk.length
        res.pause()
        change().then(() => {
          res.on('data', (more: Buffer) => { bytes += more.length })
          res.resume()
        }, reject)
      })
      res.on('close', () => { resolve({ status: res.statusCode ?? 0, complete: res.complete, bytes }) })
    }).on('error', reject)
  })
}

test('path-file: a file truncated while it is streamed aborts the response (never a short 200)', async t => {
  const file = join(temp, 'truncated.bin')
  const size = 32 * 1024 * 1024
  await writeFile(file, '')
  await truncate(file, size) // sparse: instant, and far more than the socket buffers hold
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(file) }))
  const result = await changedWhileSent(url, async () => { await truncate(file, 1024) })
  t.is(result.status, 200)
  t.false(result.complete)
  t.true(result.bytes < size)
})

test('path-file: a root that is a symlink switched to another directory (a `current → releases/N` deploy) serves the new one\'s files at once, GET, HEAD and conditional alike; a path leaving the new root is still a 404', async t => {
  const base = await mkdtemp(join(temp, 'deploy-'))
  await mkdir(join(base, 'release-1'))
  await mkdir(join(base, 'release-2'))
  await writeFile(join(base, 'release-1', 'a.txt'), 'one\n')
  await writeFile(join(base, 'release-2', 'a.txt'), 'two!\n')
  await writeFile(join(base, 'secret.txt'), 'secret\n')
  await symlink(join(base, 'secret.txt'), join(base, 'release-2', 'leak.txt'))
  await symlink('release-1', join(base, 'current'))
  const root = join(base, 'current')
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(String(ctx.query.p), { root }) }))
  const first = await fetchBytes(url, '/?p=a.txt')
  t.is(first.status, 200)
  t.is(first.body.toString(), 'one\n')
  // Switched atomically, as deploy tools do: a new link renamed over the old one.
  await symlink('release-2', join(base, 'current.new'))
  await rename(join(base, 'current.new'), root)
  const again = await fetchBytes(url, '/?p=a.txt')
  t.is(again.status, 200)
  t.is(again.body.toString(), 'two!\n')
  const head = await fetchBytes(url, '/?p=a.txt', 'head')
  t.is(head.status, 200)
  t.is(head.headers['content-length'], '5')
  const conditional = await fetchBytes(url, '/?p=a.txt').set('If-None-Match', '"nope"')
  t.is(conditional.status, 200)
  t.is(conditional.body.toString(), 'two!\n')
  t.is((await fetchBytes(url, '/?p=leak.txt')).status, 404)
  t.is((await fetchBytes(url, '/?p=leak.txt', 'head')).status, 404)
})

/** Writes `bytes` over the file from its start, without truncating it first. */
async function overwrite (path: string, bytes: Buffer): Promise<void> {
  const handle = await open(path, 'r+')
  try {
    await handle.write(bytes, 0, bytes.length, 0)
  } finally {
    await handle.close()
  }
}

test('path-file: a file rewritten in place while it is streamed (same size, written over without truncation) aborts the response, never a complete 200 of two versions under the first one\'s ETag', async t => {
  const file = join(temp, 'rewritten.bin')
  const size = 32 * 1024 * 1024
  await writeFile(file, Buffer.alloc(size, 0x31))
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(file) }))
  // Version 2, same size, written over version 1 in place (same inode, never shorter: no
  // truncation for the stream to trip on), a second later.
  const result = await changedWhileSent(url, async () => {
    await overwrite(file, Buffer.alloc(size, 0x32))
    await utimes(file, new Date(), new Date(Date.now() + 1000))
  })
  t.is(result.status, 200)
  t.false(result.complete)
  t.true(result.bytes < size)
})

test('path-file: device files and FIFOs are not regular files → 404, never read, never waited on', async t => {
  const fifo = join(temp, 'pipe')
  execFileSync('mkfifo', [fifo])
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new PathFile(String(ctx.query.p)) }))
  // A plain GET opens before it checks (non-blocking), a conditional GET and HEAD only stat: a
  // blocking open of the FIFO would wait for a writer forever, so a 404 at all proves neither did.
  for (const path of ['/dev/zero', '/dev/null', '/dev/urandom', fifo]) {
    assertErrorResponse(t, await fetchBytes(url, q(path)), 404)
    assertErrorResponse(t, await fetchBytes(url, q(path)).set('If-None-Match', '"x"'), 404)
    assertErrorResponse(t, await fetchBytes(url, q(path), 'head'), 404, { head: true })
  }
})

test('PathFile: a name under a root is the root joined with it as path.resolve() would, whatever the name (plain names skip the resolve)', (t) => {
  const name = fc.oneof(fc.string({ unit: 'grapheme-ascii', maxLength: 12 }), fc.constantFrom('.', '..', '', 'a/b', '/a', 'a/../../x', '..x', 'x..', 'a\\b', 'ü'))
  for (const root of ['/srv/files', '/srv/files/', '/', '/srv/./files/../files']) {
    fc.assert(fc.property(name, (n) => {
      const file = new PathFile(n, { root })
      const realRoot = resolve(root)
      const absolute = resolve(realRoot, n.startsWith('/') ? '.' + n : n)
      const inside = absolute === realRoot || absolute.startsWith(realRoot === '/' ? '/' : realRoot + '/')
      const refused = n === '' || n.includes('\0') || /\/\.?$/.test(n) || !inside
      t.is(file.path, refused ? undefined : absolute, JSON.stringify([root, n]))
      if (!refused) t.is(file.name, basename(absolute))
    }), { numRuns: 500 })
  }
})

test('path-file: a file of the current second has a weak ETag, so a resume with it gets the whole file, never the bytes of a same-second, same-size replacement', async (t) => {
  const dir = await mkdtemp(join(temp, 'same-second-'))
  const file = join(dir, 'report.txt')
  const base = await rootedApp(t, dir)
  // The mtime's second is not over (a future mtime stands in for "this second", deterministically).
  const current = new Date(Date.now() + 60_000)
  await writeFile(file, 'version-1 AAAAAAAA\n')
  await utimes(file, current, current)
  const first = await fetch(base + q('report.txt'))
  const tag = first.headers.get('etag') ?? ''
  t.regex(tag, /^W\/"[0-9a-f]+-13"$/)
  t.is(await first.text(), 'version-1 AAAAAAAA\n')
  // Replaced by a file of the same size with the same mtime (write-new-then-rename within the second).
  await writeFile(join(dir, 'next.txt'), 'version-2 BBBBBBBB\n')
  await utimes(join(dir, 'next.txt'), current, current)
  await rename(join(dir, 'next.txt'), file)
  const resumed = await fetch(base + q('report.txt'), { headers: { Range: 'bytes=10-', 'If-Range': tag } })
  t.is(resumed.status, 200)
  t.is(await resumed.text(), 'version-2 BBBBBBBB\n')
  // Revalidation still works with the weak tag (weak comparison).
  t.is((await fetch(base + q('report.txt'), { headers: { 'If-None-Match': tag } })).status, 304)
  // At rest (the second over), the same file's tag is strong and resumes from it.
  const past = new Date(Date.now() - 3_600_000)
  await utimes(file, past, past)
  const strong = (await fetch(base + q('report.txt'), { method: 'HEAD' })).headers.get('etag') ?? ''
  t.regex(strong, /^"[0-9a-f]+-13"$/)
  const part = await fetch(base + q('report.txt'), { headers: { Range: 'bytes=10-', 'If-Range': strong } })
  t.is(part.status, 206)
  t.is(await part.text(), 'BBBBBBBB\n')
})

test('path-file: a missing path with control characters (from a request URL) fails E_NOT_FOUND (a 404) with its control characters escaped in the message: no forged log line', async t => {
  const root = await mkdtemp(join(temp, 'controls-'))
  for (const name of ['x\nINFO user=admin ok', 'x\r\n\u001b[31mred', 'x\u0085next']) {
    const error = await t.throwsAsync(new PathFile(name, { root }).stat())
    t.is((error as { code?: string }).code, 'E_NOT_FOUND')
    t.false(/[\u0000-\u001f\u007f-\u009f]/.test(error?.message ?? ''), JSON.stringify(error?.message))
  }
  const error = await t.throwsAsync(new PathFile('x\nINFO', { root }).stat())
  t.is(error?.message, `PathFile: ENOENT: no such file or directory, open '${join(root, 'x')}\\nINFO'`)
  // The fs error goes on as its cause, which logs print (Node's inspect, Koa's stack of a 5xx): escaped too.
  const cause = error?.cause as Error
  t.is(cause.message, `ENOENT: no such file or directory, open '${join(root, 'x')}\\nINFO'`)
  t.false((cause.stack ?? '').includes('x\nINFO'), cause.stack)
})

test('path-file: a file removed between stat() and open() fails open() as stat() fails for a missing file: E_NOT_FOUND (a 404) with the fs error as its cause, control characters escaped', async t => {
  const root = await mkdtemp(join(temp, 'gone-'))
  const name = 'x\nINFO forged'
  await writeFile(join(root, name), 'bytes')
  const file = new PathFile(name, { root })
  await file.stat()
  await rm(join(root, name))
  const error = await t.throwsAsync(file.open())
  t.is((error as { code?: string }).code, 'E_NOT_FOUND')
  t.is((error as { status?: number }).status, 404)
  t.is(((error as Error).cause as { code?: string }).code, 'ENOENT')
  t.false(/[\u0000-\u001f]/.test(error?.message ?? ''), error?.message)
})
