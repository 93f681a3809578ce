import { close, fstatSync, read } from 'node:fs'
import type { ServerResponse as Response } from 'node:http'
import { Socket } from 'node:net'
import { Readable, Writable } from 'node:stream'
import { DownloadError } from './errors.ts'

// node:http through getBuiltinModule, not an ES import: Node's ES wrapper of a built-in reads every
// export, and node:http's lazy WebSocket/CloseEvent/MessageEvent getters then load undici and ~30
// internal modules (about 6 MiB of RSS in a Koa app started with app.listen(), which otherwise
// never loads them). Koa has already required node:http, so this is a lookup.
const { ServerResponse } = process.getBuiltinModule('node:http')

/** How many pushed chunks are tracked for reuse: more than the stream's buffer and the socket's queue hold at once. */
const MAX_LENT = 4
/** How many free buffers are kept for the next reads. */
const MAX_SPARE = 2
/**
 * At most this many bytes of free chunk buffers are kept per chunk size: more than the streams of a
 * busy server have in flight at once (each holds two or three chunks: bench/, 16 downloads of 1 MiB
 * at once circulate 32 chunks of 256 KiB), so that a burst's buffers are still there for the next.
 */
const POOL_BYTES = 32 * 1024 * 1024
/** How often the pool gives back what no stream needed since the last time (setTrimInterval()). */
let trimIntervalMs = 10_000

/**
 * Free buffers by size, kept for the next ones who need that size: at most POOL_BYTES a size, and
 * every trimIntervalMs (trimPool()) the ones that stayed unused the whole interval (the list's
 * low-water mark since the last trim) are given back to the GC, so that an idle server keeps none
 * after two intervals.
 */
class FreeList<T> {
  readonly #bySize = new Map<number, { readonly items: T[], low: number }>()

  take (size: number): T | undefined {
    const free = this.#bySize.get(size)
    if (free === undefined) return undefined
    const item = free.items.pop()
    if (free.items.length < free.low) free.low = free.items.length
    return item
  }

  give (size: number, items: Iterable<T>): void {
    const max = Math.floor(POOL_BYTES / size)
    if (max === 0) return
    let free = this.#bySize.get(size)
    for (const item of items) {
      if (free === undefined) this.#bySize.set(size, free = { items: [], low: 0 })
      if (free.items.length >= max) break
      free.items.push(item)
    }
    // unref(): the pool never keeps a process alive.
    if (free !== undefined && trimmer === undefined && Number.isFinite(trimIntervalMs)) trimmer = setInterval(trimPool, trimIntervalMs).unref()
  }

  trim (size: number | undefined): void {
    for (const [itemSize, free] of this.#bySize) {
      if (size !== undefined && itemSize !== size) continue
      free.items.splice(0, free.low)
      free.low = free.items.length
      if (free.low === 0) this.#bySize.delete(itemSize)
    }
  }

  count (size: number): number {
    return this.#bySize.get(size)?.items.length ?? 0
  }

  get empty (): boolean {
    return this.#bySize.size === 0
  }
}

/**
 * Chunk buffers of streams that have finished, known to be free by the same proof as a spare (their
 * bytes went to the kernel through a plain response), by size. A stream reads into these first
 * (until another consumer rules reuse out for it) rather than into new memory: a download of a few
 * chunks otherwise allocates every one of them, fresh pages the kernel must fault in, and garbage
 * until V8 collects it (bench/, 1 MiB files at 256 KiB chunks: 869 instead of 1025 µs of CPU per
 * response). A pool smaller than what the streams in flight use turns over the same way: 16
 * downloads of 1 MiB at once with a pool of 4 MiB still allocated a chunk every fifth response,
 * and the main malloc arena held 45–50 MiB of chunks awaiting the GC (with room for the 32 chunks
 * in circulation: 32 allocated in all, 17 MiB, and 5–12 % more responses per second). So the pool
 * is sized by what the streams use, up to POOL_BYTES (see FreeList).
 */
const chunks = new FreeList<Buffer>()
/** The memory of lent bodies written out (lendTo()), by size: see borrow(). */
const loans = new FreeList<ArrayBuffer>()
let trimmer: NodeJS.Timeout | undefined

