import type { Readable } from 'node:stream'
import type { File, Storage, StorageOptions } from '@google-cloud/storage'
import type { DriverContract } from 'flydrive/types'
import { DownloadError } from '../../source/errors.ts'
import type { ByteRange, FileStat, OpenOptions } from '../../source/types.ts'
import { expireAfterPoll, guardStream } from '../../source/guarded-stream.ts'
import { parseContentRange } from '../../source/range.ts'
import type { Backend, BackendOptions, StorageObject } from './backend.ts'
import { byteCount, statFromMetaData } from './backend.ts'
import { encodeKey } from './storage-key.ts'
import { noResponseError, storageError } from './storage-error.ts'
import { debug } from '../../source/debug.ts'

export type GcsDriverLike = DriverContract & {
  options: { bucket: string, storage?: Storage, visibility?: string } & StorageOptions
}

/** The object generation a stat() saw, on the FileStat it returned (kept by StorageFile's spread). */
const generationOf = Symbol('gcs generation')
type GcsStat = FileStat & { [generationOf]?: string }

/**
 * GCS disks: metadata through the SDK's `getMetadata()`, as flydrive's getMetaData() makes it (the
 * opaque etag, quoted) plus the object's generation; bytes through the SDK's
 * `createReadStream({ start, end })` of that generation. That stream neither ends nor errors when the
 * connection drops mid-body (reference/test-infra.md §8), so it is guarded by an idle timeout and an
 * exact length. open() waits for the response status, so a missing object is still a 404 before any
 * header.
 *
 * The SDK gives no handle on a request before its response, and takes no abort signal: destroying
 * its stream then leaves the request open. Only its per-request `timeout` (node-fetch's, 60 s by
 * default) aborts the request itself. So every request of ours carries a `timeout` of idleTimeout
 * plus a second (boundedFile()): a storage that never answers has its request closed soon after we
 * give up on it, and a request left behind by a client that went away lasts no longer. Our own waits
 * (metadata, media response) end at once on the client's abort, and a response that comes after we
 * gave up is discarded with its connection (abandoner()).
 *
 * Pinning the generation keeps an object replaced since stat() from being sent under the old
 * validators. The SDK sends no `ifGenerationMatch` with a media read (only `generation`), so the read
 * asks for the generation stat() saw: without object versioning a replaced generation no longer
 * exists (404), and that 404 means E_CHANGED (serve() plans again: the new object, or a 404 if it was
 * deleted). With versioning the old generation is read, which its validators describe.
 */
export function gcsBackend (driver: GcsDriverLike): Backend {
  const { bucket } = driver.options
  let storage: Promise<Storage> | undefined
  const getStorage = async (): Promise<Storage> => {
    storage ??= driver.options.storage !== undefined
      ? Promise.resolve(driver.options.storage)
      : import('@google-cloud/storage').then(({ Storage }) => new Storage(driver.options))
    return await storage
  }
  const base = publicBase(driver.options.storage?.apiEndpoint ?? driver.options.apiEndpoint)
  return {
    kind: 'gcs',
    object (key: string, options: BackendOptions): StorageObject {
      const what = `gcs ${bucket}/${key}`
      return {
        // A private disk's objects are not readable unsigned: no URL for a proxy to fetch.
        url: driver.options.visibility === 'private' ? undefined : `${base}/${encodeKey(bucket)}/${encodeKey(key)}`,
        async stat (signal?: AbortSignal): Promise<FileStat> {
          // A client gone before the call (over HTTP/2, reset while the route decided): no request,
          // which the SDK would keep open until it timed out.
          if (gone(signal)) throw abortError(signal as AbortSignal)
          try {
            const file = boundedFile((await getStorage()).bucket(bucket).file(key), options.idleTimeout)
            const [meta] = await within(file.getMetadata(), options.idleTimeout, signal)
            const stat: GcsStat = statFromMetaData({ contentType: meta.contentType, contentLength: byteCount(meta.size), etag: meta.etag, lastModified: new Date(meta.updated ?? ''), contentEncoding: meta.contentEncoding })
            const generation = String(meta.generation ?? '')
            // The SDK turns it into a number: one past 2^53 would name another generation.
            if (/^\d+$/.test(generation) && Number.isSafeInteger(Number(generation))) stat[generationOf] = generation
            return stat
          } catch (error) {
            throw storageError(error, what)
          }
        },
        async open (stat: FileStat, range: ByteRange | undefined, openOptions?: OpenOptions): Promise<Readable> {
          const signal = openOptions?.signal
          if (gone(signal)) throw abortError(signal as AbortSignal)
          const generation = (stat as GcsStat)[generationOf]
          const client = await getStorage()
          const retry = retryPolicy(client.retryOptions)
          for (let attempt = 0; ; attempt++) {
            const file = boundedFile(client.bucket(bucket).file(key, generation === undefined ? {} : { generation }), options.idleTimeout, { retries: false })
            // The stored bytes, as metadata sized them (no transparent gunzip). Ranged reads are never
            // hash-checked by the SDK; full reads are (crc32c).
            const stream = file.createReadStream(range === undefined ? { decompress: false } : { start: range.start, end: range.end, decompress: false })
            const abandon = abandoner(stream)
            signal?.addEventListener('abort', abandon, { once: true })
            stream.once('close', () => signal?.removeEventListener('abort', abandon))
            try {
              // The SDK sends the request on the first read: read(0) starts it without taking bytes.
              const response = responded(stream, options.idleTimeout, signal, range === undefined ? undefined : { ...range, size: stat.size, what })
              stream.read(0)
              await response
            } catch (error) {
              abandon()
              if (signal?.aborted === true) throw abortError(signal)
              const wait = retry(error, attempt)
              if (wait !== undefined) {
                debug('%s: %s, read again in %d ms (retry %d)', what, (error as Error | null)?.message ?? String(error), wait, attempt + 1)
                await pause(wait, signal)
                continue
              }
              const failure = storageError(error, what)
              if (generation !== undefined && failure instanceof DownloadError && failure.code === 'E_NOT_FOUND') {
                throw new DownloadError('E_CHANGED', `${what}: generation ${generation} is gone (replaced or deleted since its metadata was read)`, { cause: error })
              }
              throw failure
            }
            const expected = range === undefined ? stat.size : range.end - range.start + 1
            return guardStream(stream, { expected, idleTimeout: options.idleTimeout, what })
          }
        }
      }
    }
  }
}

