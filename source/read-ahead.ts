import type { ByteRange, StatOptions } from './types.ts'

/**
 * What a file wrapper opened ahead of the read that serve() announced (`stat({ willRead })`): a
 * descriptor, an upstream response. The read that follows in the same turn of the event loop takes
 * it; whatever nobody took by the end of that turn is released (closed, aborted), so that a
 * response that ends without reading (416, an error, a caller that never opens) leaks nothing.
 */
export class ReadAhead<T> {
  readonly #release: (value: T) => void
  #value: T | undefined

  constructor (release: (value: T) => void) {
    this.#release = release
  }

  /** Holds `value` until take() or the end of the turn; anything held before is released now. */
  hold (value: T): void {
    this.drop()
    this.#value = value
    setImmediate(() => {
      if (this.#value === value) this.drop()
    })
  }

  /** The held value, handed over (the caller now owns it), or undefined. */
  take (): T | undefined {
    const value = this.#value
    this.#value = undefined
    return value
  }

  /** The held value if `fits` accepts it (handed over); one it refuses is released now. */
  takeIf (fits: (value: T) => boolean): T | undefined {
    const value = this.take()
    if (value === undefined || fits(value)) return value
    this.#release(value)
    return undefined
  }

  /** Releases the held value now, if any. */
  drop (): void {
    const value = this.take()
    if (value !== undefined) this.#release(value)
  }
}

/**
 * For a remote source: the request stat() may make as the read itself — `{ range }` (undefined:
 * the whole file) when serve() announced a whole read or one plain range, else undefined.
 */
export function readToStart (options: StatOptions | undefined): { range: string | undefined } | undefined {
  if (options?.willRead === 'whole') return { range: undefined }
  if (options?.willRead === 'range' && options.range !== undefined) return { range: options.range }
  return undefined
}

/** Whether a part fetched ahead (undefined: the whole file) is exactly the part asked for. */
export function samePart (a: ByteRange | undefined, b: ByteRange | undefined): boolean {
  return a?.start === b?.start && a?.end === b?.end
}