/**
 * For the tests: how often the pool trims itself, from the next buffers given to it (Infinity: only
 * when trimPool() is called), so that a trim cannot fall between the downloads a test counts.
 */
export function setTrimInterval (ms: number): void {
  trimIntervalMs = ms
  clearInterval(trimmer)
  trimmer = undefined
}

/**
 * Gives the buffers that nobody took since the last trim to the GC (of one size, or of all): chunk
 * buffers and lent bodies alike. Exported for the tests, which cannot wait for the interval.
 */
export function trimPool (size?: number): void {
  chunks.trim(size)
  loans.trim(size)
  if (chunks.empty && loans.empty) {
    clearInterval(trimmer)
    trimmer = undefined
  }
}

/** How many free chunk buffers of `size` bytes the pool holds (for the tests). */
export function pooledBuffers (size: number): number {
  return chunks.count(size)
}

/** How many lent bodies of `size` bytes of memory have been taken back and wait to be lent again (for the tests). */
export function lentBuffers (size: number): number {
  return loans.count(size)
}

/** Bodies from this many bytes up are lent (below, a new buffer costs little and its garbage is small). */
const MIN_LOAN = 8192
/** The largest memory lent: serve()'s bufferSize may be set higher, and its bodies are then new buffers. */
const MAX_LOAN = 8 * 1024 * 1024

/** The size of the memory a body of `length` bytes is lent in (powers of two), or undefined for one that is not lent. */
function loanSize (length: number): number | undefined {
  if (length < MIN_LOAN || length > MAX_LOAN) return undefined
  return 2 ** Math.ceil(Math.log2(length))
}

/**
 * A buffer of `length` bytes for a response body that lendTo() may take back once it is written:
 * memory taken back so from an earlier body (no view of it left: giveBack()), or new memory. The
 * memory past `length` is zeroed, so that the body's `.buffer` shows no earlier bytes. Why lend at
 * all: a new 64 KiB buffer per range request faults in fresh pages, and its garbage makes V8 run
 * a full collection every ~64 MiB of it (bench/: random 64 KiB ranges, 55–60 MiB less peak RSS
 * and 7–35 % less CPU per response in four A/B runs; docs/benchmarks.md item 56).
 */
export function borrow (length: number): Buffer {
  const size = loanSize(length)
  if (size === undefined) return Buffer.allocUnsafe(length)
  const memory = loans.take(size) ?? Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer
  if (length < size) new Uint8Array(memory, length).fill(0)
  return Buffer.from(memory, 0, length)
}

/**
 * Takes back the memory of a buffer from borrow(): moved out of its ArrayBuffer (`transfer()`: no
 * copy), which leaves every view of it detached, so that JavaScript still holding one reads it as
 * empty from now on, never as the next body lent in it. Only the whole memory of a loan, still
 * attached (given back once: a second time finds it detached).
 */
export function giveBack (buffer: Buffer): void {
  const size = loanSize(buffer.length)
  const memory = buffer.buffer
  if (size !== undefined && buffer.byteOffset === 0 && memory instanceof ArrayBuffer && !memory.detached && memory.byteLength === size) loans.give(size, [memory.transfer()])
}

/**
 * Takes `body` (from borrow()) back once `res` has written it out, for the next borrow(). Detaching
 * protects what JavaScript reads later, not a write already handed to the kernel or the thread pool
 * with that memory (a socket write of another response, a file write, zlib): so nothing but this
 * response's own write may ever have had the buffer. `sentAlone()` must say so at the end (serve():
 * Koa read it from `ctx.body` once, to send it, and nothing else read it there). Besides, the
 * response must be a plain HTTP/1 one (isPlainResponse(), with Node's own `end`) and finish: every
 * byte went to the kernel and its write callback has run (Node's socket writes do not copy, so not
 * before). Like FileStream's chunk reuse, this trusts Node's stream contract: whatever replaced
 * Node's own write methods process-wide before this module loaded (nodeWrites) has let go of a
 * chunk once its write callback ran. The buffer goes back after the response's 'close' (a tick after
 * 'finish'), in the next turn of the event loop. Otherwise it is left to the GC.
 */