/**
 * Added to idleTimeout for the SDK's own request timeout: our wait gives its verdict after one more
 * poll for I/O (responded()), node-fetch's timer does not, so a response that arrived while the event
 * loop was held up past idleTimeout must not be cut by the SDK first.
 */
const SDK_TIMEOUT_GRACE = 1000

/**
 * `file` with every request it sends carrying a node-fetch `timeout` of at most idleTimeout + grace:
 * the only way to have the SDK abort a request that has no response yet (the timer runs from the
 * socket to the response head, and for a metadata request on to the end of its JSON body; a media
 * body is guarded by guardStream()). A shorter `timeout` of the Storage client is kept.
 *
 * `retries: false` turns the SDK's own retries off (`maxRetries: 0`, which also stops its retries of
 * a request that got no response). Media reads need that: when the SDK retries a read answered with
 * an error status (a 503, a 429 …), it pipes the late response into the stream it has already
 * destroyed, and that pipeline() throws from its event handler — an uncaught
 * ERR_STREAM_UNABLE_TO_PIPE that ends the process (@google-cloud/storage 7.x with teeny-request 9).
 * open() retries those reads itself (retryPolicy()).
 */
function boundedFile (file: File, idleTimeout: number, { retries = true }: { retries?: boolean } = {}): File {
  const timeout = idleTimeout + SDK_TIMEOUT_GRACE
  const request = (reqOpts: { timeout?: number, maxRetries?: number }): { timeout?: number, maxRetries?: number } => {
    const own = reqOpts.timeout
    reqOpts.timeout = typeof own === 'number' && own > 0 && own < timeout ? own : timeout
    if (!retries) reqOpts.maxRetries = 0
    return reqOpts
  }
  file.interceptors.push({ request: request as unknown as NonNullable<File['interceptors'][number]['request']> })
  return file
}

type RetryOptions = Storage['retryOptions']

/**
 * The Storage client's own retry settings, applied by open() to its media reads (the SDK's are off
 * there: boundedFile()). A failed read is tried again while `autoRetry` is on, fewer than
 * `maxRetries` retries were made and the client's `retryableErrorFn` accepts the error (by default:
 * 408, 429, 500, 502, 503, 504 and a connection reset before the response), after the SDK's delay:
 * retryDelayMultiplier^retry seconds plus up to one second of jitter, at most `maxRetryDelay`, and
 * never past `totalTimeout` from the first read. Returns that delay in ms, or undefined: no retry.
 * Our own timeout (no response within idleTimeout) is not retried.
 */
function retryPolicy (options: RetryOptions | undefined): (error: unknown, attempt: number) => number | undefined {
  const started = Date.now()
  return (error, attempt) => {
    if (options === undefined || options.autoRetry === false) return undefined
    if (attempt >= (options.maxRetries ?? 3)) return undefined
    if (error instanceof DownloadError || options.retryableErrorFn?.(error as Parameters<NonNullable<RetryOptions['retryableErrorFn']>>[0]) !== true) return undefined
    const delay = Math.pow(options.retryDelayMultiplier ?? 2, attempt) * 1000 + Math.floor(Math.random() * 1000)
    const left = (options.totalTimeout ?? 600) * 1000 - (Date.now() - started)
    const wait = Math.min(delay, (options.maxRetryDelay ?? 64) * 1000, left)
    return wait > 0 ? wait : undefined
  }
}

