import { closeSync, openSync } from 'node:fs'
import createHttpError from 'http-errors'
import type { HttpError } from 'http-errors'

/** Stable codes of the errors that file wrappers and adapters throw. */
export type DownloadErrorCode =
  | 'E_NOT_FOUND' // the file or object does not exist → 404
  | 'E_FORBIDDEN' // the source refuses access → 403
  | 'E_UPSTREAM' // the storage or origin failed → 502
  | 'E_UNAVAILABLE' // the storage or origin is overloaded or down → 503
  | 'E_TIMEOUT' // the storage or origin did not answer in time → 504
  | 'E_CHANGED' // the file changed between stat() and open() → retried once, then 503

const statusOf: Record<DownloadErrorCode, number> = {
  E_NOT_FOUND: 404,
  E_FORBIDDEN: 403,
  E_UPSTREAM: 502,
  E_UNAVAILABLE: 503,
  E_TIMEOUT: 504,
  E_CHANGED: 503
}

/**
 * The one error class of storage and upstream failures: a stable `code`, the HTTP `status` it maps
 * to, and the original error as `cause`. Its message is for logs; clients only see the status text.
 */
export class DownloadError extends Error {
  readonly code: DownloadErrorCode
  readonly status: number

  constructor (code: DownloadErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DownloadError'
    this.code = code
    this.status = statusOf[code]
  }
}

/** The HTTP status a failure of this code is answered with. */
export function statusOfCode (code: DownloadErrorCode): number {
  return statusOf[code]
}

/**
 * What an origin's or a storage's error status means, one table for the adapters and the generated
 * proxy configurations: missing → 404, throttled or down → 503, timed out (408: the origin gave up
 * waiting for the request) → 504. Any other error status is a failure (E_UPSTREAM, 502).
 */
export const UPSTREAM_STATUS_CODES: ReadonlyArray<{ readonly name: string, readonly code: DownloadErrorCode, readonly statuses: readonly number[] }> = [
  { name: 'missing', code: 'E_NOT_FOUND', statuses: [404, 410] },
  { name: 'unavailable', code: 'E_UNAVAILABLE', statuses: [429, 503] },
  { name: 'timeout', code: 'E_TIMEOUT', statuses: [408, 504] }
]

/** The code of an origin's or a storage's error status (UPSTREAM_STATUS_CODES), else E_UPSTREAM. */
export function upstreamStatusCode (status: number): DownloadErrorCode {
  return UPSTREAM_STATUS_CODES.find(({ statuses }) => statuses.includes(status))?.code ?? 'E_UPSTREAM'
}

/** The filesystem error codes of a file that is not there (or not a file), for every local source: a 404. */
export const notFoundCodes: ReadonlySet<string> = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'EISDIR', 'ELOOP', 'ERR_FS_EISDIR'])
const forbiddenCodes = new Set(['EACCES', 'EPERM'])
/** The process is out of descriptors or memory for now: the request may succeed later. */
const exhaustedCodes = new Set(['EMFILE', 'ENFILE', 'ENOMEM'])

/**
 * Whether `code` says that this process is out of descriptors or memory (EMFILE, ENFILE, ENOMEM):
 * a 503 that may succeed later, never the storage's or the origin's failure (a 502), also when a
 * storage request or an origin's socket could not be opened for it.
 */
function isExhaustedCode (code: unknown): boolean {
  return typeof code === 'string' && exhaustedCodes.has(code)
}

/** What a failed host name lookup reports, also when it failed for want of a descriptor. */
const lookupCodes = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_SYSTEM', 'EAI_NODATA', 'EAI_NONAME'])

/**
 * Whether the failure of a request to a storage or an origin is this process being out of
 * descriptors: EMFILE on the socket, or — for a host given by name — a lookup that could not open
 * /etc/hosts or a DNS socket, which Node reports as ENOTFOUND. A lookup failure is told apart by
 * trying to open one descriptor now (only on that error path).
 */
export function isExhaustion (code: unknown): boolean {
  if (isExhaustedCode(code)) return true
  if (typeof code !== 'string' || !lookupCodes.has(code)) return false
  try {
    closeSync(openSync('/dev/null', 'r'))
    return false
  } catch (error) {
    return isExhaustedCode((error as { code?: unknown } | null)?.code)
  }
}

/**
 * Maps any failure of a file wrapper to the HTTP error that `serve()` throws, in one place:
 * missing → 404, access refused → 403 (as nginx does), out of descriptors → 503, storage/upstream
 * → its DownloadError status, an error that names its own 4xx/5xx → that status, anything else
 * → 500. The message exposed to the client is the status text, never a path.
 */
