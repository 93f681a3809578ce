import type { Readable } from 'node:stream'
import type { Disk } from 'flydrive'
import type { DriverContract, SignedURLOptions } from 'flydrive/types'
import { isHeaderSafe } from '../../source/download.ts'
import { DownloadError, notFound } from '../../source/errors.ts'
import { expireAfterPoll } from '../../source/guarded-stream.ts'
import { ReadAhead, readToStart, samePart } from '../../source/read-ahead.ts'
import type { ByteRange, DownloadFile, FileStat, OpenOptions, StatOptions } from '../../source/types.ts'
import type { Backend, StorageObject } from './backend.ts'
import { driverKind } from './backend.ts'
import { driverBackend } from './driver-backend.ts'
import { fsBackend } from './fs-backend.ts'
import { gcsBackend } from './gcs-backend.ts'
import type { GcsDriverLike } from './gcs-backend.ts'
import { s3Backend } from './s3-backend.ts'
import type { S3DriverLike } from './s3-backend.ts'
import { storageError } from './storage-error.ts'
import { keyName, keyProblem } from './storage-key.ts'

export interface StorageFileOptions {
  /** The download name. @default the last segment of the key */
  name?: string | undefined
  /**
   * Where the object is reachable over HTTP, for `sourceUrl` offload rules. `false`: no URL.
   * @default the public URL from the disk's configuration when it needs no I/O (S3 `cdnUrl` or
   * `endpoint` (path style) or `region`; GCS `apiEndpoint`); none for fs disks, and none for a
   * `visibility: 'private'` disk but its `cdnUrl` (the proxy would fetch it unsigned: refused)
   */
  url?: string | false | undefined
  /** The Content-Type, instead of the one the storage declares (e.g. from a database record). */
  contentType?: string | undefined
  /** Used only when the storage does not report them (e.g. values kept in a database record). */
  fallback?: { size?: number | undefined, lastModified?: Date | undefined } | undefined
  /**
   * Longest silence (ms) of a storage stream while the client is reading, after which the transfer
   * is aborted (some SDK streams hang on a dropped connection); also the longest wait for the
   * response to an S3 HeadObject or GetObject, or a GCS metadata or media request (→ E_TIMEOUT, 504
   * before any header).
   * @default 30000
   */
  idleTimeout?: number | undefined
}

/** A flydrive Disk, or its driver. */
export type DiskLike = Disk | DriverContract

const optionNames = new Set(['name', 'url', 'contentType', 'fallback', 'idleTimeout'])
const backends = new WeakMap<object, Backend>()

/**
 * An object of a flydrive v2 disk (fs, S3, GCS, or any driver) as a DownloadFile.
 *
 * - `stat()` takes one metadata call, cached on the instance (create one StorageFile per request,
 *   e.g. with `storage(disk).file(key)`), and gives a strong ETag whenever the storage has one. On
 *   S3, a read that serve() announces (a GET with no precondition, whole or one plain range) makes
 *   that call the GetObject itself, whose body the following open() takes: one request, not two.
 * - `open(range)` reads just that range at the source (fs start/end, S3 GetObject Range, GCS
 *   createReadStream start/end); never read-and-discard.
 * - Keys go to the driver directly, not through flydrive's normaliser, which refuses real names
 *   (`ünï (1) + @'%&.pdf`); our own check refuses traversal instead (`..`, `.`, NUL, `\`, leading
 *   `/`), and a refused key is a 404.
 * - Missing → E_NOT_FOUND (404); other storage failures → E_UPSTREAM/E_UNAVAILABLE/E_TIMEOUT, all
 *   thrown before any header; a failure mid-body errors the stream (the connection is aborted).
 */
export class StorageFile implements DownloadFile {
  readonly name: string
  readonly key: string
  /** The absolute path of the object on fs disks (after the traversal check). */
  readonly path: string | undefined
  readonly url: string | undefined
  /** The `contentType` option (a record's type): the offloaded response's type too. */
  readonly contentType: string | undefined
  /**
   * Whether the storage may send the object's stored Content-Encoding whatever the client accepts:
   * S3 does; GCS transcodes gzip alone (and not under `Cache-Control: no-transform`); drivers not
   * known here may. fs disks store no coding.
   */
  readonly sendsStoredCoding: boolean
  readonly #object: StorageObject | undefined
  readonly #driver: DriverContract
  readonly #refused: string | undefined
  readonly #options: StorageFileOptions
  #stat: Promise<FileStat> | undefined
  /** The body of the read that stat() made for an announced read, until open()/read() takes it. */
  readonly #ahead = new ReadAhead<{ body: Readable, part: ByteRange | undefined }>(({ body }) => { body.destroy() })

