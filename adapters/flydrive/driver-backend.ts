import type { Readable } from 'node:stream'
import type { DriverContract } from 'flydrive/types'
import { DownloadError } from '../../source/errors.ts'
import type { FileStat } from '../../source/types.ts'
import { guardStream } from '../../source/guarded-stream.ts'
import type { Backend, BackendOptions, StorageObject } from './backend.ts'
import { statFromMetaData } from './backend.ts'
import { storageError } from './storage-error.ts'
import { abortError, gone, within } from './waits.ts'

/**
 * Any other flydrive driver (a custom one; not FakeDisk, which wraps an FSDriver: a local disk):
 * metadata and whole-object streams through the driver contract. It has no ranged read, so
 * `ranges: false` makes serve() answer Range requests with the full file instead of reading and
 * discarding.
 *
 * The contract takes no abort signal and no timeout, so the adapter bounds its waits: a driver
 * that has not answered `getMetaData()` or `getStream()` within idleTimeout is a timeout (504), and
 * a client that leaves ends the wait at once; a stream the driver gives after that is destroyed.
 * A client gone before a call makes none.
 */
export function driverBackend (driver: DriverContract): Backend {
  return {
    kind: 'driver',
    object (key: string, options: BackendOptions): StorageObject {
      const what = `storage ${key}`
      return {
        async stat (signal?: AbortSignal): Promise<FileStat> {
          if (gone(signal)) throw abortError(signal as AbortSignal)
          try {
            return { ...statFromMetaData(await within(driver.getMetaData(key), options.idleTimeout, signal)), ranges: false }
          } catch (error) {
            throw storageError(error, what)
          }
        },
        async open (stat, range, openOptions) {
          if (range !== undefined && (range.start !== 0 || range.end !== (stat.size ?? 0) - 1)) {
            throw new DownloadError('E_UPSTREAM', `${what}: this driver cannot read a byte range`)
          }
          const signal = openOptions?.signal
          if (gone(signal)) throw abortError(signal as AbortSignal)
          try {
            const stream = await within(driver.getStream(key), options.idleTimeout, signal, (late: Readable | null) => {
              // Nobody reads a stream that came too late: an error it emits while closing (an fs
              // stream whose file was deleted meanwhile) would end the process unhandled.
              late?.on?.('error', () => {})
              late?.destroy?.()
            })
            return guardStream(stream, { expected: stat.size, idleTimeout: options.idleTimeout, what })
          } catch (error) {
            throw storageError(error, what)
          }
        }
      }
    }
  }
}
