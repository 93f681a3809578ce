import type { Readable } from 'node:stream'
import type { GetObjectCommand, GetObjectCommandOutput, HeadObjectCommand, S3Client, S3ClientConfig } from '@aws-sdk/client-s3'
import type { DriverContract } from 'flydrive/types'
import { DownloadError } from '../../source/errors.ts'
import { parseEntityTag, weakMatch } from '../../source/etag.ts'
import type { ByteRange, FileStat, OpenOptions } from '../../source/types.ts'
import { expireAfterPoll, guardStream } from '../../source/guarded-stream.ts'
import { parseContentRange } from '../../source/range.ts'
import type { Backend, BackendOptions, StorageObject } from './backend.ts'
import { quoteEtag, statFromMetaData } from './backend.ts'
import { encodeKey } from './storage-key.ts'
import { noResponseError, storageError } from './storage-error.ts'

export type S3DriverLike = DriverContract & {
  options: { bucket: string, client?: S3Client, cdnUrl?: string, visibility?: string } & S3ClientConfig
}

/**
 * S3 disks: metadata through the SDK's HeadObject (the quoted MD5 ETag is strong), bytes through
 * its GetObject with `Range` and `IfMatch` (an object replaced since stat() → E_CHANGED, never a
 * body under the old validators; a store that ignores If-Match is caught by the response's own ETag
 * and length). Every request carries the client's abort signal, and the wait for its response is
 * bounded by `idleTimeout` (sendWithin()). flydrive's getMetaData() takes neither.
 *
 * flydrive keeps its S3Client private: a driver built with `{ client }` shares it, one built from an
 * S3ClientConfig gets a second client from the same config (created once per driver). The SDK is
 * imported only here, when an S3 disk is used.
 */
export function s3Backend (driver: S3DriverLike): Backend {
  const { bucket } = driver.options
  let client: Promise<S3Client> | undefined
  const sdk = import('@aws-sdk/client-s3')
  sdk.catch(() => {})
  const getClient = async (): Promise<S3Client> => {
    client ??= driver.options.client !== undefined
      ? Promise.resolve(driver.options.client)
      : sdk.then(({ S3Client }) => new S3Client(driver.options))
    return await client
  }
  const baseUrl = publicBase(driver.options)
  return {
    kind: 's3',
    object (key: string, options: BackendOptions): StorageObject {
      const what = `s3 ${bucket}/${key}`
      return {
        url: baseUrl === undefined ? undefined : baseUrl + encodeKey(key),
        async stat (signal?: AbortSignal): Promise<FileStat> {
          try {
            const { HeadObjectCommand } = await sdk
            const command = new HeadObjectCommand({ Bucket: bucket, Key: key })
            const s3 = await getClient()
            const response = await sendWithin(command, options.idleTimeout, signal, async (abortSignal) => await s3.send(command, { abortSignal }))
            // What flydrive's getMetaData() reads from the same response.
            return statFromMetaData({ contentType: response.ContentType, contentLength: response.ContentLength, etag: response.ETag, lastModified: response.LastModified, contentEncoding: response.ContentEncoding })
          } catch (error) {
            throw storageError(error, what)
          }
        },
        async open (stat: FileStat, range: ByteRange | undefined, openOptions?: OpenOptions): Promise<Readable> {
          const signal = openOptions?.signal
          const { GetObjectCommand } = await sdk
          const s3 = await getClient()
          const command = new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }),
            ...(stat.etag !== undefined && !stat.etag.startsWith('W/') ? { IfMatch: stat.etag } : {})
          })
          let body: Readable
          try {
            const response = await sendWithin(command, options.idleTimeout, signal, async (abortSignal) => await s3.send(command, { abortSignal }))
            if (range !== undefined && response.ContentRange !== `bytes ${range.start}-${range.end}/${stat.size ?? '*'}`) {
              (response.Body as Readable | undefined)?.destroy()
              // Another complete length: the object changed (planned again). No Content-Range (an
              // endpoint that ignores Range sends the whole object) or another part of an object of
              // the planned length: the storage did not do what was asked, a 502, as for GCS.
              const sent = parseContentRange(response.ContentRange)
              if (sent !== undefined && stat.size !== undefined && sent.size !== stat.size) {
                throw new DownloadError('E_CHANGED', `${what}: changed since its metadata was read (Content-Range ${response.ContentRange ?? ''})`)
              }
              throw new DownloadError('E_UPSTREAM', `${what}: asked for bytes ${range.start}-${range.end}, got ${response.ContentRange === undefined ? 'no Content-Range' : `Content-Range ${response.ContentRange}`}`)
            }
            // If-Match is not enough: s3rver and some S3-compatible stores ignore it on reads, and
            // send the object that replaced the planned one (of the same size, so the Content-Range
            // above agrees) under a 200/206. Its own validators tell: caught before any header.
            const differs = contradiction(response, stat, range)
            if (differs !== undefined) {
              (response.Body as Readable | undefined)?.destroy()
              throw new DownloadError('E_CHANGED', `${what}: changed since its metadata was read (${differs})`)
            }
            body = response.Body as Readable
          } catch (error) {
            throw storageError(error, what)
          }
          const expected = range === undefined ? stat.size : range.end - range.start + 1
          return guardStream(body, { expected, idleTimeout: options.idleTimeout, what })
        },
        async getAhead (range: string | undefined, signal?: AbortSignal) {
          const { GetObjectCommand } = await sdk
          const s3 = await getClient()
          const command = new GetObjectCommand({ Bucket: bucket, Key: key, ...(range === undefined ? {} : { Range: range }) })
          try {
            const response = await sendWithin(command, options.idleTimeout, signal, async (abortSignal) => await s3.send(command, { abortSignal }))
            const body = response.Body as Readable
            let size = response.ContentLength
            let part: ByteRange | undefined
            if (response.ContentRange !== undefined) {
              const sent = parseContentRange(response.ContentRange)
              if (sent === undefined || size !== sent.end - sent.start + 1) {
                body.destroy()
                throw new DownloadError('E_UPSTREAM', `${what}: unexpected Content-Range ${response.ContentRange}`)
              }
              part = { start: sent.start, end: sent.end }
              size = sent.size
            }
            const stat = statFromMetaData({ contentType: response.ContentType, contentLength: size, etag: response.ETag, lastModified: response.LastModified, contentEncoding: response.ContentEncoding })
            const expected = part === undefined ? stat.size : part.end - part.start + 1
            return { stat, part, body: guardStream(body, { expected, idleTimeout: options.idleTimeout, what }) }
          } catch (error) {
            const failure = storageError(error, what)
            // Unsatisfiable for this size (416): the metadata alone will tell serve() so.
            if (failure instanceof DownloadError && failure.code === 'E_CHANGED') return undefined
            throw failure
          }
        }
      }
    }
  }
}

