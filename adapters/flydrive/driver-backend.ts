import type { DriverContract } from 'flydrive/types'
import { DownloadError } from '../../source/errors.ts'
import type { FileStat } from '../../source/types.ts'
import { guardStream } from '../../source/guarded-stream.ts'
import type { Backend, BackendOptions, StorageObject } from './backend.ts'
import { statFromMetaData } from './backend.ts'
import { storageError } from './storage-error.ts'

/**
 * Any other flydrive driver (a custom one; not FakeDisk, which wraps an FSDriver: a local disk):
 * metadata and whole-object streams through the driver contract. It has no ranged read, so
 * `ranges: false` makes serve() answer Range requests with the full file instead of reading and
 * discarding.
 */
export function driverBackend (driver: DriverContract): Backend {
  return {
    kind: 'driver',
    object (key: string, options: BackendOptions): StorageObject {
      const what = `storage ${key}`
      return {
        async stat (): Promise<FileStat> {
          try {
            return { ...statFromMetaData(await driver.getMetaData(key)), ranges: false }
          } catch (error) {
            throw storageError(error, what)
          }
        },
        async open (stat, range) {
          if (range !== undefined && (range.start !== 0 || range.end !== (stat.size ?? 0) - 1)) {
            throw new DownloadError('E_UPSTREAM', `${what}: this driver cannot read a byte range`)
          }
          try {
            return guardStream(await driver.getStream(key), { expected: stat.size, idleTimeout: options.idleTimeout, what })
          } catch (error) {
            throw storageError(error, what)
          }
        }
      }
    }
  }
}
