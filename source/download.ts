import { Readable } from 'node:stream'
import { debug } from './debug.ts'
import type { DownloadFile, DownloadOptions } from './types.ts'

/** The options of download() (DownloadOptions). */
export const downloadOptionNames: ReadonlySet<string> = new Set(['attachment', 'filename', 'contentType', 'cacheControl', 'sandbox'])

/**
 * The response-body marker: a file plus how to present it. `ctx.body = download(file, options)`.
 *
 * It is a (lazy, empty) Readable on purpose: Koa and body-transforming middleware (koa-json and
 * the like) treat a stream body as opaque bytes, so a Download is never serialised as JSON, whatever
 * sits between the handler and `serve()`. `serve()` replaces it with the real response. Should it
 * ever reach Koa's `respond()` (no `serve()` mounted), reading it fails with a message that says so
 * instead of sending anything.
 */
export class Download extends Readable {
  readonly file: DownloadFile
  readonly options: Readonly<DownloadOptions>

  constructor (file: DownloadFile, options: DownloadOptions = {}) {
    super()
    if (!isDownloadFile(file)) {
      throw new TypeError('download(): file must be a DownloadFile (name, stat(), open()), e.g. a PathFile or VirtualFile')
    }
    validateDownloadOptions(options, 'download()')
    this.file = file
    this.options = options
  }

  override _read (): void {
    // A HEAD that serve() answered leaves the Download as the body (Koa sends its Content-Length and
    // never reads it); a middleware that reads it anyway (a logger measuring the body) gets nothing.
    if (answered.has(this)) {
      this.push(null)
      return
    }
    // Piped into something else than the response: a middleware between downloads() and the route
    // wrapped it (a compressor of its own). pipe() passes no error on, so the stream it was piped
    // into is failed too, or the request would hang without a status line.
    const piped = this.#piped ?? []
    const wrapped = piped.some((destination) => !isServerResponse(destination))
    const error = new Error(wrapped
      ? 'koa-downloads: ctx.body is a Download that a middleware between downloads() and the route wrapped in a stream of its own (a compressor?) before any serve() answered it; mount that middleware before downloads()'
      : 'koa-downloads: ctx.body is a Download but no serve() or downloads() middleware handled it; mount downloads() before the route')
    for (const destination of piped) if (!isServerResponse(destination)) (destination as { destroy?: (error?: Error) => void }).destroy?.(error)
    this.destroy(error)
  }

  /** Where the Download was piped: only when no serve() took it (misuse), so made on first use. */
  #piped: NodeJS.WritableStream[] | undefined

  override pipe<T extends NodeJS.WritableStream> (destination: T, options?: { end?: boolean | undefined }): T {
    (this.#piped ??= []).push(destination)
    return super.pipe(destination, options)
  }

  /**
   * Koa destroys a stream body that another body replaces (an error handler's page, the route's own
   * second thought), and every stream body when the response ends. A Download no serve() took will
   * never send its bytes: what its file holds (a VirtualFile's stream: a descriptor, a generator's
   * `finally`) is released now, not at a garbage collection. One that serve() took is serve()'s.
   */
  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (!taken.has(this)) releaseFile(this.file)
    callback(error)
  }
}

/** Node's response, HTTP/1 or the HTTP/2 compatibility one (what Koa's respond() pipes a body into). */
function isServerResponse (stream: NodeJS.WritableStream): boolean {
  const candidate = stream as { setHeader?: unknown, writeHead?: unknown }
  return typeof candidate.setHeader === 'function' && typeof candidate.writeHead === 'function'
}

const answered = new WeakSet<Download>()
const taken = new WeakSet<Download>()

/** serve() is answering this Download: releasing what its file holds is serve()'s part from now on. */
export function markTaken (download: Download): void {
  taken.add(download)
}

/**
 * A response that carries none of the file's bytes (HEAD, 304, 412, 416, an error, another body)
 * releases what the wrapper holds before open(), when it says how: `[Symbol.dispose]()`
 * (VirtualFile: the stream it was given, which would otherwise hold its descriptor or upstream
 * connection).
 */
export function releaseFile (file: DownloadFile): void {
  const dispose = (file as Partial<Disposable>)[Symbol.dispose]
  if (typeof dispose !== 'function') return
  try {
    dispose.call(file)
  } catch (error) {
    debug('%s: [Symbol.dispose]() failed: %s', file.name, (error as Error)?.message ?? String(error))
  }
}

const owners = new WeakMap<Download, object>()

