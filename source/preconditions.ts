import { parseEntityTag, parseEntityTagList, strongMatch, weakMatch } from './etag.ts'
import type { EntityTag } from './etag.ts'
import { parseHttpDate } from './http-date.ts'
import type { IncomingHttpHeaders } from 'node:http'

/*
 * Conditional requests (RFC 9110 §13.2.2 steps 1–4, and If-Range §13.1.5). Evaluated only for a representation that exists, after
 * a 404 would have been decided and before Range.
 *
 * Deviations of well-known peers we do not copy (§11): If-Match uses the strong comparison;
 * `If-Match: *` is true without an ETag; If-Unmodified-Since without Last-Modified is ignored; an
 * If-None-Match match on a non-GET/HEAD is 412, not 304; If-Modified-Since is ignored when
 * If-None-Match is present (Koa's `ctx.fresh` requires both); If-Range never accepts a weak tag and
 * compares dates for equality with a strong Last-Modified.
 */

/** What a representation is known by, for evaluating preconditions against. */
export interface Validators {
  /** The current entity-tag, quotes included (`"x"` or `W/"x"`). */
  etag?: string | undefined
  /** The current Last-Modified, epoch ms (whole seconds). */
  lastModified?: number | undefined
}

export type PreconditionResult = { status: 200 } | { status: 304 | 412, reason: string }

export interface ConditionalHeaders {
  'if-match'?: string | undefined
  'if-none-match'?: string | undefined
  'if-modified-since'?: string | undefined
  'if-unmodified-since'?: string | undefined
}

const PASS: PreconditionResult = Object.freeze({ status: 200 })

/**
 * 200 (go on), 304 (Not Modified) or 412 (Precondition Failed). Headers that cannot be parsed (no
 * valid entity-tag, an invalid date) are ignored as if absent; date headers are ignored without a
 * Last-Modified; all of them are ignored for OPTIONS, TRACE and CONNECT.
 */
export function evaluatePreconditions (method: string, headers: ConditionalHeaders, validators: Validators): PreconditionResult {
  const ifMatch = headers['if-match']
  const ifNoneMatch = headers['if-none-match']
  const ifModifiedSince = headers['if-modified-since']
  const ifUnmodifiedSince = headers['if-unmodified-since']
  // The fast path: most requests carry no condition.
  if (ifMatch === undefined && ifNoneMatch === undefined && ifModifiedSince === undefined && ifUnmodifiedSince === undefined) return PASS
  // Methods that select no representation: a server MUST ignore the conditionals (RFC 9110 §13.2.1).
  if (method === 'OPTIONS' || method === 'TRACE' || method === 'CONNECT') return PASS
  // The revalidation fast path: If-None-Match alone, carrying exactly the current (valid) ETag.
  if (ifNoneMatch !== undefined && ifNoneMatch === validators.etag && ifMatch === undefined && ifUnmodifiedSince === undefined &&
    (method === 'GET' || method === 'HEAD') && parseEntityTag(ifNoneMatch) !== undefined) {
    return { status: 304, reason: `If-None-Match ${ifNoneMatch} matches` }
  }

  const current = validators.etag === undefined ? undefined : parseEntityTag(validators.etag)
  const lastModified = validators.lastModified === undefined ? undefined : Math.floor(validators.lastModified / 1000) * 1000

  // Step 1, else step 2.
  const matchList = ifMatch === undefined ? undefined : parseEntityTagList(ifMatch)
  if (matchList !== undefined) {
    if (matchList !== '*' && !anyMatch(matchList, current, strongMatch)) {
      return { status: 412, reason: `If-Match ${ifMatch} does not strongly match ${validators.etag ?? 'a representation without ETag'}` }
    }
  } else if (ifUnmodifiedSince !== undefined && lastModified !== undefined) {
    const date = parseHttpDate(ifUnmodifiedSince)
    if (date !== undefined && lastModified > date) {
      return { status: 412, reason: `modified since If-Unmodified-Since ${ifUnmodifiedSince}` }
    }
  }

  // Step 3, else step 4.
  const noneMatchList = ifNoneMatch === undefined ? undefined : parseEntityTagList(ifNoneMatch)
  const isRead = method === 'GET' || method === 'HEAD'
  if (noneMatchList !== undefined) {
    if (noneMatchList === '*' || anyMatch(noneMatchList, current, weakMatch)) {
      return { status: isRead ? 304 : 412, reason: `If-None-Match ${ifNoneMatch} matches` }
    }
  } else if (ifModifiedSince !== undefined && isRead && lastModified !== undefined) {
    const date = parseHttpDate(ifModifiedSince)
    if (date !== undefined && lastModified <= date) {
      return { status: 304, reason: `not modified since If-Modified-Since ${ifModifiedSince}` }
    }
  }
  return PASS
}

