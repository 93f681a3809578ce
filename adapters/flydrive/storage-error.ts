import { DownloadError, isExhaustion, notFound, notFoundCodes, upstreamStatusCode } from '../../source/errors.ts'
import { debug } from '../../source/debug.ts'

const missingNames = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket'])
const timeoutCodes = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])
/** node-fetch 2's FetchError (the GCS SDK's transport) says "timeout" in `type`, with no code. */
const timeoutTypes = new Set(['request-timeout', 'body-timeout'])

const genericNames = new Set(['Error', 'TypeError', 'Exception', 'RuntimeException'])

interface ErrorShape {
  name?: unknown
  code?: unknown
  type?: unknown
  status?: unknown
  cause?: unknown
  $metadata?: { httpStatusCode?: unknown }
  response?: { status?: unknown }
}

/** The failure of a storage request with no response within `ms` (code ETIMEDOUT: E_TIMEOUT, a 504). */
export function noResponseError (ms: number): Error {
  return Object.assign(new Error(`no response in ${ms} ms`), { code: 'ETIMEDOUT' })
}

/** True for the error of an aborted operation (the client went away): not a storage failure. */
export function isAbort (error: unknown): boolean {
  const e = error as ErrorShape | null
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR'
}

/**
 * Maps a failure of flydrive, the AWS SDK, the GCS SDK or node:fs to a DownloadError, in one place:
 * missing → E_NOT_FOUND; changed since stat (412, 416) → E_CHANGED; throttled or down (429, 503),
 * and this process out of descriptors (EMFILE) → E_UNAVAILABLE; timeouts → E_TIMEOUT; anything
 * else, including refused credentials (the client cannot fix those) → E_UPSTREAM. flydrive wraps
 * SDK errors (E_CANNOT_GET_METADATA, …): the cause decides. Aborts are passed through untouched.
 */
export function storageError (error: unknown, what: string): Error {
  if (error instanceof DownloadError || isAbort(error)) return error as Error
  const status = statusOf(error)
  const code = codeOf(error)
  const byStatus = status === undefined ? undefined : upstreamStatusCode(status)
  let result: DownloadError
  if (byStatus === 'E_NOT_FOUND' || (code !== undefined && (missingNames.has(code) || notFoundCodes.has(code)))) {
    result = notFound(`${what}: not found`, error)
  } else if (status === 412 || status === 416 || code === 'PreconditionFailed' || code === 'InvalidRange') {
    result = new DownloadError('E_CHANGED', `${what}: changed since its metadata was read`, { cause: error })
  } else if (byStatus === 'E_UNAVAILABLE' || code === 'SlowDown') {
    result = new DownloadError('E_UNAVAILABLE', `${what}: storage unavailable (${status ?? code})`, { cause: error })
  } else if (isExhaustion(code)) {
    // This process is out of descriptors (the SDK's socket or name lookup, the fs driver's open):
    // it may succeed later.
    result = new DownloadError('E_UNAVAILABLE', `${what}: out of resources here (${code})`, { cause: error })
  } else if (byStatus === 'E_TIMEOUT' || code === 'TimeoutError' || (code !== undefined && timeoutCodes.has(code)) || isTimeoutType(error)) {
    result = new DownloadError('E_TIMEOUT', `${what}: storage timed out`, { cause: error })
  } else {
    result = new DownloadError('E_UPSTREAM', `${what}: storage failed (${status ?? code ?? 'error'})`, { cause: error })
  }
  debug('%s: %s → %s (%s)', what, (error as Error | null)?.message ?? String(error), result.code, code ?? status ?? '')
  return result
}

/** The HTTP status behind an error, searching its cause chain (flydrive wraps the SDK's error). */
function statusOf (error: unknown): number | undefined {
  for (let e = error as ErrorShape | undefined, depth = 0; e !== undefined && e !== null && depth < 5; e = e.cause as ErrorShape | undefined, depth++) {
    const candidates = [e.$metadata?.httpStatusCode, e.status, e.response?.status, e.code]
    for (const value of candidates) {
      if (typeof value === 'number' && value >= 100 && value < 600) return value
    }
  }
  return undefined
}

/** The innermost (most specific) string code or SDK error name in the cause chain. */
function codeOf (error: unknown): string | undefined {
  let found: string | undefined
  for (let e = error as ErrorShape | undefined, depth = 0; e !== undefined && e !== null && depth < 5; e = e.cause as ErrorShape | undefined, depth++) {
    if (typeof e.code === 'string' && !e.code.startsWith('E_CANNOT')) found = e.code
    else if (typeof e.name === 'string' && !genericNames.has(e.name)) found = e.name
  }
  return found
}

/** Whether a node-fetch FetchError in the cause chain is a timeout. */
function isTimeoutType (error: unknown): boolean {
  for (let e = error as ErrorShape | undefined, depth = 0; e !== undefined && e !== null && depth < 5; e = e.cause as ErrorShape | undefined, depth++) {
    if (typeof e.type === 'string' && timeoutTypes.has(e.type)) return true
  }
  return false
}
