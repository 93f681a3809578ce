import { randomFillSync } from 'node:crypto'
import { chmodSync, closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

export type FixtureName = 'small.bin' | 'medium.bin' | 'large.bin' | 'huge.bin'

export interface Fixtures {
  /** The temp directory: fixture files in `files/`, nginx prefix and logs beside them. */
  dir: string
  root: string
  sizes: Record<FixtureName, number>
}

export const fixtureSizes: Record<FixtureName, number> = { 'small.bin': 4 * KiB, 'medium.bin': MiB, 'large.bin': 256 * MiB, 'huge.bin': GiB }

/**
 * 4 KiB, 1 MiB and 256 MiB of random bytes (read back once so that they sit in the page cache),
 * and a sparse 1 GiB file for the slow-clients memory test. World-readable: nginx workers run as
 * nobody when the runner is root.
 */
export function makeFixtures (): Fixtures {
  const dir = mkdtempSync(join(tmpdir(), 'kd-bench-'))
  const root = join(dir, 'files')
  mkdirSync(root)
  mkdirSync(join(dir, 'logs'))
  chmodSync(dir, 0o755)
  chmodSync(root, 0o755)
  const block = randomFillSync(Buffer.alloc(MiB))
  for (const name of ['small.bin', 'medium.bin', 'large.bin'] as const) {
    const fd = openSync(join(root, name), 'w', 0o644)
    for (let written = 0; written < fixtureSizes[name];) {
      const length = Math.min(block.length, fixtureSizes[name] - written)
      // a different first byte per MiB, so that no two MiB of the large file are identical
      block[0] = (written / MiB) & 0xff
      writeSync(fd, block, 0, length)
      written += length
    }
    closeSync(fd)
    warm(join(root, name))
  }
  const fd = openSync(join(root, 'huge.bin'), 'w', 0o644)
  ftruncateSync(fd, fixtureSizes['huge.bin'])
  closeSync(fd)
  return { dir, root, sizes: fixtureSizes }
}

function warm (path: string): void {
  const fd = openSync(path, 'r')
  const buffer = Buffer.allocUnsafe(MiB)
  while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  closeSync(fd)
}
