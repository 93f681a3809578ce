import { randomBytes } from 'node:crypto'
import { link, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A temp tree with a served root and decoys all around it, each holding the same random marker, so
 * that any escape shows as the marker in a response:
 *
 * ```
 * <base>/secret.txt                      decoy
 * <base>/outside/secret.txt              decoy (target of the dir-out symlink)
 * <base>/srv/secret.txt                  decoy, the root's parent
 * <base>/srv/files-evil/secret.txt       decoy, a sibling sharing the root's name as a prefix
 * <base>/srv/files/                      THE ROOT
 *   hello.txt, sub/inner.txt, hard-in.txt (a hard link of hello.txt)
 *   link-in → hello.txt                  symlink that stays inside
 *   link-out → ../secret.txt             symlinks that leave: relative, absolute, through a
 *   abs-link → <base>/secret.txt         directory, through a chain, in a loop, from a subdirectory
 *   dir-out → ../../outside
 *   chain1 → chain2 → ../secret.txt
 *   loop → loop
 *   sub/link-up → ../..
 * ```
 */
export interface DecoyTree {
  base: string
  root: string
  /** Absolute path of the first decoy (for {SECRET}). */
  secret: string
  /** The bytes every decoy contains. */
  marker: string
  /** Bytes of the files that may legitimately be served. */
  allowed: Map<string, Buffer>
  remove (): Promise<void>
}

export async function makeDecoyTree (): Promise<DecoyTree> {
  // realpath: on some systems tmpdir itself is a symlink, which would make every path look like an escape.
  const base = await realpath(await mkdtemp(join(tmpdir(), 'kd-traversal-')))
  const marker = `DECOY-${randomBytes(12).toString('hex')}`
  const root = join(base, 'srv', 'files')
  await mkdir(join(root, 'sub'), { recursive: true })
  await mkdir(join(base, 'outside'))
  await mkdir(join(base, 'srv', 'files-evil'))
  for (const decoy of ['secret.txt', 'outside/secret.txt', 'srv/secret.txt', 'srv/files-evil/secret.txt']) {
    await writeFile(join(base, decoy), `${marker} ${decoy}\n`)
  }
  const allowed = new Map<string, Buffer>([
    ['hello.txt', Buffer.from('hello, world\n')],
    ['sub/inner.txt', Buffer.from('inner file\n')]
  ])
  for (const [name, bytes] of allowed) await writeFile(join(root, name), bytes)
  await link(join(root, 'hello.txt'), join(root, 'hard-in.txt'))
  await symlink('hello.txt', join(root, 'link-in'))
  await symlink('../secret.txt', join(root, 'link-out'))
  await symlink(join(base, 'secret.txt'), join(root, 'abs-link'))
  await symlink('../../outside', join(root, 'dir-out'))
  await symlink('chain2', join(root, 'chain1'))
  await symlink('../secret.txt', join(root, 'chain2'))
  await symlink('loop', join(root, 'loop'))
  await symlink('../..', join(root, 'sub', 'link-up'))
  return {
    base,
    root,
    secret: join(base, 'secret.txt'),
    marker,
    allowed,
    remove: async () => { await rm(base, { recursive: true, force: true }) }
  }
}