export function lendTo (res: Response, body: Buffer, sentAlone: () => boolean): void {
  if (!isPlainResponse(res)) return
  const socket = res.socket as Socket
  let written = false
  res.once('finish', () => {
    written = !res.destroyed && res.writableLength === 0 && writesPlainly(res, socket)
  })
  // Not at 'finish': the 'finish' and 'close' listeners of others, whatever their order, run
  // first, so that a read of the body there is counted (and finds it whole), not one of empty memory.
  res.once('close', () => {
    if (written) setImmediate(() => { if (sentAlone()) giveBack(body) })
  })
}

/** Why the file open as `fd` is no longer what was opened (same size or shorter, another mtime), or undefined. */
function rewritten (fd: number, opened: { size: number, mtimeMs: number }): string | undefined {
  const now = fstatSync(fd)
  if (now.mtimeMs === opened.mtimeMs || now.size > opened.size) return undefined
  return `the file was modified while being sent (${now.size} bytes now, ${opened.size} when opened)`
}

/**
 * Ranged reads of one open file descriptor, for a multipart response: the parts are read from the
 * same descriptor (a large one in chunks of at most `chunkSize`, nearby small ones with one read of
 * the span that holds them: multipartFromReader()), instead of a stream opened, checked and closed
 * per part (bench/: a request for 32 small ranges of a local file). `check()`
 * after the last part tells a file rewritten in place meanwhile, as FileStream does after its last
 * chunk. The caller reads one range at a time and closes the reader once, after its last read has
 * settled.
 */
export class DescriptorReader {
  #fd: number | undefined
  readonly #opened: { size: number, mtimeMs: number }

  constructor (fd: number, opened: { size: number, mtimeMs: number }) {
    this.#fd = fd
    this.#opened = opened
  }