/**
 * The request's headers as the preconditions must read them: without an If-Modified-Since or
 * If-Unmodified-Since sent in more than one line. Node's `req.headers` keeps the first line of
 * each and drops the others, but a recipient MUST ignore such a field with more than one member
 * (RFC 9110 §13.1.3, §13.1.4) — read as Node gives it, the answer would depend on the order of the
 * lines. The same object when nothing is to be left out (every request without those fields).
 */
export function conditionalHeaders (req: { headers: IncomingHttpHeaders, rawHeaders: readonly string[] }): IncomingHttpHeaders {
  const headers = req.headers
  if (headers['if-modified-since'] === undefined && headers['if-unmodified-since'] === undefined) return headers
  const repeated = repeatedDateFields(req.rawHeaders)
  if (repeated.length === 0) return headers
  const kept = { ...headers }
  for (const name of repeated) delete kept[name]
  return kept
}

/** Which of If-Modified-Since and If-Unmodified-Since `rawHeaders` carries more than once. */
export function repeatedDateFields (rawHeaders: readonly string[]): Array<'if-modified-since' | 'if-unmodified-since'> {
  let modified = 0
  let unmodified = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? ''
    if (name.length === 17 && name.toLowerCase() === 'if-modified-since') modified++
    else if (name.length === 19 && name.toLowerCase() === 'if-unmodified-since') unmodified++
  }
  const repeated: Array<'if-modified-since' | 'if-unmodified-since'> = []
  if (modified > 1) repeated.push('if-modified-since')
  if (unmodified > 1) repeated.push('if-unmodified-since')
  return repeated
}

function anyMatch (list: EntityTag[], current: EntityTag | undefined, match: (a: EntityTag, b: EntityTag) => boolean): boolean {
  if (current === undefined) return false
  for (const tag of list) if (match(tag, current)) return true
  return false
}

/**
 * Whether If-Range lets the Range header apply. An entity-tag: only a strong match (a weak tag on
 * either side is false). A date: only exact equality with a strong Last-Modified, one at least a
 * second older than `now` (epoch ms), since a file changed within the current second may change
 * again unseen. Anything else is false: the whole representation is sent.
 */
export function ifRangeAllows (ifRange: string, validators: Validators, now: number): boolean {
  // An entity-tag starts with `"` or `W/`; a date may start with `W` (Wed, Wednesday).
  const first = ifRange.charCodeAt(0)
  if (first === 0x22 /* " */ || (first === 0x57 /* W */ && ifRange.charCodeAt(1) === 0x2f /* / */)) {
    const tag = parseEntityTag(ifRange)
    const current = validators.etag === undefined ? undefined : parseEntityTag(validators.etag)
    return tag !== undefined && current !== undefined && strongMatch(tag, current)
  }
  if (validators.lastModified === undefined) return false
  const lastModified = Math.floor(validators.lastModified / 1000) * 1000
  const date = parseHttpDate(ifRange)
  return date !== undefined && date === lastModified && lastModified <= now - 1000
}
