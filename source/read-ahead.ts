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

  /** Releases the held value now, if any. */
  drop (): void {
    const value = this.take()
    if (value !== undefined) this.#release(value)
  }
}