/**
 * A Download is a stream, the body of one response. One made once and set as the body of every
 * request (a module-level `download(…)`) worked for GETs while Koa added a listener to it per
 * response (a leak, then MaxListenersExceededWarning), and after one HEAD every later request got
 * no response at all: Koa piped the finished stream. The second response that takes it now fails
 * at once, naming the mistake (a 500): call download() per request; a file wrapper may be shared.
 * The middleware of one response (an app-level and a route-level downloads()) share it freely.
 */
function claimDownload (body: unknown, response: object): void {
  if (!(body instanceof Download)) return
  const owner = owners.get(body)
  if (owner === undefined) owners.set(body, response)
  else if (owner !== response) {
    throw new Error(`koa-downloads: the Download of ${JSON.stringify(body.file.name)} was already the body of an earlier response; a Download is a stream that serves one response: call download() in the route for each request (the file wrapper may be shared)`)
  }
}

/**
 * The download that serve(), offload() and presignedRedirect() are to answer for this response,
 * if any: `ctx.body` as toDownload() reads it, claimed by this response (above). None under
 * `ctx.respond = false`: the app writes the response itself, and Koa leaves the body alone, so no
 * file header goes on the app's response and nothing is stat'ed, opened or released (the file is
 * the app's to use or close, as a stream body is).
 */
export function responseDownload (ctx: { readonly body: unknown, readonly res: object, readonly respond?: boolean | undefined }): DownloadBody | undefined {
  const body = ctx.body
  claimDownload(body, ctx.res)
  const download = toDownload(body)
  if (download === undefined || ctx.respond !== false) return download
  debug('%s: ctx.respond is false, the download is left to the app', JSON.stringify(download.file.name))
  return undefined
}

/** serve() answered the request without a body (HEAD): reading the Download now ends at once, empty. */
export function markAnswered (download: Download): void {
  answered.add(download)
}

/** Marks `file` as the response body, with presentation options. */
export function download (file: DownloadFile, options?: DownloadOptions): Download {
  return new Download(file, options)
}

/** True for objects that implement the DownloadFile interface (duck-typed, so adapters need no base class). */
export function isDownloadFile (value: unknown): value is DownloadFile {
  if (value === null || typeof value !== 'object') return false
  const v = value as Partial<DownloadFile>
  return typeof v.name === 'string' && typeof v.stat === 'function' && typeof v.open === 'function'
}

/** What the middleware need of a response body that is a download: the file and how to present it. */
export interface DownloadBody {
  readonly file: DownloadFile
  readonly options: Readonly<DownloadOptions>
}

const noOptions: Readonly<DownloadOptions> = Object.freeze({})

/**
 * The download in `body`: a Download as is, a bare file wrapper with default options (a plain
 * object: no stream is built for it on every request), else undefined.
 */
export function toDownload (body: unknown): DownloadBody | undefined {
  // A Download a serve() has already answered (a HEAD) is done: an outer offload() or serve() (an
  // app-level downloads() around a route-level one) must not answer it again.
  if (body instanceof Download) return answered.has(body) ? undefined : body
  if (isDownloadFile(body) && !(body instanceof Readable)) return { file: body, options: noOptions }
  return undefined
}

export function validateDownloadOptions (options: DownloadOptions, where: string): void {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${where}: options must be an object`)
  }
  for (const key of Object.keys(options)) {
    if (!downloadOptionNames.has(key)) throw new TypeError(`${where}: unknown option "${key}" (allowed: ${[...downloadOptionNames].join(', ')})`)
  }
  const { attachment, filename, contentType, cacheControl, sandbox } = options
  if (attachment !== undefined && typeof attachment !== 'boolean') throw new TypeError(`${where}: attachment must be a boolean`)
  if (sandbox !== undefined && typeof sandbox !== 'boolean') throw new TypeError(`${where}: sandbox must be a boolean`)
  if (filename !== undefined && typeof filename !== 'string') throw new TypeError(`${where}: filename must be a string`)
  if (contentType !== undefined && (typeof contentType !== 'string' || !isHeaderSafe(contentType) || contentType === '')) {
    throw new TypeError(`${where}: contentType must be a non-empty header value without control characters`)
  }
  // An empty value (an unset environment variable) would drop the default `private` and leave the
  // download to shared caches' heuristics, as no Cache-Control does.
  if (cacheControl !== undefined && (typeof cacheControl !== 'string' || !isHeaderSafe(cacheControl) || cacheControl.trim() === '')) {
    throw new TypeError(`${where}: cacheControl must be a non-empty header value without control characters`)
  }
}

/** Visible ASCII, space and tab only: what can go into a header verbatim. */
export function isHeaderSafe (value: string): boolean {
  return /^[\t\x20-\x7e]*$/.test(value)
}