export function toHttpError (error: unknown): HttpError {
  const declared = declaredStatus(error)
  const status = declared ?? statusFor(error)
  // The headers of an error that chose its status (a 401's WWW-Authenticate, a 503's Retry-After),
  // which Koa sends with it.
  const headers = declared === undefined ? undefined : (error as { headers?: unknown }).headers
  const httpError = createHttpError(status, headers !== null && typeof headers === 'object' ? { expose: status < 500, headers } : { expose: status < 500 })
  // Not enumerable, as the standard `cause` is: http-errors copies its properties as enumerable
  // ones, and an error handler that serialises an exposed error (JSON.stringify(err)) would then
  // publish the original failure, file path included.
  Object.defineProperty(httpError, 'cause', { value: error, enumerable: false, writable: true, configurable: true })
  // Koa's default error log prints `err.stack` of a 5xx, which would say "Internal Server Error"
  // and nothing of the file or the failure: the causes go in the stack (a log's text; the message,
  // which an error page may show, stays the status text).
  if (status >= 500) httpError.stack = `${httpError.stack ?? `${httpError.name}: ${httpError.message}`}${causeChain(error)}`
  return httpError
}

/** The failure and its own causes (up to four), as the stack lines a log shows under the error. */
function causeChain (error: unknown): string {
  let text = ''
  let cause = error
  for (let depth = 0; depth < 4 && cause !== undefined && cause !== null; depth++) {
    const described = cause instanceof Error ? (cause.stack ?? `${cause.name}: ${cause.message}`) : String(cause)
    text += `\n[cause]: ${described}`
    cause = cause instanceof Error ? cause.cause : undefined
  }
  return text
}

/**
 * The status an error names for the client: an http-errors error (createHttpError(410), Koa's
 * ctx.throw()), or one that says whether to expose it (Koa's convention), keeps its 4xx/5xx, as Koa
 * would keep it had the route thrown it. Not the `status` of an HTTP client's error (superagent,
 * axios, gaxios, undici): that is the origin's answer to the app — a 401 there is the app's
 * credentials, not the client's — and stays a 500 that Koa logs.
 */
function declaredStatus (error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined
  const { status, statusCode, expose } = error as { status?: unknown, statusCode?: unknown, expose?: unknown }
  if (!createHttpError.isHttpError(error) && typeof expose !== 'boolean') return undefined
  const declared = status ?? statusCode
  return typeof declared === 'number' && Number.isInteger(declared) && declared >= 400 && declared <= 599 ? declared : undefined
}

export function statusFor (error: unknown): number {
  if (error instanceof DownloadError) return error.status
  const declared = declaredStatus(error)
  if (declared !== undefined) return declared
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string') {
    if (notFoundCodes.has(code)) return 404
    if (forbiddenCodes.has(code)) return 403
    if (exhaustedCodes.has(code)) return 503
  }
  return 500
}

/**
 * A filesystem failure as the DownloadError that names it (missing → E_NOT_FOUND, refused →
 * E_FORBIDDEN, with the fs error as `cause`): a route that calls a PathFile's stat() itself sees
 * the same error whether the file is missing or outside its root. Anything else is left as it is
 * (its message escaped, below).
 */
export function fromFsError (error: unknown, what: string): unknown {
  if (error instanceof DownloadError) return error
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return error
  // Node's fs message quotes the path as it was, and the error goes on as the `cause` that logs
  // print (Koa's stack of a 5xx, Node's inspect): its control characters are escaped in place.
  if (error instanceof Error) escapeMessage(error)
  if (notFoundCodes.has(code)) return new DownloadError('E_NOT_FOUND', `${what}: ${(error as Error).message}`, { cause: error })
  if (forbiddenCodes.has(code)) return new DownloadError('E_FORBIDDEN', `${what}: ${(error as Error).message}`, { cause: error })
  return error
}

/** `error`'s message, and the same text at the head of its stack, with control characters escaped. */
function escapeMessage (error: Error): void {
  const raw = error.message
  const safe = printable(raw)
  if (safe === raw) return
  error.message = safe
  if (typeof error.stack === 'string') error.stack = error.stack.replace(raw, safe)
}

const SHORT_ESCAPES: Partial<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * `text` with its control characters escaped (`\n`, `\x1b`): a path from a request
 * (`/files/x%0AINFO …`) would otherwise start a forged line in the app's log.
 */
function printable (text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => SHORT_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

export function notFound (message: string, cause?: unknown): DownloadError {
  return new DownloadError('E_NOT_FOUND', message, { cause })
}
