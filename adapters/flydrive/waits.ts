import { expireAfterPoll } from '../../source/guarded-stream.ts'
import { noResponseError } from './storage-error.ts'

/**
 * `operation`'s result, or a rejection when `timeout` ms pass first (ETIMEDOUT → E_TIMEOUT) or `signal`
 * aborts (the client went away: an AbortError). The operation itself goes on, unless its own
 * timeout ends it; a value it still gives after we gave up is handed to `discard` (a stream to
 * destroy), its failure ignored.
 */
export async function within<T> (operation: T | PromiseLike<T>, timeout: number, signal: AbortSignal | undefined, discard?: (late: T) => void): Promise<T> {
  // A driver written in JavaScript may answer with the value itself, as `await` allows.
  const promise = Promise.resolve(operation)
  let gaveUp = false
  promise.then((value) => { if (gaveUp) discard?.(value) }, () => {})
  let cancel: (() => void) | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      const giveUp = (error: Error): void => {
        gaveUp = true
        reject(error)
      }
      if (signal?.aborted === true) {
        giveUp(abortError(signal))
        return
      }
      onAbort = () => { giveUp(abortError(signal as AbortSignal)) }
      signal?.addEventListener('abort', onAbort, { once: true })
      cancel = expireAfterPoll(timeout, () => { giveUp(noResponseError(timeout)) })
    })])
  } finally {
    cancel?.()
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
  }
}

/** Whether the client had gone already (a function: TypeScript would take the flag for fixed after one check). */
export function gone (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** The client's abort as an AbortError (passed through by storageError(), quiet in serve()). */
export function abortError (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if ((reason as { name?: unknown } | null)?.name === 'AbortError') return reason as Error
  return new DOMException('the client went away', 'AbortError')
}
