import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { DownloadError } from './errors.ts'
import type { DescriptorReader } from './file-stream.ts'
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

/** Pieces of a multipart body smaller than this are gathered into one write with their neighbours. */
const SMALL_PIECE = 16 * 1024
/** Gathered pieces are written once they add up to this much. */
const GATHER_BYTES = 64 * 1024

/**
 * Gathers a multipart body's small pieces (the part heads, the bytes of small parts) into fewer,
 * larger chunks: each chunk of a piped body is its own socket write, and 32 one-byte parts would
 * otherwise be 65 of them (bench/: the writes were a third of such a response's CPU). A piece of
 * SMALL_PIECE or more goes on as it is, after what was gathered before it.
 */
class Gathered {
  #pieces: Array<Buffer | Uint8Array> = []
  #bytes = 0

  /** What is to be sent now that `piece` comes next: nothing yet, or chunks in order. */
  add (piece: Buffer | Uint8Array): Array<Buffer | Uint8Array> {
    if (piece.length >= SMALL_PIECE) return this.#pieces.length === 0 ? [piece] : [this.flush()!, piece]
    this.#pieces.push(piece)
    this.#bytes += piece.length
    return this.#bytes >= GATHER_BYTES ? [this.flush()!] : []
  }

  /** What was gathered, as one chunk; undefined when nothing was. */
  flush (): Buffer | Uint8Array | undefined {
    const pieces = this.#pieces
    if (pieces.length === 0) return undefined
    this.#pieces = []
    const bytes = this.#bytes
    this.#bytes = 0
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, bytes)
  }
}

/**
 * What was gathered goes out before a failure cuts the body, as it would have ungathered (the
 * client gets the status line and the parts before it, and sees the cut): not when the body is
 * being destroyed (the client gone; the generator is then thrown into at a yield).
 */
function * beforeFailure (gathered: Gathered, stream: Readable): Generator<Buffer | Uint8Array> {
  const rest = gathered.flush()
  if (rest !== undefined && !stream.destroyed) yield rest
}

/**
 * The body of a multipart plan: each part read from the source with its own ranged read, in turn.
 * `first`: the first part's stream, already opened by the caller (serve() opens it before the
 * headers, so that a source failing there is still a clean error); destroyed if never read.
 */
