import type { ByteRange } from './types.ts'

/**
 * The Range header (RFC 9110 §14.1–14.2). The caller has
 * already applied rules 1–2 (GET only, known length) and If-Range.
 *
 * Caps against abuse — our decision, which §14.2 allows ("MAY ignore or reject"):
 * - more than `maxSpecs` (default 100) range-specs → the header is ignored (200 full);
 * - ranges that overlap, touch, or are separated by fewer than `coalesceGap` (default 80) bytes are
 *   merged (§15.3.7.2 allows coalescing "regardless of the order" requested); so a response never
 *   carries more bytes than the file, and the small-gap case costs no more than a part header would
 *   have. The parts keep the order of the header (§15.3.7.2's SHOULD), a merged one the place of
 *   the first range it holds;
 * - more than `maxParts` (default 32) parts left after coalescing → the header is ignored (200 full).
 * One range is always one part (never multipart).
 *
 * Deviations of well-known peers we do not copy (§11): `bytes=-N` with N ≥ length is the whole file
 * (not 416); `bytes=-0` is unsatisfiable (not an empty 206); an unknown unit or a malformed spec is
 * ignored (not 416); `parseInt` leniency (`bytes=1abc-`) is malformed; an empty file ignores Range
 * (not 416 `*\/0`).
 */

/**
 * A response's `Content-Range: bytes a-b/size` (a ≤ b < size, safe integers), as a storage or an
 * origin sends it with a 206; anything else (`*`, an unknown size, a malformed value) is undefined.
 */
export function parseContentRange (value: string | undefined): { start: number, end: number, size: number } | undefined {
  const match = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(value ?? '')
  if (match === null) return undefined
  const [start, end, size] = [Number(match[1]), Number(match[2]), Number(match[3])]
  return start <= end && end < size ? { start, end, size } : undefined
}

export interface RangeLimits {
  /** More comma-separated range-specs than this → Range ignored. @default 100 */
  maxSpecs?: number | undefined
  /** More parts than this after coalescing → Range ignored. @default 32 */
  maxParts?: number | undefined
  /** Ranges separated by fewer bytes than this are merged into one part. @default 80 */
  coalesceGap?: number | undefined
}

export type RangeResult =
  /** Ignore Range → 200 with the whole representation. */
  | { type: 'none', reason: string }
  /** → 416 with `Content-Range: bytes *\/size`. */
  | { type: 'unsatisfiable' }
  /** Disjoint, non-adjacent ranges in the order asked for: one → single-part 206; several → multipart 206. */
  | { type: 'ranges', ranges: ByteRange[] }

const DEFAULT_MAX_SPECS = 100
const DEFAULT_MAX_PARTS = 32
const DEFAULT_COALESCE_GAP = 80

const COMMA = 0x2c
const DASH = 0x2d

function isOws (code: number): boolean {
  return code === 0x20 || code === 0x09
}

/** The unit `bytes`, case-insensitively, followed by `=`. */
function hasBytesUnit (header: string): boolean {
  return header.length >= 6 && header.charCodeAt(5) === 0x3d && (
    header.startsWith('bytes') || header.slice(0, 5).toLowerCase() === 'bytes'
  )
}

// Scratch state for the number just read, so that parsing allocates nothing per spec.
let numValue = 0
let numStart = 0
let numEnd = 0

/**
 * Reads `^\d+` at `i`; returns the index after it (or `i` when there is no digit). Values beyond
 * MAX_SAFE_INTEGER lose precision but stay ≥ 2^53, above any real size; `compareDigits` settles the
 * one comparison where that matters.
 */
function readDigits (header: string, i: number, end: number): number {
  numStart = i
  let n = 0
  while (i < end) {
    const d = header.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) break
    n = n * 10 + d
    i++
  }
  numValue = n
  numEnd = i
  return i
}

/** Compares two digit strings of the header by value (leading zeros allowed), without overflow. */
function compareDigits (header: string, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  while (aStart < aEnd - 1 && header.charCodeAt(aStart) === 0x30) aStart++
  while (bStart < bEnd - 1 && header.charCodeAt(bStart) === 0x30) bStart++
  const lengths = (aEnd - aStart) - (bEnd - bStart)
  if (lengths !== 0) return lengths
  for (; aStart < aEnd; aStart++, bStart++) {
    const diff = header.charCodeAt(aStart) - header.charCodeAt(bStart)
    if (diff !== 0) return diff
  }
  return 0
}