  constructor (disk: DiskLike, key: string, options: StorageFileOptions = {}) {
    validateStorageFileOptions(options, 'StorageFile()')
    const driver = driverOf(disk)
    if (typeof key !== 'string') throw new TypeError('StorageFile(): key must be a string')
    this.key = key
    this.#driver = driver
    this.#options = options
    this.#refused = keyProblem(key)
    this.name = options.name ?? keyName(key)
    this.contentType = options.contentType
    if (this.#refused !== undefined) {
      this.sendsStoredCoding = false
      this.path = undefined
      this.url = undefined
      return
    }
    const backend = backendOf(driver)
    this.sendsStoredCoding = backend.kind !== 'fs'
    const object = backend.object(key, { idleTimeout: options.idleTimeout ?? 30_000 })
    this.#object = object
    this.path = object.path
    this.url = options.url === false ? undefined : options.url ?? object.url
  }

  /**
   * A file wrapper is not data: one that reaches a JSON serialiser (no `downloads()` mounted, or a
   * JSON middleware between the route and it) fails loudly instead of publishing its key, its path
   * or a presigned URL.
   */
  toJSON (): never {
    throw new TypeError('koa-downloads: a StorageFile reached a JSON serialiser; mount downloads() or serve() before the route (and body-transforming middleware before it)')
  }

  /** The signal of the request whose stat() is in #stat. */
  #statSignal: AbortSignal | undefined

  async stat (options?: StatOptions): Promise<FileStat> {
    const object = this.#object
    if (object === undefined) throw notFound(`StorageFile: ${this.#refused ?? 'refused key'}: ${JSON.stringify(this.key)}`)
    const start = this.#stat === undefined && object.getAhead !== undefined ? readToStart(options) : undefined
    if (this.#stat === undefined) {
      const asked = start !== undefined ? this.#getAhead(object, start.range, options?.signal) : object.stat(options?.signal).then((stat) => this.#completed(stat))
      // A failure (the storage's 503, this request's abort) is not kept: the next stat() asks again.
      asked.catch(() => { if (this.#stat === asked) this.#stat = undefined })
      this.#stat = asked
      this.#statSignal = options?.signal
    }
    const asked = this.#stat
    const askedWith = this.#statSignal
    try {
      return await asked
    } catch (error) {
      // A call that joined another request's pending stat() (an instance shared by requests), which
      // that request's client ended by leaving: not this one's answer. It asks again, with its own.
      if (askedWith !== options?.signal && askedWith?.aborted === true && options?.signal?.aborted !== true) return await this.stat(options)
      throw error
    }
  }

  /**
   * stat() as the read itself (S3 GetObject): the metadata from its response, the body kept for the
   * open()/read() that follows when it asks for the part the storage sent — one request instead of
   * HeadObject + GetObject. A body nobody takes is destroyed at the end of the turn.
   */
  async #getAhead (object: StorageObject, range: string | undefined, signal: AbortSignal | undefined): Promise<FileStat> {
    const ahead = await (object.getAhead as NonNullable<StorageObject['getAhead']>)(range, signal)
    if (ahead === undefined) return this.#completed(await object.stat(signal))
    this.#ahead.hold({ body: ahead.body, part: ahead.part })
    return this.#completed(ahead.stat)
  }

  /** The body stat() fetched, if it is exactly `range`; any other is dropped. */
  #take (range: ByteRange | undefined): Readable | undefined {
    return this.#ahead.takeIf((held) => samePart(held.part, range))?.body
  }

  #completed (stat: FileStat): FileStat {
    const { contentType, fallback } = this.#options
    return {
      ...stat,
      size: stat.size ?? fallback?.size,
      lastModified: stat.lastModified ?? fallback?.lastModified,
      contentType: contentType ?? stat.contentType
    }
  }

