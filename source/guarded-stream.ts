import { Readable } from 'node:stream'
import { DownloadError } from './errors.ts'
import { debug } from './debug.ts'

export interface GuardOptions {
  /**
   * Exact number of bytes the source must deliver; fewer or more is an error, never a clean end.
   * The last of them is passed on once the source has ended, so a longer source fails before the
   * consumer has them all.
   */
  expected?: number | undefined
  /**
   * Longest silence (ms) tolerated while the consumer is waiting for bytes. Time spent paused by
   * backpressure does not count, so a slow client is never mistaken for a dead source.
   */
  idleTimeout?: number | undefined
  /** For log lines and error messages, e.g. `s3 reports/q1.pdf`. */
  what: string
  /**
   * Pass the source's own errors on as they are, instead of as an `E_UPSTREAM` failure (502): for
   * a source that is the app's own (a generated export), whose failure is the app's (500), or
   * carries its own status. A wrong length is still `E_UPSTREAM`.
   */
  keepSourceErrors?: boolean | undefined
  /**
   * A check of the bytes against a digest the source announced (a storage's MD5 or CRC32C): fed
   * every chunk as it arrives; at the source's end, `mismatch()` is asked before the byte held back
   * (see `expected`) is passed on, so a body that fails it never reaches the consumer whole.
   * It returns why the bytes are wrong, or undefined.
   */
  digest?: { update (bytes: Buffer): void, mismatch (): string | undefined } | undefined
  /**
   * Longest wait (ms) for the source's end once it has delivered all `expected` bytes, whose last
   * one is held back until then: a source that stops there without ending (a stream never ended, a
   * generator whose cleanup hangs) would otherwise leave the client one byte short with the
   * connection open for good. The transfer is then cut (E_TIMEOUT). For sources without an
   * `idleTimeout`, which covers this wait too.
   */
  endTimeout?: number | undefined
}

/** The streams guardStream() made with a length check. */
const guarded = new WeakSet<Readable>()

/**
 * Calls `expire` once `ms` have passed and the event loop has then polled for I/O once more.
 * Expired timers run before that poll: after a hold-up longer than `ms` (a long synchronous task,
 * a GC pause, a CPU-starved machine), a response that reached the socket meanwhile is still unread,
 * and is not a missing one (guardStream()'s idle timer does the same per chunk). The function
 * returned cancels it, also between the timer and that poll. For the waits for a response's head:
 * the upstream request of HttpFile, S3's and GCS's requests.
 */
export function expireAfterPoll (ms: number, expire: () => void): () => void {
  let live = true
  const timer = setTimeout(() => { setImmediate(() => { if (live) expire() }) }, ms)
  return () => {
    live = false
    clearTimeout(timer)
  }
}

/**
 * How long a sized source (a generated stream with its `size`, a part of a multipart response) may
 * take to end once it has sent all its bytes: the last one is held back until then (guardStream),
 * so that a source longer than it said fails before the client holds a complete response. One that
 * never ends is cut after this.
 */
export const END_TIMEOUT = 30_000

/** Whether `stream` came out of guardStream() with a length check (serve() then adds none). */
export function isLengthGuarded (stream: Readable): boolean {
  return guarded.has(stream)
}

/**
 * Wraps a source stream so that every way it can go wrong mid-body surfaces as an error on the
 * returned stream: a short or long body, a premature close without 'end', a source error, or an
 * idle source (some SDK streams, e.g. @google-cloud/storage 7, hang forever when the connection
 * drops). `serve()` then destroys the response, so the client sees a truncated transfer instead of
 * a silently short 200. Destroying the returned stream (client abort) destroys the source.
 */
