import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { DownloadError } from './errors.ts'
import { END_TIMEOUT } from './guarded-stream.ts'
import type { ByteRange, DownloadFile, OpenOptions } from './types.ts'

export interface MultipartPlan {
  boundary: string
  /** The exact Content-Length of the whole body. */
  length: number
  parts: Array<{ range: ByteRange, head: Buffer }>
  tail: Buffer
}

/**
 * Lays out a `multipart/byteranges` body (RFC 9110 §14.6) and its exact length before anything is
 * sent: each part is `--B CRLF Content-Type CRLF Content-Range CRLF CRLF <bytes> CRLF`, then `--B--`.
 */
export function planMultipart (ranges: ByteRange[], size: number, contentType: string): MultipartPlan {
  const boundary = randomBytes(18).toString('base64url').replace(/[-_]/g, '0')
  let length = 0
  const parts = ranges.map((range, index) => {
    const head = Buffer.from(`${index === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: bytes ${range.start}-${range.end}/${size}\r\n\r\n`, 'latin1')
    length += head.length + range.end - range.start + 1
    return { range, head }
  })
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')
  length += tail.length
  return { boundary, length, parts, tail }
}

/** `next`, or an E_TIMEOUT once `ms` have passed without it. */
async function endWithin<T> (next: Promise<T>, range: ByteRange, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new DownloadError('E_TIMEOUT', `multipart: part ${range.start}-${range.end} sent its bytes, but its source did not end within ${ms} ms`)) }, ms)
    timer.unref()
  })
  try {
    return await Promise.race([next, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The body of a multipart plan: each part read from the source with its own ranged read, in turn.
 * `first`: the first part's stream, already opened by the caller (serve() opens it before the
 * headers, so that a source failing there is still a clean error); destroyed if never read.
 */
export function multipartStream (file: DownloadFile, plan: MultipartPlan, options: OpenOptions, first?: Readable, endTimeout = END_TIMEOUT): Readable {
  let unread = first
  async function * body (): AsyncGenerator<Buffer | Uint8Array> {
    for (const { range, head } of plan.parts) {
      yield head
      const source = unread ?? await file.open(range, options)
      unread = undefined
      const expected = range.end - range.start + 1
      let sent = 0
      const chunks = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      try {
        for (;;) {
          // Once the part's bytes are all in, its source has endTimeout to end: one that never
          // does (a custom wrapper's stream never ended) would hold the response open for good.
          const step = sent === expected ? await endWithin(chunks.next(), range, endTimeout) : await chunks.next()
          if (step.done === true) break
          const chunk = step.value
          sent += chunk.length
          // A source that sends more than the range (a wrapper that ignores range.end, an origin
          // that ignores Range) must not push bytes past the Content-Length: the client would read
          // them as the next response on the connection. Leaving the loop destroys the source.
          if (sent > expected) throw new Error(`multipart: part ${range.start}-${range.end} delivered more than ${expected} bytes`)
          yield chunk
        }
      } finally {
        // Left early (an error, the timeout, the client gone): the source is released, as for-await
        // would. Destroyed, not return()ed: a Readable's iterator queues return() behind a pending
        // next(), which a source that never ends never settles.
        if (typeof (source as Partial<Readable>).destroy === 'function') source.destroy()
        else await chunks.return?.()
      }
      if (sent !== expected) throw new Error(`multipart: part ${range.start}-${range.end} delivered ${sent} bytes`)
    }
    yield plan.tail
  }
  const stream = Readable.from(body(), { objectMode: false, highWaterMark: 64 * 1024 })
  // Destroyed before the generator reached it (the client left at once): nothing else would close it.
  if (first !== undefined) stream.once('close', () => { unread?.destroy() })
  return stream
}