export function multipartStream (file: DownloadFile, plan: MultipartPlan, options: OpenOptions, first?: Readable, endTimeout = END_TIMEOUT): Readable {
  let unread = first
  async function * body (): AsyncGenerator<Buffer | Uint8Array> {
    const gathered = new Gathered()
    try {
      yield * parts(gathered)
    } catch (error) {
      yield * beforeFailure(gathered, stream)
      throw error
    }
  }
  async function * parts (gathered: Gathered): AsyncGenerator<Buffer | Uint8Array> {
    for (const { range, head } of plan.parts) {
      // A part's head waits for the part's first bytes (opening the next part of a remote source
      // is a round trip): they go as one write. Nothing waits for a source's next chunk, which may
      // trickle in.
      yield * gathered.add(head)
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
          yield * gathered.add(chunk)
          const ready = gathered.flush()
          if (ready !== undefined) yield ready
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
    yield * gathered.add(plan.tail)
    const rest = gathered.flush()
    if (rest !== undefined) yield rest
  }
  const stream = Readable.from(body(), { objectMode: false, highWaterMark: 64 * 1024 })
  // Destroyed before the generator reached it (the client left at once): nothing else would close it.
  if (first !== undefined) stream.once('close', () => { unread?.destroy() })
  return stream
}

/**
 * Nearby small parts of a local file are read together: one read covers the span from the lowest
 * start to the highest end of a run of consecutive parts, and is sliced into them. Each read of a
 * part is a thread-pool round trip, about 30 µs of CPU in a server (32 one-byte parts 1 KiB apart:
 * 984–1,664 µs per response, 396–626 with one read; docs/benchmarks.md item 52). The bytes between
 * the parts are read too, and cost about 2.5–3 µs per KiB there (a buffer beyond the small-buffer
 * pool, garbage to collect): two one-byte parts 60 KiB apart cost 416–543 µs with one read,
 * 300–390 with two, so a read saved pays for about 11 KiB of them. A part joins the run only when
 * it adds at most GAP_BYTES of bytes nobody asked for (below that break-even, for the noise of
 * those measurements), and the span stays within SPAN_BYTES and `chunkSize` (which bounds what
 * one read holds, as it bounds a large part's reads).
 */
const SPAN_BYTES = 64 * 1024
const GAP_BYTES = 8 * 1024

interface Span {
  /** The run ends before this part. */
  to: number
  /** The bytes of the file the read covers (inclusive), or of the one part when it is alone. */
  start: number
  end: number
}

/**
 * The run of parts from `from` that one read covers, in the order they are sent: each joins it
 * whatever its place (descending, overlapping, repeated ranges are sliced from the span as well)
 * while it is near enough (see SPAN_BYTES). Only parts smaller than SMALL_PIECE join: Gathered
 * copies those into its writes, so nothing sent keeps a span's buffer alive, and a paused client
 * holds one read's buffer at a time, of at most `chunkSize`, as before. A part alone (a large one,
 * or one far from its neighbours) is read as before.
 */
function spanFrom (parts: MultipartPlan['parts'], from: number, limit: number): Span {
  let { start, end } = parts[from]!.range
  let to = from + 1
  if (end - start + 1 < SMALL_PIECE) {
    for (; to < parts.length; to++) {
      const range = parts[to]!.range
      const length = range.end - range.start + 1
      const spanStart = Math.min(start, range.start)
      const spanEnd = Math.max(end, range.end)
      // The bytes the span grows by beyond the part's own: the gap to it (none when it overlaps).
      const gap = (spanEnd - spanStart) - (end - start) - length
      if (length >= SMALL_PIECE || gap > GAP_BYTES || spanEnd - spanStart + 1 > limit) break
      start = spanStart
      end = spanEnd
    }
  }
  return { to, start, end }
}

/** The first read of multipartFromReader()'s body, which its caller makes before the headers (and passes as `first`). */
export function firstRead (plan: MultipartPlan, chunkSize: number): { position: number, length: number } {
  const { start, end } = spanFrom(plan.parts, 0, Math.min(SPAN_BYTES, chunkSize))
  return { position: start, length: Math.min(end - start + 1, chunkSize) }
}

/**
 * The body of a multipart plan over one open local file (PathFile): each part read from the same
 * descriptor, a large one in reads of at most `chunkSize`, a run of nearby small ones with one
 * read of their span (spanFrom()); the small pieces gathered into larger writes (a read of a local
 * file does not trickle). `first`: the read firstRead() names, made by the caller before the
 * headers (a file truncated by then is still a clean error). The reader is closed when the body
 * ends, fails or is destroyed.
 */
export function multipartFromReader (reader: DescriptorReader, plan: MultipartPlan, first: Buffer, chunkSize: number): Readable {
  const limit = Math.min(SPAN_BYTES, chunkSize)
  async function * body (): AsyncGenerator<Buffer | Uint8Array> {
    const gathered = new Gathered()
    try {
      let pending: Buffer | undefined = first
      const parts = plan.parts
      for (let from = 0; from < parts.length;) {
        const span = spanFrom(parts, from, limit)
        if (span.to === from + 1) {
          const { range, head } = parts[from]!
          yield * gathered.add(head)
          let position = range.start
          while (position <= range.end) {
            const bytes: Buffer = pending ?? await reader.read(position, Math.min(range.end - position + 1, chunkSize))
            pending = undefined
            position += bytes.length
            yield * gathered.add(bytes)
          }
        } else {
          let bytes: Buffer | undefined
          for (let index = from; index < span.to; index++) {
            const { range, head } = parts[index]!
            yield * gathered.add(head)
            // Not readExactly(): a file truncated within the span still gets the parts before its
            // end, and is cut at the first part past it, with the error that part's own read gives.
            bytes ??= pending ?? await reader.readUpTo(span.start, span.end - span.start + 1)
            pending = undefined
            if (range.end - span.start >= bytes.length) throw reader.truncated(span.start + bytes.length, range.end + 1)
            yield * gathered.add(bytes.subarray(range.start - span.start, range.end - span.start + 1))
          }
        }
        from = span.to
      }
      // A file rewritten in place meanwhile would end as a complete response of mixed versions.
      reader.check()
      yield * gathered.add(plan.tail)
      const rest = gathered.flush()
      if (rest !== undefined) yield rest
    } catch (error) {
      yield * beforeFailure(gathered, stream)
      throw error
    } finally {
      reader.close()
    }
  }
  const stream = Readable.from(body(), { objectMode: false, highWaterMark: 64 * 1024 })
  // Destroyed before the generator started (the client left at once): its `finally` never runs.
  stream.once('close', () => { reader.close() })
  return stream
}