/** Resolves after `ms`, or rejects at once with the client's abort. */
async function pause (ms: number, signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortError(signal))
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(abortError(signal as AbortSignal))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * `promise`, or a rejection when `timeout` ms pass first (ETIMEDOUT → E_TIMEOUT) or `signal`
 * aborts (the client went away). The operation itself is bounded by boundedFile().
 */
async function within<T> (promise: Promise<T>, timeout: number, signal: AbortSignal | undefined): Promise<T> {
  promise.catch(() => {})
  let cancel: (() => void) | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([promise, new Promise<never>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortError(signal))
        return
      }
      onAbort = () => { reject(abortError(signal as AbortSignal)) }
      signal?.addEventListener('abort', onAbort, { once: true })
      cancel = expireAfterPoll(timeout, () => { reject(noResponseError(timeout)) })
    })])
  } finally {
    cancel?.()
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
  }
}

/** Whether the client had gone already (a function: TypeScript would take the flag for fixed after one check). */
function gone (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** The client's abort as an AbortError (passed through by storageError(), quiet in serve()). */
function abortError (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if ((reason as { name?: unknown } | null)?.name === 'AbortError') return reason as Error
  return new DOMException('the client went away', 'AbortError')
}

/**
 * A function that gives up on the SDK's read `stream` safely. Before its response, destroying the
 * stream is fatal: the SDK pipes the response into it when it comes, and pipeline() into a destroyed
 * stream throws synchronously from the SDK's event handler — an uncaught ERR_STREAM_UNABLE_TO_PIPE
 * that ends the process. So until then the stream is only marked: it is destroyed right after the
 * SDK has piped a late response into it (which destroys that response's body), and any error the
 * abandoned request still reports (the SDK's timeout) is ignored.
 */
function abandoner (stream: Readable): () => void {
  let answered = false
  let abandoned = false
  stream.once('response', () => {
    answered = true
    // After the SDK's own 'response' handler, which runs after this emit returns.
    if (abandoned) setImmediate(() => { stream.destroy() })
  })
  return () => {
    if (abandoned) return
    abandoned = true
    stream.on('error', () => {})
    if (answered) stream.destroy()
  }
}

/**
 * Resolves on a 2xx response, rejects with the SDK's error (404 …), a timeout, an early close, or
 * the client's abort. A ranged read must be answered 206 with exactly the part asked for (as S3's
 * is): an endpoint that ignores Range sends the object from byte 0, which the length guard would
 * only stop after those wrong bytes went out under the part's Content-Range.
 */
async function responded (stream: Readable, timeout: number, signal: AbortSignal | undefined, part?: ByteRange & { size: number | undefined, what: string }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    // done() is a no-op once the promise has settled.
    const cancel = expireAfterPoll(timeout, () => { done(noResponseError(timeout)) })
    const done = (error?: unknown): void => {
      cancel()
      stream.off('response', onResponse)
      stream.off('error', done)
      stream.off('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (error === undefined) resolve()
      else reject(error)
    }
    const onResponse = (response: { statusCode?: number, status?: number, headers?: Record<string, string | undefined> }): void => {
      const status = response.statusCode ?? response.status ?? 200
      // An error status is followed by the SDK's 'error' event, which carries the details.
      if (status >= 300) return
      if (part !== undefined) {
        const header = response.headers?.['content-range']
        const sent = status === 206 ? parseContentRange(header) : undefined
        if (sent === undefined || sent.start !== part.start || sent.end !== part.end || (part.size !== undefined && sent.size !== part.size)) {
          done(new DownloadError('E_UPSTREAM', `${part.what}: asked for bytes ${part.start}-${part.end}, got ${status} ${header ?? '(no Content-Range)'}`))
          return
        }
      }
      done()
    }
    const onClose = (): void => { done(new Error('the GCS stream closed before a response')) }
    const onAbort = (): void => { done(abortError(signal as AbortSignal)) }
    if (signal?.aborted === true) {
      onAbort()
      return
    }
    stream.on('response', onResponse)
    stream.on('error', done)
    stream.on('close', onClose)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** What the SDK's `file.publicUrl()` uses: the API endpoint (https://storage.googleapis.com by default). */
function publicBase (endpoint: string | undefined): string {
  if (typeof endpoint === 'string' && endpoint !== '') {
    const withScheme = /^https?:\/\//.test(endpoint) ? endpoint : `https://${endpoint}`
    return withScheme.replace(/\/+$/, '')
  }
  return 'https://storage.googleapis.com'
}
