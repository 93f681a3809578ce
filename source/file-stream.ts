import { close, read } from 'node:fs'
import { Readable } from 'node:stream'
import { DownloadError } from './errors.ts'

/**
 * Reads bytes `start`…`end` (inclusive) of an open file descriptor, in chunks of `chunkSize`, and
 * closes it when it ends, fails or is destroyed (client abort). A file that turns out shorter than
 * promised (truncated while served) is an error, never a quietly short end: the response is then
 * aborted instead of looking complete.
 */
export class FileStream extends Readable {
  #fd: number | undefined
  #position: number
  readonly #end: number
  readonly #chunkSize: number
  /** A read is in the thread pool: the descriptor is closed after it, never under it (a reused number could be a socket). */
  #reading = false
  #afterRead: (() => void) | undefined

  constructor (fd: number, start: number, end: number, chunkSize: number) {
    super({ highWaterMark: chunkSize })
    this.#fd = fd
    this.#position = start
    this.#end = end
    this.#chunkSize = chunkSize
  }

  override _read (): void {
    const fd = this.#fd
    if (fd === undefined) return
    const remaining = this.#end - this.#position + 1
    if (remaining <= 0) {
      this.push(null)
      return
    }
    const length = Math.min(remaining, this.#chunkSize)
    const buffer = Buffer.allocUnsafe(length)
    // callback fs: a FileHandle promise per chunk costs more (bench/)
    this.#reading = true
    read(fd, buffer, 0, length, this.#position, (error, bytesRead) => {
      this.#reading = false
      const afterRead = this.#afterRead
      if (afterRead !== undefined) {
        this.#afterRead = undefined
        afterRead()
      }
      if (this.destroyed) return
      if (error !== null) {
        this.destroy(error)
        return
      }
      if (bytesRead === 0) {
        this.destroy(new DownloadError('E_CHANGED', `file ended ${remaining} bytes early (truncated while being sent)`))
        return
      }
      this.#position += bytesRead
      this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))
      if (this.#position > this.#end) this.push(null)
    })
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.#fd
    this.#fd = undefined
    if (fd === undefined) {
      callback(error)
      return
    }
    const closeNow = (): void => { close(fd, (closeError) => { callback(error ?? closeError) }) }
    if (this.#reading) this.#afterRead = closeNow
    else closeNow()
  }
}