export function guardStream (source: Readable, options: GuardOptions): Readable {
  const { expected, idleTimeout, what, keepSourceErrors = false, digest, endTimeout } = options
  let received = 0
  let ended = false
  let timer: NodeJS.Timeout | undefined
  let endTimer: NodeJS.Timeout | undefined

  // While bytes flow, one timer is pushed back with refresh() on every chunk (not a new timer per
  // chunk); it is cleared — and a new one made later — only while backpressure holds the source
  // (a cleared timer cannot be refreshed).
  const disarm = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    if (endTimer !== undefined && (ended || out.destroyed)) {
      clearTimeout(endTimer)
      endTimer = undefined
    }
  }
  const arm = (): void => {
    if (idleTimeout === undefined || ended) return
    if (timer !== undefined) {
      timer.refresh()
      return
    }
    timer = setTimeout(() => {
      timer = undefined
      const seen = received
      // Expired timers run before the event loop polls for I/O. After a hold-up longer than the
      // timeout (a long synchronous task, a GC pause, a CPU-starved machine), bytes that reached
      // the socket meanwhile are still unread: let the loop poll once more before calling the
      // source silent. Those bytes re-arm the timer (or, under backpressure, disarm it).
      setImmediate(() => {
        if (timer !== undefined || received !== seen || ended || out.destroyed) return
        debug('%s: no data for %d ms, aborting the transfer', what, idleTimeout)
        out.destroy(new DownloadError('E_TIMEOUT', `${what}: no data for ${idleTimeout} ms`))
      })
    }, idleTimeout)
    timer.unref()
  }
  const fail = (error: Error): void => {
    disarm()
    if (!out.destroyed) out.destroy(error)
  }

  const out = new Readable({
    read () {
      if (timer === undefined) arm()
      source.resume()
    },
    destroy (error, callback) {
      disarm()
      source.destroy()
      callback(error)
    }
  })

  // The byte that completes `expected` is passed on only at the source's end. A client given every
  // byte of its Content-Length holds a complete response, whatever happens next; so a source longer
  // than it said (a generated report, a storage whose metadata was stale) must fail before that
  // byte, or its overrun, found with its next chunk, would only close a connection already done.
  let last: Buffer | undefined

  source.pause()
  source.on('data', (data: Buffer | string) => {
    let chunk = data
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length
    received += size
    if (digest !== undefined) digest.update(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    if (expected !== undefined && received >= expected) {
      if (received > expected) {
        debug('%s: source sent more than the expected %d bytes', what, expected)
        fail(new DownloadError('E_UPSTREAM', `${what}: the source sent more than ${expected} bytes`))
        return
      }
      if (size === 0) return
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      last = bytes.subarray(bytes.length - 1)
      chunk = bytes.subarray(0, bytes.length - 1)
      if (endTimeout !== undefined && endTimer === undefined) {
        endTimer = setTimeout(() => {
          endTimer = undefined
          if (ended || out.destroyed) return
          debug('%s: all %d bytes came, but the source did not end within %d ms', what, expected, endTimeout)
          fail(new DownloadError('E_TIMEOUT', `${what}: all ${expected} bytes came, but the source did not end within ${endTimeout} ms`))
        }, endTimeout)
        endTimer.unref()
      }
      if (chunk.length === 0) {
        // Nothing to pass on: the source keeps flowing, to its end (or its overrun).
        arm()
        return
      }
    }
    if (out.push(chunk)) {
      arm()
    } else {
      disarm()
      source.pause()
    }
  })
  source.once('end', () => {
    ended = true
    disarm()
    if (expected !== undefined && received !== expected) {
      debug('%s: source ended after %d of %d bytes', what, received, expected)
      fail(new DownloadError('E_UPSTREAM', `${what}: the source ended after ${received} of ${expected} bytes`))
      return
    }
    const wrong = digest?.mismatch()
    if (wrong !== undefined) {
      debug('%s: %s', what, wrong)
      fail(new DownloadError('E_UPSTREAM', `${what}: ${wrong}`))
      return
    }
    if (last !== undefined) out.push(last)
    out.push(null)
  })
  const onError = (error: Error): void => {
    if (error instanceof DownloadError || keepSourceErrors) {
      fail(error)
      return
    }
    debug('%s: source failed after %d bytes: %s', what, received, error.message)
    fail(new DownloadError('E_UPSTREAM', `${what}: the source failed after ${received} bytes`, { cause: error }))
  }
  const onClose = (): void => {
    if (!ended && !out.destroyed) {
      debug('%s: source closed after %d bytes without ending', what, received)
      fail(new DownloadError('E_UPSTREAM', `${what}: the source closed after ${received} bytes`))
    }
  }
  source.once('error', onError)
  source.once('close', onClose)
  if (expected !== undefined) guarded.add(out)
  // A source that failed, was destroyed or was read to its end before it got here has emitted
  // those events already: waiting for them would hold the response forever, with no status line.
  const errored = source.errored
  if (errored !== null && errored !== undefined) {
    onError(errored instanceof Error ? errored : new Error(String(errored)))
    return out
  }
  if (source.readableEnded) {
    ended = true
    if (expected !== undefined && expected !== 0) fail(new DownloadError('E_UPSTREAM', `${what}: the source had already ended before it was sent`))
    else out.push(null)
    return out
  }
  if (source.destroyed) onClose()
  return out
}

/**
 * Why a stream handed over to be sent cannot be, if it had settled before: the error it failed
 * with, or a 502 when it was read to its end elsewhere (its bytes went there, and an empty body
 * would pass for the whole file) or closed; `undefined` for one still to be read (or a generator,
 * which tells nothing). For node:stream Readables, and for those of other libraries, which a
 * Readable.from() wrapper would hide: readable-stream (3 keeps no error once destroyed with one:
 * that is a stream closed before it was sent) and minipass.
 */
export function settledBeforeSent (source: unknown): Error | undefined {
  const stream = source as {
    destroyed?: unknown
    errored?: unknown
    readableEnded?: unknown
    emittedEnd?: unknown
    _readableState?: { endEmitted?: unknown, errored?: unknown } | null
  }
  const state = typeof stream._readableState === 'object' ? stream._readableState : undefined
  const errored = stream.errored ?? state?.errored
  if (errored instanceof Error) return errored
  if (stream.readableEnded === true || stream.emittedEnd === true || state?.endEmitted === true) {
    return new DownloadError('E_UPSTREAM', 'the source had been read to its end before it was sent')
  }
  if (stream.destroyed === true) return new DownloadError('E_UPSTREAM', 'the source was closed before it was sent')
  return undefined
}