/**
 * Decides what a `Range` header asks of a representation of `size` bytes (size known, method GET).
 */
export function parseRange (header: string, size: number, limits?: RangeLimits): RangeResult {
  if (!hasBytesUnit(header)) return { type: 'none', reason: 'not a bytes range' }
  const maxSpecs = limits?.maxSpecs ?? DEFAULT_MAX_SPECS
  const end = header.length
  let specs = 0
  let ranges: ByteRange[] | undefined
  let i = 6
  while (i < end) {
    const code = header.charCodeAt(i)
    if (code === COMMA || isOws(code)) { i++; continue }
    if (++specs > maxSpecs) return { type: 'none', reason: `more than ${maxSpecs} range specs` }
    let start: number
    let last: number
    if (code === DASH) {
      // suffix-range: the last N bytes
      i = readDigits(header, i + 1, end)
      if (numEnd === numStart) return malformed(header)
      if (numValue === 0) start = -1 // unsatisfiable
      else start = numValue >= size ? 0 : size - numValue
      last = size - 1
    } else {
      i = readDigits(header, i, end)
      if (numEnd === numStart || header.charCodeAt(i) !== DASH) return malformed(header)
      const first = numValue
      const firstStart = numStart
      const firstEnd = numEnd
      i = readDigits(header, i + 1, end)
      if (numEnd === numStart) {
        last = size - 1 // first-
      } else {
        const firstUnsafe = first > Number.MAX_SAFE_INTEGER
        if (firstUnsafe && numValue > Number.MAX_SAFE_INTEGER
          ? compareDigits(header, numStart, numEnd, firstStart, firstEnd) < 0
          : numValue < first) {
          return malformed(header) // last < first
        }
        last = numValue >= size ? size - 1 : numValue
      }
      start = first >= size ? -1 : first
    }
    // The spec must end here: OWS, then a comma or the end.
    while (i < end && isOws(header.charCodeAt(i))) i++
    if (i < end && header.charCodeAt(i) !== COMMA) return malformed(header)
    if (start !== -1) (ranges ??= []).push({ start, end: last })
  }
  if (specs === 0) return malformed(header)
  // Rule 5, after the syntax checks so that the reason names the real problem.
  if (!(size > 0)) return { type: 'none', reason: 'empty representation' }
  if (ranges === undefined) return { type: 'unsatisfiable' }
  if (ranges.length === 1) return { type: 'ranges', ranges }
  const parts = coalesce(ranges, limits?.coalesceGap ?? DEFAULT_COALESCE_GAP)
  const maxParts = limits?.maxParts ?? DEFAULT_MAX_PARTS
  if (parts.length > maxParts) return { type: 'none', reason: `more than ${maxParts} parts after coalescing` }
  return { type: 'ranges', ranges: parts }
}

function malformed (header: string): RangeResult {
  return { type: 'none', reason: `malformed range ${JSON.stringify(header.length > 64 ? header.slice(0, 64) + '…' : header)}` }
}

/**
 * Merges ranges that overlap, touch, or have fewer than `gap` bytes between them, and keeps the
 * order they were asked in: each part where the first of the ranges it holds was (RFC 9110
 * §15.3.7.2: the parts SHOULD follow the Range header, save those coalesced into others).
 */
function coalesce (ranges: ByteRange[], gap: number): ByteRange[] {
  const order = ranges.map((range, index) => ({ start: range.start, end: range.end, first: index }))
  order.sort((a, b) => a.start - b.start)
  const merged: Array<{ start: number, end: number, first: number }> = []
  let current = order[0] as { start: number, end: number, first: number }
  for (let k = 1; k < order.length; k++) {
    const next = order[k] as { start: number, end: number, first: number }
    const between = next.start - current.end - 1
    if (between <= 0 || between < gap) {
      if (next.end > current.end) current.end = next.end
      if (next.first < current.first) current.first = next.first
    } else {
      merged.push(current)
      current = next
    }
  }
  merged.push(current)
  merged.sort((a, b) => a.first - b.first)
  return merged.map(({ start, end }) => ({ start, end }))
}
