import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { DownloadError } from './errors.ts'

/**
 * Reads bytes `start`…`end` (inclusive) of an open file, in chunks of `chunkSize`, and closes the
 * handle when it ends, fails or is destroyed (client abort). A file that turns out shorter than
 * promised (truncated while served) is an error, never a quietly short end: the response is then
 * aborted instead of looking complete.
 */
export class FileStream extends Readable {
  #handle: FileHandle | undefined
  #position: number
  readonly #end: number
  readonly #chunkSize: number

  constructor (handle: FileHandle, start: number, end: number, chunkSize: number) {
    super({ highWaterMark: chunkSize })
    this.#handle = handle
    this.#position = start
    this.#end = end
    this.#chunkSize = chunkSize
  }

  override _read (): void {
    const handle = this.#handle
    if (handle === undefined) return
    const remaining = this.#end - this.#position + 1
    if (remaining <= 0) {
      this.push(null)
      return
    }
    const length = Math.min(remaining, this.#chunkSize)
    const buffer = Buffer.allocUnsafe(length)
    handle.read(buffer, 0, length, this.#position).then(({ bytesRead }) => {
      if (this.destroyed) return
      if (bytesRead === 0) {
        this.destroy(new DownloadError('E_CHANGED', `file ended ${remaining} bytes early (truncated while being sent)`))
        return
      }
      this.#position += bytesRead
      this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))
      if (this.#position > this.#end) this.push(null)
    }, (error: unknown) => { this.destroy(error as Error) })
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle
    this.#handle = undefined
    if (handle === undefined) {
      callback(error)
      return
    }
    handle.close().then(() => { callback(error) }, (closeError: unknown) => { callback(error ?? closeError as Error) })
  }
}
