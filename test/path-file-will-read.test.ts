// stat({ willRead }): the descriptor PathFile opens ahead of the read serve() announced. Serial:
// the tests count the descriptors open on their own temp files (ava runs the other test files as
// threads of this process, so a plain count of /proc/self/fd would include theirs).
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { readdirSync, readlinkSync } from 'node:fs'
import { mkdir, mkdtemp, realpath, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PathFile } from '../source/path-file.ts'

const decoyBytes = 'TOP SECRET'

let temp = ''
let root = ''
test.before(async () => {
  temp = await realpath(await mkdtemp(join(tmpdir(), 'kd-will-read-')))
  root = join(temp, 'root')
  await mkdir(root)
  await writeFile(join(root, 'hello.txt'), 'Hello, world!\n')
  // at rest: a file of the current second has a weak ETag until the second ends (etag.ts statEtag)
  await utimes(join(root, 'hello.txt'), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000))
})
test.after.always(async () => {
  if (temp !== '') await rm(temp, { recursive: true, force: true })
})

/** Descriptors this process has open on files under this test's temp directory. */
function openDescriptors (): number {
  let count = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(temp + '/')) count++
    } catch {} // closed meanwhile (readdir's own descriptor)
  }
  return count
}

async function nextTurn (): Promise<void> {
  await new Promise((resolve) => { setImmediate(resolve) })
}

test.serial('path-file: stat({ willRead }) gives the same FileStat as stat(), and a descriptor nobody reads is closed within the turn', async t => {
  const before = openDescriptors()
  const plain = await new PathFile('hello.txt', { root }).stat()
  for (const willRead of ['whole', 'range'] as const) {
    for (let i = 0; i < 20; i++) {
      const stat = await new PathFile('hello.txt', { root }).stat({ willRead })
      t.deepEqual(stat, plain)
      t.is(openDescriptors(), before + 1, `${willRead}: the descriptor is held until the turn ends`)
      await nextTurn()
      t.is(openDescriptors(), before, `${willRead}: then released`)
    }
  }
})

test.serial('path-file: the descriptor stat({ willRead }) opened is the one read() and open() use, and closed after', async t => {
  const before = openDescriptors()
  const small = new PathFile('hello.txt', { root })
  await small.stat({ willRead: 'whole' })
  t.is((await small.read()).toString(), 'Hello, world!\n')
  t.is(openDescriptors(), before)
  const ranged = new PathFile('hello.txt', { root })
  await ranged.stat({ willRead: 'range' })
  const stream = await ranged.open({ start: 7, end: 11 })
  t.is(openDescriptors(), before + 1, 'the held descriptor, not a second one')
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  t.is(Buffer.concat(chunks).toString(), 'world')
  await nextTurn()
  t.is(openDescriptors(), before)
  // A read after the turn opens again (the held descriptor is gone) and still gets the bytes.
  const late = new PathFile('hello.txt', { root })
  await late.stat({ willRead: 'whole' })
  await nextTurn()
  t.is(openDescriptors(), before)
  t.is((await late.read({ start: 0, end: 4 })).toString(), 'Hello')
  t.is(openDescriptors(), before)
})

test.serial('path-file: stat() with and without willRead refuses the same paths with the same errors, and leaks no descriptor', async t => {
  const before = openDescriptors()
  await mkdir(join(root, 'dir'), { recursive: true })
  await writeFile(join(temp, 'will-read-secret.txt'), decoyBytes)
  await symlink(join(temp, 'will-read-secret.txt'), join(root, 'out.txt'))
  await symlink(temp, join(root, 'up'))
  execFileSync('mkfifo', [join(root, 'pipe')])
  const cases: Array<[string, string]> = [
    ['out.txt', 'E_NOT_FOUND'], // a symlink to a file outside the root
    ['up/will-read-secret.txt', 'E_NOT_FOUND'], // through a symlinked directory outside
    ['dir', 'E_NOT_FOUND'],
    ['pipe', 'E_NOT_FOUND'], // a FIFO: refused without waiting for a writer
    ['missing.txt', 'E_NOT_FOUND'], // ENOENT, as a DownloadError (its cause)
    ['hello.txt/x', 'E_NOT_FOUND'], // ENOTDIR
    ['dir/../../will-read-secret.txt', 'E_NOT_FOUND'], // lexically outside
    ['x\0', 'E_NOT_FOUND']
  ]
  for (const [path, code] of cases) {
    for (const willRead of [undefined, 'whole', 'range'] as const) {
      const error = await t.throwsAsync(new PathFile(path, { root }).stat({ willRead }), undefined, `${path} ${willRead}`)
      t.is((error as { code?: string } | undefined)?.code, code, `${path} ${willRead ?? 'no willRead'}`)
      t.is((error as { status?: number } | undefined)?.status, 404, `${path} ${willRead ?? 'no willRead'}`)
    }
  }
  t.is(openDescriptors(), before)
})

test.serial('path-file: stat() without willRead (HEAD, conditional GET) keeps no descriptor, and open() after it reads the file', async t => {
  const before = openDescriptors()
  const file = new PathFile('hello.txt', { root })
  const stat = await file.stat()
  t.is(stat.size, 14)
  t.is(openDescriptors(), before)
  const chunks: Buffer[] = []
  for await (const chunk of await file.open({ start: 0, end: 4 })) chunks.push(chunk as Buffer)
  t.is(Buffer.concat(chunks).toString(), 'Hello')
  t.is(openDescriptors(), before)
})
