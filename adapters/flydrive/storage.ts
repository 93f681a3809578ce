import { StorageFile, driverOf, validateStorageFileOptions } from './storage-file.ts'
import type { DiskLike, StorageFileOptions } from './storage-file.ts'
import { encodeKey, keyProblem } from './storage-key.ts'

export interface StorageHelperOptions {
  /** Passed to every StorageFile. @default 30000 */
  idleTimeout?: number | undefined
  /**
   * `file.url` of the objects: a base URL the encoded key is appended to (no query: use a function
   * for a token), a function of the key,
   * or `false` for none.
   * @default the public URL from the disk's configuration (see StorageFileOptions.url)
   * @example 'https://cdn.example.com/media/'
   */
  url?: string | ((key: string) => string | undefined) | false | undefined
}

export interface SignedFileOptions extends Omit<StorageFileOptions, 'url'> {
  /** Lifetime of the presigned URL, in seconds or as flydrive's string (`'30 mins'`). @default '30 mins' */
  expiresIn?: number | string | undefined
  /** Baked into the URL (S3 `response-content-disposition`), for proxies and redirects. */
  contentDisposition?: string | undefined
}

/** The `storage(disk)` helper: one place that turns keys of a disk into download files. */
export interface Storage {
  readonly disk: DiskLike
  /** `ctx.body = download(media.file(key))`. */
  file (key: string, options?: StorageFileOptions): StorageFile
  /**
   * A file whose `url` is a short-lived presigned URL (private buckets), for a `sourceUrl` rule
   * (nginx `/_remote/`) or `presignedRedirect()`. A refused key gives a file that is a 404.
   */
  signedFile (key: string, options?: SignedFileOptions): Promise<StorageFile>
}

/**
 * Binds a disk once, so that routes read `ctx.body = download(media.file(key))`.
 * @example
 * const media = storage(new Disk(new S3Driver({ client, bucket: 'media', visibility: 'private' })))
 * router.get('/media/:key', (ctx) => { ctx.body = download(media.file(ctx.params.key)) })
 */
export function storage (disk: DiskLike, options: StorageHelperOptions = {}): Storage {
  if (options === null || typeof options !== 'object') throw new TypeError('storage(): options must be an object')
  for (const key of Object.keys(options)) {
    if (key !== 'idleTimeout' && key !== 'url') throw new TypeError(`storage(): unknown option "${key}" (allowed: idleTimeout, url)`)
  }
  driverOf(disk, 'storage()')
  const { idleTimeout, url } = options
  validateStorageFileOptions({ idleTimeout }, 'storage()')
  if (url !== undefined && url !== false && typeof url !== 'function' && (typeof url !== 'string' || !URL.canParse(url))) {
    throw new TypeError('storage(): url must be a base URL, a function of the key, or false')
  }
  // The key is resolved against the base, which drops the base's query: a token in it would be
  // lost from every file URL, silently. A function of the key can add one.
  if (typeof url === 'string' && /[?#]/.test(url)) {
    throw new TypeError('storage(): a url base must have no query or fragment (they would be dropped from every file URL); use a function of the key, e.g. (key) => `https://cdn.example/media/${encodeURIComponent(key)}?token=…`')
  }
  const urlOf = (key: string): string | false | undefined => {
    if (url === undefined || url === false) return url
    if (keyProblem(key) !== undefined) return undefined
    if (typeof url === 'function') return url(key) ?? false
    // `./` first, so that a key like `a:b` is not read as a scheme.
    return new URL('./' + encodeKey(key), url.endsWith('/') ? url : url + '/').href
  }
  return {
    disk,
    file (key, fileOptions = {}) {
      return new StorageFile(disk, key, { idleTimeout, url: urlOf(key), ...fileOptions })
    },
    async signedFile (key, signedOptions = {}) {
      const { expiresIn, contentDisposition, ...fileOptions } = signedOptions
      const unsigned = new StorageFile(disk, key, { idleTimeout, ...fileOptions })
      if (keyProblem(key) !== undefined) return unsigned
      const signed = await unsigned.signedUrl({ expiresIn, contentDisposition, contentType: fileOptions.contentType })
      return new StorageFile(disk, key, { idleTimeout, ...fileOptions, url: signed })
    }
  }
}