/**
 * Sends `command` with the wait for each attempt's response (its status and headers) bounded by
 * `timeout`: the AWS SDK sets no such bound by default, so a storage that accepts the connection
 * and never answers would hold the request, and the client, forever. The request is then aborted
 * and the error has code ETIMEDOUT (→ E_TIMEOUT, 504 before any header). The body is not covered:
 * guardStream() bounds its silences without counting the time a slow client keeps it paused. The
 * client's `signal` aborts the request at any time, body included.
 */
async function sendWithin<T> (command: GetObjectCommand | HeadObjectCommand, timeout: number, signal: AbortSignal | undefined, send: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  let cancel: (() => void) | undefined
  const arm = (): void => {
    cancel = expireAfterPoll(timeout, () => { controller.abort(noResponseError(timeout)) })
  }
  const disarm = (): void => {
    cancel?.()
    cancel = undefined
  }
  // Innermost in the stack (deserialize step, low priority): `next` is the HTTP handler itself, which
  // resolves with the response head, once per attempt (retries are armed again).
  ;(command.middlewareStack as GetObjectCommand['middlewareStack']).add((next) => async (args) => {
    arm()
    try {
      return await next(args)
    } finally {
      disarm()
    }
  }, { step: 'deserialize', priority: 'low', name: 'koaDownloadsResponseTimeout' })
  try {
    return await send(signal === undefined ? controller.signal : AbortSignal.any([signal, controller.signal]))
  } catch (error) {
    // The SDK reports our abort as an AbortError, which storageError() would take for the client's.
    throw controller.signal.aborted ? controller.signal.reason : error
  } finally {
    disarm()
  }
}

/**
 * How a GetObject response contradicts the stat() its read was planned with, or undefined: its ETag
 * (weak comparison, after the quoting stat() applies: a store that sends it bare, or weak, names the
 * same object), then for a whole read its ContentLength (a part's complete length is checked in its
 * Content-Range). A value absent on either side is no contradiction.
 */
function contradiction (response: GetObjectCommandOutput, stat: FileStat, range: ByteRange | undefined): string | undefined {
  const sent = response.ETag === undefined ? undefined : quoteEtag(response.ETag)
  const sentTag = sent === undefined ? undefined : parseEntityTag(sent)
  const plannedTag = stat.etag === undefined ? undefined : parseEntityTag(stat.etag)
  if (sentTag !== undefined && plannedTag !== undefined && !weakMatch(sentTag, plannedTag)) return `ETag ${sent ?? ''}, ${stat.etag ?? ''} planned`
  if (range === undefined && stat.size !== undefined && response.ContentLength !== undefined && response.ContentLength !== stat.size) {
    return `${response.ContentLength} bytes, ${stat.size} planned`
  }
  return undefined
}

/**
 * The public (unsigned) URL prefix of the bucket, when the config says it without I/O. A private
 * disk has none (but its CDN's): the proxy that an offload rule hands such a URL to fetches it
 * unsigned, and S3 refuses it (the client gets a 502). Its files are streamed, or offloaded by a
 * signed URL (`signedFile()`).
 */
function publicBase (config: S3DriverLike['options']): string | undefined {
  if (typeof config.cdnUrl === 'string') return config.cdnUrl.endsWith('/') ? config.cdnUrl : config.cdnUrl + '/'
  if (config.visibility === 'private') return undefined
  // A client's endpoint is an async provider: no URL without I/O then (pass `url` to StorageFile).
  const endpoint = config.client === undefined ? config.endpoint : undefined
  if (typeof endpoint === 'string') {
    const base = endpoint.endsWith('/') ? endpoint : endpoint + '/'
    // Path style, as flydrive's getUrl() builds it.
    return `${base}${encodeKey(config.bucket)}/`
  }
  const region = config.region
  if (config.client === undefined && endpoint === undefined && typeof region === 'string') return `https://${config.bucket}.s3.${region}.amazonaws.com/`
  return undefined
}
