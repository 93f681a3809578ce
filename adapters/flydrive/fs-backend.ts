import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PathFile } from '../../source/path-file.ts'
import type { Backend, StorageObject } from './backend.ts'

/**
 * Local disks (flydrive FSDriver): delegated to PathFile with the disk's location as its root, which
 * gives the mtime+size ETag, strong once the mtime's second is over (flydrive's own is weak, and a
 * weak tag never satisfies If-Range),
 * the symlink-escape check, the changed-between-stat-and-open check, and ranged fs reads.
 */
export function fsBackend (location: string | URL): Backend {
  const root = resolve(typeof location === 'string' ? location : fileURLToPath(location))
  return {
    kind: 'fs',
    object (key: string): StorageObject {
      const file = new PathFile(key, { root })
      return {
        path: file.path,
        // No declared type (flydrive's has no charset): the download name decides, with charset for text.
        stat: async () => await file.stat(),
        open: async (_stat, range, options) => await file.open(range, options),
        read: async (_stat, range) => await file.read(range)
      }
    }
  }
}
