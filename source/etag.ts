import { hash } from 'node:crypto'
import { debug } from './debug.ts'

/**
 * Entity-tags (RFC 9110 §8.8.3): generation, parsing of single tags and of the comma lists that
 * If-Match and If-None-Match carry, and the strong and weak comparisons (§8.8.3.2). Lists are parsed
 * member by member, never substring-matched (pillarjs/send #111).
 */

/** A parsed entity-tag. `opaque` includes the double quotes: `W/"x"` → `{ weak: true, opaque: '"x"' }`. */
export interface EntityTag {
  weak: boolean
  opaque: string
}

const DQUOTE = 0x22
const COMMA = 0x2c

/** etagc = %x21 / %x23-7E / obs-text (%x80-FF; Node decodes header bytes as Latin-1). */
function isEtagc (code: number): boolean {
  return code === 0x21 || (code >= 0x23 && code <= 0x7e) || (code >= 0x80 && code <= 0xff)
}

function isOws (code: number): boolean {
  return code === 0x20 || code === 0x09
}

/**
 * The index just after the entity-tag that starts at `start` in `value` (`"…"` or `W/"…"`, `W`
 * case-sensitive), or -1 when there is none.
 */
function scanEntityTag (value: string, start: number): number {
  let i = start
  if (value.charCodeAt(i) === 0x57 /* W */ && value.charCodeAt(i + 1) === 0x2f /* / */) i += 2
  if (value.charCodeAt(i) !== DQUOTE) return -1
  for (i++; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code === DQUOTE) return i + 1
    if (!isEtagc(code)) return -1
  }
  return -1
}

function toEntityTag (value: string, start: number, end: number): EntityTag {
  const weak = value.charCodeAt(start) === 0x57
  return { weak, opaque: value.slice(weak ? start + 2 : start, end) }
}

/**
 * `tag` when it is one entity-tag, else undefined: what a file wrapper's stat() reports is sent
 * and compared only when well-formed (a bare `abc`, or one with a control character that Node
 * would refuse as a header value, is left out as if the wrapper had none).
 */
export function wellFormedEtag (tag: string | undefined): string | undefined {
  if (tag === undefined || scanEntityTag(tag, 0) === tag.length) return tag
  debug('an ETag that is not an entity-tag (RFC 9110 §8.8.3) is not sent: %s', JSON.stringify(tag))
  return undefined
}

/** One entity-tag, exactly (no surrounding whitespace), else undefined. */
export function parseEntityTag (value: string): EntityTag | undefined {
  const end = scanEntityTag(value, 0)
  return end === value.length ? toEntityTag(value, 0, end) : undefined
}

/**
 * `"*"` or a comma list of entity-tags (If-Match, If-None-Match). Empty list elements and OWS are
 * tolerated; a malformed member is skipped (it is not an entity-tag), and so is a `*` inside a list,
 * which the grammar does not allow. No valid member → undefined: the caller ignores the header.
 */
export function parseEntityTagList (header: string): '*' | EntityTag[] | undefined {
  let tags: EntityTag[] | undefined
  const read = scanList(header, (start, end) => { (tags ??= []).push(toEntityTag(header, start, end)) })
  return read === '*' ? '*' : tags
}

/**
 * Whether `header` is written as RFC 9110 says: `*`, or a comma list whose every member is an
 * entity-tag (empty elements and OWS allowed, so `''` is an empty list). parseEntityTagList()
 * reads more than that (it skips malformed members); offload() streams a request whose If-Match or
 * If-None-Match is not this clean, because proxies read such fields in ways of their own.
 */
export function isEntityTagList (header: string): boolean {
  return scanList(header) !== 'malformed'
}

/**
 * Reads `header` as `*` or a comma list, calling `found` with the bounds of each entity-tag member
 * and skipping malformed members to the next comma: `'*'`, or whether a member was skipped.
 */
function scanList (header: string, found?: (start: number, end: number) => void): '*' | 'clean' | 'malformed' {
  let start = 0
  let end = header.length
  while (start < end && isOws(header.charCodeAt(start))) start++
  while (end > start && isOws(header.charCodeAt(end - 1))) end--
  if (end - start === 1 && header.charCodeAt(start) === 0x2a /* * */) return '*'
  let result: 'clean' | 'malformed' = 'clean'
  let i = start
  while (i < end) {
    const code = header.charCodeAt(i)
    if (code === COMMA || isOws(code)) { i++; continue }
    const tagEnd = scanEntityTag(header, i)
    let next = tagEnd === -1 ? i : tagEnd
    while (next < end && isOws(header.charCodeAt(next))) next++
    if (tagEnd !== -1 && (next === end || header.charCodeAt(next) === COMMA)) {
      found?.(i, tagEnd)
      i = next
    } else {
      // Malformed member: skip to the next comma.
      result = 'malformed'
      const comma = header.indexOf(',', next)
      i = comma === -1 ? end : comma
    }
  }
  return result
}

/** Strong comparison: neither tag is weak and the opaque-tags are identical (If-Match, If-Range). */
export function strongMatch (a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque
}

/** Weak comparison: the opaque-tags are identical, `W/` ignored on either side (If-None-Match). */
export function weakMatch (a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque
}

/**
 * An ETag from a file's stat, like nginx: `"<mtime in whole seconds, hex>-<size hex>"`. It is
 * strong once the second of the mtime is over: from then on any write changes it. Given `now`, a tag
 * handed out while that second lasts is weak (`W/`), as a Last-Modified of the current second is no
 * strong validator (RFC 9110 §8.8.2.2): another write of the same size in that second would keep it,
 * and a client resuming with `If-Range` would get the new file's bytes after the old one's. A weak
 * tag never satisfies If-Range (the whole file instead) and still revalidates (If-None-Match).
 */
export function statEtag (mtimeMs: number, size: number, now?: number): string {
  const second = Math.floor(mtimeMs / 1000)
  const tag = `"${second.toString(16)}-${size.toString(16)}"`
  return now !== undefined && Math.floor(now / 1000) <= second ? 'W/' + tag : tag
}

/** A strong ETag from the bytes themselves: `"<length hex>-<sha1 base64 without padding>"` (jshttp/etag format). */
export function contentEtag (bytes: Uint8Array): string {
  return `"${bytes.byteLength.toString(16)}-${hash('sha1', bytes, 'base64').slice(0, 27)}"`
}