  /**
   * A short-lived presigned URL of the object (S3, GCS; fs only with a `urlBuilder`), through the
   * driver (no key normalisation). A refused key → E_NOT_FOUND; a signing failure → E_UPSTREAM.
   */
  async signedUrl (options: SignedUrlOptions = {}): Promise<string> {
    if (this.#object === undefined) throw notFound(`StorageFile: ${this.#refused ?? 'refused key'}: ${JSON.stringify(this.key)}`)
    const signOptions: SignedURLOptions & { version?: 'v4' } = {}
    const expiresIn = options.expiresIn
    if (expiresIn !== undefined) {
      // flydrive reads 0 as its default (30 min), S3 signs a negative lifetime, GCS any length.
      // A duration string is read by flydrive; the usual forms are checked here alike ('-5 mins' and
      // '1ms' signed URLs dead on arrival, '8 days' failed only when a request came), any other
      // form is left to flydrive.
      // A bare number in a string ('3600', from an environment variable) is milliseconds to
      // flydrive — 3 s —, and white space around a unit makes it fail at request time: both refused.
      if (typeof expiresIn === 'string' && (/^\s*-?\d+(?:\.\d+)?\s*$/.test(expiresIn) || expiresIn !== expiresIn.trim())) {
        throw new TypeError(`StorageFile.signedUrl(): expiresIn ${JSON.stringify(expiresIn)} is not a duration: give a number of seconds (Number(process.env.TTL)) or a string with a unit and no surrounding space ('1h', '30 mins')`)
      }
      const seconds = typeof expiresIn === 'string' ? durationSeconds(expiresIn) : expiresIn
      // (A string's seconds need not be whole: flydrive rounds '1500ms'.)
      if (typeof seconds === 'number' && !((typeof expiresIn === 'string' || Number.isSafeInteger(seconds)) && seconds >= 1 && seconds <= 604_800)) {
        throw new TypeError('StorageFile.signedUrl(): expiresIn must be an integer number of seconds, 1 to 604800 (7 days, the S3 and GCS V4 maximum), or a duration string')
      }
      signOptions.expiresIn = expiresIn
    }
    // GCS signs V2 by default, which covers no query parameter: anyone holding the URL could change
    // its response-content-type and -disposition (to text/html, inline). V4 signs the whole query, as S3's SigV4 does.
    if (driverKind(this.#driver) === 'gcs') signOptions.version = 'v4'
    if (options.contentDisposition !== undefined) signOptions.contentDisposition = options.contentDisposition
    if (options.contentType !== undefined) signOptions.contentType = options.contentType
    // Signing can be a network request (GCS without a key file signs through the IAM API): it is
    // bounded by the idleTimeout, as the storage's other requests are (E_TIMEOUT;
    // presignedRedirect() then streams the object instead of holding the client without end).
    const timeout = this.#options.idleTimeout ?? 30_000
    let cancel: (() => void) | undefined
    try {
      return await Promise.race([
        this.#driver.getSignedUrl(this.key, signOptions),
        new Promise<never>((_resolve, reject) => {
          cancel = expireAfterPoll(timeout, () => { reject(new DownloadError('E_TIMEOUT', `StorageFile: signing ${JSON.stringify(this.key)} took more than ${timeout} ms`)) })
        })
      ])
    } catch (error) {
      throw error instanceof DownloadError ? error : storageError(error, `signing ${this.key}`)
    } finally {
      cancel?.()
    }
  }

  async open (range?: ByteRange, options?: OpenOptions): Promise<Readable> {
    const stat = await this.stat(options)
    const ahead = this.#take(range)
    if (ahead !== undefined) return ahead
    return await this.#changed(async () => await (this.#object as StorageObject).open(stat, range, options))
  }

  /**
   * Small responses as one buffer (serve() asks for those under its `bufferSize`): one read syscall
   * on fs disks; elsewhere the ranged stream collected, so that even a failure mid-body is still a
   * clean 502 before any header.
   */
  async read (range?: ByteRange, options?: OpenOptions): Promise<Uint8Array> {
    const stat = await this.stat(options)
    const object = this.#object as StorageObject
    return await this.#changed(async () => {
      if (object.read !== undefined) return await object.read(stat, range)
      const chunks: Buffer[] = []
      for await (const chunk of this.#take(range) ?? await object.open(stat, range, options)) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    })
  }

  async #changed<T> (operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      // The object changed since stat(): the next stat() must ask the storage again.
      if (error instanceof DownloadError && error.code === 'E_CHANGED') this.#stat = undefined
      throw error
    }
  }
}

export interface SignedUrlOptions {
  /** Lifetime, in seconds or as flydrive's string (`'30 mins'`). @default '30 mins' */
  expiresIn?: number | string | undefined
  /** Baked into the URL (S3 `response-content-disposition`, GCS `responseDisposition`). */
  contentDisposition?: string | undefined
  /** Baked into the URL (S3 `response-content-type`, GCS `responseType`). */
  contentType?: string | undefined
}

/** The driver of a Disk (or the driver itself): keys then skip flydrive's normaliser. */
export function driverOf (disk: DiskLike, where = 'StorageFile()'): DriverContract {
  const driver = (disk as { driver?: unknown } | null)?.driver ?? disk
  const d = driver as Partial<DriverContract> | null
  if (d === null || typeof d !== 'object' || typeof d.getMetaData !== 'function' || typeof d.getStream !== 'function') {
    throw new TypeError(`${where}: disk must be a flydrive Disk or driver`)
  }
  return driver as DriverContract
}

function backendOf (driver: DriverContract): Backend {
  let backend = backends.get(driver)
  if (backend === undefined) {
    const kind = driverKind(driver)
    const options = (driver as { options?: Record<string, unknown> }).options ?? {}
    if (kind === 'fs') backend = fsBackend(options.location as string | URL)
    else if (kind === 's3') backend = s3Backend(driver as S3DriverLike)
    else if (kind === 'gcs') backend = gcsBackend(driver as GcsDriverLike)
    else backend = driverBackend(driver)
    backends.set(driver, backend)
  }
  return backend
}

export function validateStorageFileOptions (options: StorageFileOptions, where: string): void {
  if (options === null || typeof options !== 'object') throw new TypeError(`${where}: options must be an object`)
  for (const key of Object.keys(options)) {
    if (!optionNames.has(key)) throw new TypeError(`${where}: unknown option "${key}" (allowed: ${[...optionNames].join(', ')})`)
  }
  const { name, url, contentType, fallback, idleTimeout } = options
  if (name !== undefined && typeof name !== 'string') throw new TypeError(`${where}: name must be a string`)
  if (url !== undefined && url !== false && (typeof url !== 'string' || !URL.canParse(url))) throw new TypeError(`${where}: url must be an absolute URL or false`)
  if (contentType !== undefined && (typeof contentType !== 'string' || contentType === '' || !isHeaderSafe(contentType))) {
    throw new TypeError(`${where}: contentType must be a non-empty header value`)
  }
  if (fallback !== undefined) {
    if (fallback === null || typeof fallback !== 'object') throw new TypeError(`${where}: fallback must be an object`)
    if (fallback.size !== undefined && (!Number.isSafeInteger(fallback.size) || fallback.size < 0)) throw new TypeError(`${where}: fallback.size must be a non-negative integer`)
    if (fallback.lastModified !== undefined && !(fallback.lastModified instanceof Date)) throw new TypeError(`${where}: fallback.lastModified must be a Date`)
  }
  // setTimeout() takes at most 2^31 - 1 ms: a longer delay fires at once (every request a 504).
  if (idleTimeout !== undefined && (!Number.isSafeInteger(idleTimeout) || idleTimeout < 1 || idleTimeout > 2_147_483_647)) throw new TypeError(`${where}: idleTimeout must be an integer from 1 to 2147483647 (ms)`)
}

const durationUnits: ReadonlyArray<[RegExp, number]> = [
  [/^(ms|msecs?|milliseconds?)$/, 0.001], [/^(s|secs?|seconds?)$/, 1], [/^(m|mins?|minutes?)$/, 60],
  [/^(h|hrs?|hours?)$/, 3600], [/^(d|days?)$/, 86_400], [/^(w|weeks?)$/, 604_800]
]

/** `'30 mins'`, `'2h'`, `'-5 s'` → seconds (a fraction for milliseconds); undefined for a form not known here. */
function durationSeconds (value: string): number | undefined {
  const match = /^(-?\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(value)
  if (match === null) return undefined
  const unit = durationUnits.find(([pattern]) => pattern.test((match[2] ?? '').toLowerCase()))
  return unit === undefined ? undefined : Number(match[1]) * unit[1]
}
