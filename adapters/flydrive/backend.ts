import type { Readable } from 'node:stream'
import type { ByteRange, FileStat, OpenOptions } from '../../source/types.ts'

/** One object of one storage, as StorageFile needs it: metadata, ranged reads, locations. */
export interface StorageObject {
  stat (signal?: AbortSignal): Promise<FileStat>
  /**
   * Reads `range` (or everything) of the object that `stat` described, at the source. `options`:
   * the client's abort signal, and serve()'s chunkSize hint (used by fs disks).
   */
  open (stat: FileStat, range: ByteRange | undefined, options?: OpenOptions): Promise<Readable>
  /** The bytes of `range` as one buffer (fs: one read syscall), for small responses. */
  read? (stat: FileStat, range: ByteRange | undefined): Promise<Uint8Array>
  /**
   * Metadata and body in one request, for a read serve() announced: the whole object, or the
   * client's one plain `range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`). `part` is the range the
   * storage sent (undefined: all of it); the body is held to that length. `undefined` when the
   * storage found the range unsatisfiable: the caller then asks for the metadata alone.
   */
  getAhead? (range: string | undefined, signal?: AbortSignal): Promise<{ stat: FileStat, body: Readable, part: ByteRange | undefined } | undefined>
  /** Absolute local path (fs disks only). */
  readonly path?: string | undefined
  /** A public URL built without I/O, when the driver's configuration allows it. */
  readonly url?: string | undefined
}

/** A kind of storage (fs, S3, GCS, any other driver): makes StorageObjects for checked keys. */
export interface Backend {
  readonly kind: 'fs' | 's3' | 'gcs' | 'driver'
  object (key: string, options: BackendOptions): StorageObject
}

export interface BackendOptions {
  /** Longest silence (ms) of a storage stream while the client is reading. */
  idleTimeout: number
}

/** The flydrive driver class in the prototype chain (so that subclasses are recognised). */
export function driverKind (driver: object): 'fs' | 's3' | 'gcs' | 'driver' {
  for (let proto = Object.getPrototypeOf(driver) as { constructor?: { name?: string } } | null; proto !== null; proto = Object.getPrototypeOf(proto) as typeof proto) {
    const name = proto.constructor?.name
    if (name === 'FSDriver') return 'fs'
    if (name === 'S3Driver') return 's3'
    if (name === 'GCSDriver') return 'gcs'
  }
  return 'driver'
}

/** Size, type, validators from flydrive metadata; the etag quoted when a driver returns it bare (GCS). */
export function statFromMetaData (meta: { contentType?: string | undefined, contentLength?: number | undefined, etag?: string | undefined, lastModified?: Date | undefined, contentEncoding?: string | undefined }): FileStat {
  // A custom driver may give the length as its storage does, a string of digits: still a length.
  const size = byteCount(meta.contentLength)
  const lastModified = meta.lastModified instanceof Date && !Number.isNaN(meta.lastModified.getTime()) && meta.lastModified.getTime() >= 1000 ? meta.lastModified : undefined
  return {
    size,
    lastModified,
    etag: quoteEtag(meta.etag),
    contentType: meta.contentType === '' ? undefined : meta.contentType,
    // The stored bytes are sent as they are (S3 and GCS reads ask for no decoding): their coding too.
    contentEncoding: typeof meta.contentEncoding === 'string' && meta.contentEncoding !== '' ? meta.contentEncoding : undefined
  }
}

/**
 * A size in bytes as a storage or a database gives it: a number, a bigint, or a string of decimal
 * digits (GCS's JSON, pg's int8). Anything else (null, '', a negative or fractional number) is
 * unknown, not 0: Number('') and Number(null) are 0, and a length guard expecting 0 bytes made an
 * existing object a 502.
 */
export function byteCount (value: unknown): number | undefined {
  const n = typeof value === 'bigint' ? Number(value) : typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/** `"x"` and `W/"x"` stay as they are; a bare token is quoted; anything unsafe in a header is dropped. */
export function quoteEtag (etag: string | undefined): string | undefined {
  if (etag === undefined || etag === '') return undefined
  if (/^(W\/)?"[\x21\x23-\x7e]*"$/.test(etag)) return etag
  if (/^[\x21\x23-\x7e]+$/.test(etag)) return `"${etag}"`
  return undefined
}
