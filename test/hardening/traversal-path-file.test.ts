import test from 'ava'
import type { ExecutionContext } from 'ava'
import { realpath } from 'node:fs/promises'
import { sep } from 'node:path'
import type { Readable } from 'node:stream'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import { StorageFile } from '../../adapters/flydrive/storage-file.ts'
import { PathFile } from '../../source/path-file.ts'
import type { DownloadFile } from '../../source/types.ts'
import { fill, label, loadCorpus, variants } from './corpus.ts'
import { makeDecoyTree } from './decoy-tree.ts'
import type { DecoyTree } from './decoy-tree.ts'

const corpus = loadCorpus()
let tree: DecoyTree

test.before(async () => { tree = await makeDecoyTree() })
test.after.always(async () => { await tree.remove() })

async function readAll (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks)
}

const inside = (path: string, dir: string): boolean => path === dir || path.startsWith(dir + sep)

interface Outcome { refused: number, served: number }

/**
 * Tries `file`: stat() and open() either refuse (reject), or yield bytes of a file that really lies
 * inside the root (after symlinks) and never the decoy marker. Returns whether it was served.
 */
async function probe (t: ExecutionContext, file: DownloadFile, what: string): Promise<boolean> {
  if (file.path !== undefined) t.true(inside(file.path, tree.root), `${what}: .path ${label(file.path)} lies inside the root`)
  let bytes: Buffer
  try {
    await file.stat()
    bytes = await readAll(await file.open())
  } catch (error) {
    const status = (error as { status?: number }).status
    const code = (error as { code?: string }).code
    // A refusal is a DownloadError (404) or an fs error that toHttpError maps to 404/403: never a crash of another kind.
    t.true(status === 404 || status === 403 || code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP' || code === 'EISDIR',
      `${what}: refused with a not-found error, got ${String(code ?? status)}: ${(error as Error).message}`)
    return false
  }
  t.false(bytes.includes(tree.marker), `${what}: the decoy was served`)
  if (file.path !== undefined) t.true(inside(await realpath(file.path), tree.root), `${what}: served a file whose real path is inside the root`)
  t.true([...tree.allowed.values()].some((allowed) => allowed.equals(bytes)), `${what}: served bytes are one of the root's files`)
  return true
}

test('corpus: at least 200 traversal payloads in every required category', t => {
  t.true(corpus.length >= 200, `${corpus.length} payloads`)
  const categories = new Set(corpus.map((p) => p.category))
  for (const required of ['dot-dot', 'percent-encoded', 'double-encoded', 'backslash', 'nul', 'overlong-utf8', 'unicode', 'windows', 'dot-segments', 'trailing', 'symlink', 'hardlink', 'long', 'combined']) {
    t.true(categories.has(required), `category ${required}`)
  }
})

test('traversal: PathFile with a root never yields a byte outside it, for every payload as sent, decoded once and twice', async t => {
  const outcome: Outcome = { refused: 0, served: 0 }
  for (const { category, payload } of corpus) {
    for (const value of variants(fill(payload, tree))) {
      const what = `PathFile [${category}] ${label(value)}`
      let file: PathFile
      try {
        file = new PathFile(value, { root: tree.root })
      } catch (error) {
        t.fail(`${what}: the constructor threw ${(error as Error).message}`)
        continue
      }
      if (await probe(t, file, what)) outcome.served++
      else outcome.refused++
    }
  }
  t.log(`PathFile: ${outcome.refused} refused, ${outcome.served} served from inside the root, 0 escapes`)
  t.true(outcome.served > 0, 'the legitimate in-root payloads are served (the probe can tell)')
})

test('traversal: the root given with a trailing slash or as a relative path confines the same way', async t => {
  const relative = tree.root.slice(process.cwd().length + 1)
  const roots = [tree.root + '/', ...(tree.root.startsWith(process.cwd() + sep) ? [relative] : [])]
  for (const root of roots) {
    for (const { payload } of corpus.filter((p) => p.category === 'dot-dot' || p.category === 'symlink')) {
      for (const value of variants(fill(payload, tree))) await probe(t, new PathFile(value, { root }), `root ${label(root)} ${label(value)}`)
    }
  }
  t.pass()
})

test('traversal: StorageFile keys on a flydrive fs disk never yield a byte outside the disk location', async t => {
  const disk = new Disk(new FSDriver({ location: tree.root, visibility: 'public' }))
  const outcome: Outcome = { refused: 0, served: 0 }
  for (const { category, payload } of corpus) {
    for (const value of variants(fill(payload, tree))) {
      const what = `StorageFile [${category}] ${label(value)}`
      if (await probe(t, new StorageFile(disk, value), what)) outcome.served++
      else outcome.refused++
    }
  }
  t.log(`StorageFile (fs): ${outcome.refused} refused, ${outcome.served} served from inside the location, 0 escapes`)
  t.true(outcome.served > 0)
})

test('traversal: StorageFile refuses every key with a "..", "." segment, a backslash, a leading / or a control character, before any I/O', async t => {
  const disk = new Disk(new FSDriver({ location: tree.root, visibility: 'public' }))
  for (const key of ['../secret.txt', 'a/../../secret.txt', './hello.txt', '/hello.txt', '..\\secret.txt', 'hello.txt\0', 'a\r\nb', '..', '.', '']) {
    const file = new StorageFile(disk, key)
    t.is(file.path, undefined, `${label(key)}: no path, so no offload rule can match it`)
    const error = await t.throwsAsync(file.stat())
    t.is((error as { status?: number }).status, 404, label(key))
  }
})

test('traversal: the probe itself catches an escape (a PathFile without root on the decoy fails it)', async t => {
  const attempt = await t.try(async (tt) => { await probe(tt, new PathFile(tree.secret), 'no root') })
  const passed = attempt.passed
  attempt.discard()
  t.false(passed, 'the probe must fail when the decoy is served')
})

test('traversal: a hard link inside the root is served — confinement is by path, as in nginx and send (SECURITY.md)', async t => {
  const file = new PathFile('hard-in.txt', { root: tree.root })
  t.true(await probe(t, file, 'hard-in.txt'))
})