  /** Exactly `length` bytes from `position` (see readExactly()). */
  async read (position: number, length: number): Promise<Buffer> {
    return await readExactly(this.#open(), position, length)
  }

  /**
   * Up to `length` bytes from `position`: fewer only where the file now ends before them. For a
   * span that holds several parts: those sent before the first one past what was read are whole,
   * and that one fails with truncated(), as its own read would have.
   */
  async readUpTo (position: number, length: number): Promise<Buffer> {
    const fd = this.#open()
    const buffer = Buffer.allocUnsafe(length)
    const filled = await fill(fd, buffer, position)
    return filled === length ? buffer : buffer.subarray(0, filled)
  }

  /** The E_CHANGED of a read that found the file's end at `reached`, before byte `before`. */
  truncated (reached: number, before: number): DownloadError {
    return truncation(this.#open(), reached, before)
  }

  #open (): number {
    const fd = this.#fd
    if (fd === undefined) throw new Error('DescriptorReader: read after close')
    return fd
  }

  /** Throws E_CHANGED when the file was rewritten in place since it was opened (see rewritten()). */
  check (): void {
    const fd = this.#fd
    const changed = fd === undefined ? undefined : rewritten(fd, this.#opened)
    if (changed !== undefined) throw new DownloadError('E_CHANGED', changed)
  }

  close (): void {
    const fd = this.#fd
    if (fd === undefined) return
    this.#fd = undefined
    close(fd, ignore)
  }
}

/**
 * Exactly `length` bytes of `fd` from `position` (into `buffer` when given: `length` bytes long);
 * a file that ends before them was truncated: E_CHANGED.
 */
export async function readExactly (fd: number, position: number, length: number, buffer: Buffer = Buffer.allocUnsafe(length)): Promise<Buffer> {
  const filled = await fill(fd, buffer, position)
  if (filled < length) throw truncation(fd, position + filled, position + length)
  return buffer
}

/** Reads into all of `buffer` from `position`, stopping early only at the file's end (a read of 0 bytes): how many bytes were read. */
async function fill (fd: number, buffer: Buffer, position: number): Promise<number> {
  let filled = 0
  while (filled < buffer.length) {
    const bytesRead = await readAt(fd, buffer, filled, buffer.length - filled, position + filled)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return filled
}

function truncation (fd: number, reached: number, before: number): DownloadError {
  return new DownloadError('E_CHANGED', `file ended at byte ${sizeNow(fd) ?? reached}, before byte ${before} (truncated while being read)`)
}

/** The size of the file open as `fd` now (where a read found its end, maybe well before the read's start). */
function sizeNow (fd: number): number | undefined {
  try {
    return fstatSync(fd).size
  } catch {
    return undefined
  }
}

function readAt (fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => { read(fd, buffer, offset, length, position, (error, bytesRead) => { if (error === null) resolve(bytesRead); else reject(error) }) })
}

function ignore (): void {}

/**
 * Reads bytes `start`…`end` (inclusive) of an open file descriptor, in chunks of `chunkSize`, and
 * closes it when it ends, fails or is destroyed (client abort). A file that turns out shorter than
 * promised (truncated while served), or that was rewritten in place by the time its last chunk is
 * read (an mtime that moved, no growth), is an error, never a quietly short or mixed end: the
 * response is then aborted instead of looking complete.
 *
 * Chunk buffers are reused while the stream's one consumer is a pipe into a plain HTTP/1 response
 * (what Koa does with a stream body): once the response reports nothing left to write
 * (`writableLength` 0: every chunk handed to it has gone to the kernel and its write callback has
 * run — Node's socket writes do not copy, so not before), the chunks it was given are free, and
 * the next read fills one of them again. Without it, every chunk is garbage that V8 collects only
 * after ~64 MiB more external memory has been allocated — with many slow clients, that is the
 * server's RSS growth (bench/: slow-clients). The chunks pushed before that pipe was made are
 * reused too when none of their bytes has been taken by then (serve() waits for the first bytes
 * without reading them); any other consumer, before or after it (a 'data' or 'readable' listener,
 * another pipe, an async iterator, a response class or `write` of its own, also one installed
 * after the pipe: checked again as chunks are freed) gets fresh buffers from then on. Like any
 * piped stream, it must not also be read with `read()` by hand. When the stream is destroyed, its
 * free buffers go to a pool per chunk size (at most POOL_BYTES each, trimmed to what the streams
 * use), which the next streams read into first.
 */
export class FileStream extends Readable {
  #fd: number | undefined
  #position: number
  readonly #end: number
  readonly #chunkSize: number
  /** A read is in the thread pool: the descriptor is closed after it, never under it (a reused number could be a socket). */
  #reading = false
  #afterRead: (() => void) | undefined
  /** The response the chunks are piped into while reuse is possible; `null` once ruled out for good. */
  #sink: Response | null | undefined
  /** The socket of #sink when the pipe was made (a finished response may have let go of it). */
  #socket: Socket | undefined
  #piping = false
  /** The full-size buffers pushed and not yet known to be written out, oldest first, with the bytes pushed of each. */
  readonly #lent: Array<{ buffer: Buffer, length: number }> = []
  /** Before the pipe: the full-size buffers pushed, and the bytes pushed in all. */
  readonly #early: Array<{ buffer: Buffer, length: number }> = []
  #earlyBytes = 0
  /** Bytes were taken from this stream by hand before the pipe (read(), or put back with unshift()). */
  #taken = false
  /** Buffers known to be free, for the next reads. */
  readonly #spare: Buffer[] = []

  /** The file's size and mtime when it was opened: checked again before the last chunk goes on. */
  readonly #opened: { size: number, mtimeMs: number } | undefined

  constructor (fd: number, start: number, end: number, chunkSize: number, opened?: { size: number, mtimeMs: number }) {
    super({ highWaterMark: chunkSize })
    this.#fd = fd
    this.#position = start
    this.#end = end
    this.#chunkSize = chunkSize
    this.#opened = opened
  }

  override _read (): void {
    const fd = this.#fd
    if (fd === undefined) return
    const remaining = this.#end - this.#position + 1
    if (remaining <= 0) {
      this.push(null)
      return
    }
    const length = Math.min(remaining, this.#chunkSize)
    if (length === this.#chunkSize) this.#release()
    const reusable = length === this.#chunkSize
    const buffer = (reusable ? this.#spare.pop() ?? (this.#sink !== null ? chunks.take(length) : undefined) : undefined) ?? Buffer.allocUnsafe(length)
    // callback fs: a FileHandle promise per chunk costs more (bench/)
    this.#reading = true
    read(fd, buffer, 0, length, this.#position, (error, bytesRead) => {
      this.#reading = false
      const afterRead = this.#afterRead
      if (afterRead !== undefined) {
        this.#afterRead = undefined
        afterRead()
      }
      if (this.destroyed) return
      if (error !== null) {
        this.destroy(error)
        return
      }
      if (bytesRead === 0) {
        this.destroy(new DownloadError('E_CHANGED', `file ended ${remaining} bytes early (truncated while being sent)`))
        return
      }
      this.#position += bytesRead
      // The last chunk: a file rewritten in place meanwhile (`cp` over it: truncated, then written
      // again) would end as a complete response whose first bytes are of one version and the rest
      // of another, under the first one's validators. Its mtime tells, unless it grew past what was
      // opened (appended to: the bytes sent are still the ones planned). One fstat per stream.
      if (this.#position > this.#end && this.#opened !== undefined) {
        const changed = rewritten(fd, this.#opened)
        if (changed !== undefined) {
          this.destroy(new DownloadError('E_CHANGED', changed))
          return
        }
      }
      if (this.#sink === undefined) {
        this.#earlyBytes += bytesRead
        if (reusable && this.#early.length < MAX_LENT) this.#early.push({ buffer, length: bytesRead })
      } else if (this.#sink !== null && reusable) this.#lend(buffer, bytesRead)
      this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))
      if (this.#position > this.#end) this.push(null)
    })
  }

  /**
   * Moves the pushed buffers that are known to be written out to the spares. The chunks leave this
   * stream's buffer in the order they were pushed, so the oldest `lent − readableLength` bytes
   * have been handed to the consumer; the response's `writableLength` of 0 says it holds none of
   * them any more. Called before each read and when the response drains (a write that completes
   * while the next chunk is being read: TLS, fast clients).
   */
  #release (): void {
    const sink = this.#sink
    if (sink === undefined || sink === null || this.#lent.length === 0 || this.listenerCount('data') !== 1 ||
      this.listenerCount('readable') !== 0 || sink.destroyed || sink.writableLength !== 0) return
    // A write path replaced since the pipe (by a 'pipe' listener, or later) may keep the chunks it
    // was given: they are its own from then on, and so is every chunk after them.
    if (!writesPlainly(sink, this.#socket)) {
      this.#stopReuse()
      return
    }
    let handedOut = -this.readableLength
    for (const { length } of this.#lent) handedOut += length
    while (this.#lent.length > 0 && this.#lent[0]!.length <= handedOut) {
      const { buffer, length } = this.#lent.shift()!
      handedOut -= length
      if (this.#spare.length < MAX_SPARE) this.#spare.push(buffer)
    }
  }

  #lend (buffer: Buffer, length: number): void {
    // More in flight than a stream buffer and a socket hold: the oldest is left to the GC.
    if (this.#lent.push({ buffer, length }) > MAX_LENT) this.#lent.shift()
  }

  readonly #onDrain = (): void => { this.#release() }

  /** Reuse needs this to be the only pipe, into a response that writes to a real socket. */
  override pipe<T extends NodeJS.WritableStream> (destination: T, options?: { end?: boolean }): T {
    // A listener from before the pipe could go on taking chunks after it.
    const alone = this.listenerCount('data') === 0 && this.listenerCount('readable') === 0
    const sink = this.#sink === undefined && alone && isPlainResponse(destination) ? destination : null
    if (sink === null) this.#stopReuse()
    else {
      this.#sink = sink
      this.#socket = sink.socket as Socket
      sink.on('drain', this.#onDrain)
      // The chunks pushed before the pipe (serve() waits for the first bytes without reading them)
      // go to the response too, unless someone has taken any of the bytes pushed so far.
      if (!this.#taken && this.readableLength === this.#earlyBytes) for (const { buffer, length } of this.#early) this.#lend(buffer, length)
    }
    this.#early.length = 0
    this.#piping = true
    try {
      return super.pipe(destination, options)
    } finally {
      this.#piping = false
    }
  }

  // Anyone else taking chunks may keep them: no reuse from then on. Only the pipe's own 'data'
  // listener is let through, not one added while it is being made (by a 'pipe' listener on the
  // destination). A 'readable' listener gone before the pipe, as serve()'s wait for the first
  // bytes, is no matter unless it read something (read() and unshift() below).
  override on (event: string | symbol, listener: (...args: any[]) => void): this {
    if ((event === 'data' && (!this.#piping || this.listenerCount('data') > 0)) || (event === 'readable' && this.#sink !== undefined)) this.#stopReuse()
    return super.on(event, listener)
  }

  override addListener (event: string | symbol, listener: (...args: any[]) => void): this {
    return this.on(event, listener)
  }

  override prependListener (event: string | symbol, listener: (...args: any[]) => void): this {
    if (event === 'data' || (event === 'readable' && this.#sink !== undefined)) this.#stopReuse()
    return super.prependListener(event, listener)
  }

  override read (size?: number): any {
    const chunk: unknown = super.read(size)
    if (chunk !== null && this.#sink === undefined) this.#taken = true
    return chunk
  }

  override unshift (chunk: any, encoding?: BufferEncoding): void {
    this.#taken = true
    super.unshift(chunk, encoding)
  }

  /**
   * Hands this stream's free buffers to the pool as it is destroyed: the spares; and the chunks
   * still lent when the stream ended (so every one of them was handed out: none waits in this
   * stream's buffer) once the response holds none of them (`writableLength` 0, as in #release):
   * now, or when it finishes (its last write has gone to the kernel: a client slower than the
   * disk, or a chunk larger than the socket takes at once, leaves the last chunks queued when the
   * stream ends). A response destroyed first (the client left) keeps them, for the GC.
   */
  #pool (): void {
    const sink = this.#sink
    const socket = this.#socket
    if (sink === undefined || sink === null || !writesPlainly(sink, socket)) return
    const size = this.#chunkSize
    chunks.give(size, this.#spare)
    if (!this.readableEnded || sink.destroyed || this.#lent.length === 0) return
    const lent = this.#lent.map(({ buffer }) => buffer)
    if (sink.writableLength === 0) chunks.give(size, lent)
    else sink.once('finish', () => { if (!sink.destroyed && sink.writableLength === 0 && writesPlainly(sink, socket)) chunks.give(size, lent) })
  }

  #stopReuse (): void {
    this.#sink?.off('drain', this.#onDrain)
    this.#sink = null
    this.#lent.length = 0
    this.#early.length = 0
    this.#spare.length = 0
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.#fd
    this.#fd = undefined
    this.#pool()
    this.#stopReuse()
    if (fd === undefined) {
      callback(error)
      return
    }
    const closeNow = (): void => { close(fd, (closeError) => { callback(error ?? closeError) }) }
    if (this.#reading) this.#afterRead = closeNow
    else closeNow()
  }
}

/**
 * A Node HTTP/1 response on a real socket, with the standard write path: its `writableLength` then
 * counts every byte it has not yet handed to the kernel (a subclass or a patched `write` might keep
 * chunks, as light-my-request's responses do).
 */
function isPlainResponse (destination: NodeJS.WritableStream): destination is Response {
  if (!(destination instanceof ServerResponse) || Object.getPrototypeOf(destination) !== ServerResponse.prototype) return false
  const socket = destination.socket
  return socket instanceof Socket && writesPlainly(destination, socket)
}

/**
 * Node's own write path, as it was when this module loaded: a method replaced later, on one
 * response or socket or on the prototypes themselves (an agent wrapping `end` or `_writeGeneric`
 * to tee bodies), is not Node's. One replaced before this module loaded cannot be told apart: it is
 * trusted with Node's stream contract (done with a chunk once its write callback has run).
 */
const nodeWrites = (() => {
  const response = ServerResponse.prototype as unknown as Record<string, unknown>
  const socket = Socket.prototype as unknown as Record<string, unknown>
  return {
    response: { write: response.write, end: response.end, _send: response._send, _writeRaw: response._writeRaw },
    socket: { write: Writable.prototype.write, _write: socket._write, _writev: socket._writev, _writeGeneric: socket._writeGeneric }
  }
})()

/** Whether `target` (a response or a socket) writes with `methods` alone, as they were at load. */
function writesWith (target: object, methods: Record<string, unknown>): boolean {
  for (const name in methods) if ((target as Record<string, unknown>)[name] !== methods[name]) return false
  return true
}

/** Whether the response and its socket still write through Node's own methods (checked again as chunks are freed: they can be replaced after the pipe). */
function writesPlainly (sink: Response, socket: Socket | undefined): boolean {
  return socket !== undefined && writesWith(sink, nodeWrites.response) && writesWith(socket, nodeWrites.socket)
}
