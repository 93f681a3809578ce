import test from 'ava'
import fc from 'fast-check'
import { parseContentRange, parseRange } from '../source/range.ts'
import type { RangeResult } from '../source/range.ts'
import type { ByteRange } from '../source/types.ts'

const r = (...pairs: Array<[number, number]>): RangeResult => ({ type: 'ranges', ranges: pairs.map(([start, end]) => ({ start, end })) })
const unsatisfiable: RangeResult = { type: 'unsatisfiable' }

/** Asserts an ignored header (→ 200 full); the reason is for debug logs, so only its presence is checked. */
function ignored (t: { is: (a: unknown, b: unknown, m?: string) => void, true: (a: boolean, m?: string) => void }, result: RangeResult, header: string): void {
  t.is(result.type, 'none', header)
  if (result.type === 'none') t.true(result.reason.length > 0, 'a reason for the debug log')
}

// reference/http-semantics.md §3, on a 1000-byte representation.
const satisfiable: Array<[rule: string, header: string, expected: RangeResult]> = [
  ['first-last', 'bytes=0-499', r([0, 499])],
  ['one byte', 'bytes=0-0', r([0, 0])],
  ['the last byte', 'bytes=999-999', r([999, 999])],
  ['first- to the end', 'bytes=500-', r([500, 999])],
  ['rule 7: last ≥ len is clamped', 'bytes=500-5000', r([500, 999])],
  ['rule 7: last = len is clamped', 'bytes=0-1000', r([0, 999])],
  ['rule 8: suffix -N', 'bytes=-100', r([900, 999])],
  ['rule 8: suffix -1', 'bytes=-1', r([999, 999])],
  ['rule 8: suffix N = len is the whole representation', 'bytes=-1000', r([0, 999])],
  ['rule 8: suffix N > len is the whole representation (not 416 as in range-parser)', 'bytes=-4000', r([0, 999])],
  ['units are case-insensitive', 'BYTES=0-9', r([0, 9])],
  ['units are case-insensitive (mixed)', 'Bytes=0-9', r([0, 9])],
  ['rule 4: OWS around elements', 'bytes= 0-9 ,\t200-209 ', r([0, 9], [200, 209])],
  ['rule 4: empty elements are skipped', 'bytes=,0-9,,', r([0, 9])],
  ['leading zeros are digits', 'bytes=007-0010', r([7, 10])],
  ['rule 9: unsatisfiable specs are dropped, the rest served', 'bytes=2000-3000,0-9', r([0, 9])],
  ['rule 9: -0 is dropped next to a satisfiable spec', 'bytes=-0,0-0', r([0, 0])],
  ['rule 12: several distant ranges stay separate parts (multipart)', 'bytes=0-9,500-509', r([0, 9], [500, 509])],
  ['parts keep the order asked for (RFC 9110 §15.3.7.2)', 'bytes=500-509,0-9', r([500, 509], [0, 9])],
  ['a merged part takes the place of the first range it holds', 'bytes=0-9,900-909,500-509,305-400,300-309', r([0, 9], [900, 909], [500, 509], [300, 400])],
  ['a part merged from ranges asked apart comes where the first of them was', 'bytes=900-909,300-309,0-9,305-400,950-959', r([900, 959], [300, 400], [0, 9])],
  ['coalescing merges overlapping ranges', 'bytes=0-99,50-149', r([0, 149])],
  ['coalescing merges adjacent ranges', 'bytes=0-99,100-199', r([0, 199])],
  ['coalescing merges a range inside another', 'bytes=0-499,10-20', r([0, 499])],
  ['coalescing merges ranges fewer than 80 bytes apart', 'bytes=0-9,89-99', r([0, 99])],
  ['ranges 80 bytes apart are not merged', 'bytes=0-9,90-99', r([0, 9], [90, 99])],
  ['coalescing of out-of-order, overlapping ranges', 'bytes=900-,-50,0-0,1-1', r([900, 999], [0, 1])],
  ['rule 11: one range after coalescing is a single part', 'bytes=0-10,5-20,-1000', r([0, 999])],
  ['a huge last-pos clamps', 'bytes=10-99999999999999999999999999', r([10, 999])],
  ['a huge suffix is the whole representation', 'bytes=-99999999999999999999999999', r([0, 999])]
]
for (const [rule, header, expected] of satisfiable) {
  test(`range: ${rule} (${header})`, t => {
    t.deepEqual(parseRange(header, 1000), expected)
  })
}

const unsatisfiables: Array<[rule: string, header: string]> = [
  ['rule 6: first = len', 'bytes=1000-'],
  ['rule 6: first > len', 'bytes=1000-2000'],
  ['rule 8: suffix -0 is unsatisfiable (not an empty 206 as in Go)', 'bytes=-0'],
  ['rule 8: suffix -000', 'bytes=-000'],
  ['rule 9: no satisfiable spec left among several', 'bytes=1000-,-0,5000-6000'],
  ['a huge first-pos', 'bytes=99999999999999999999999999-'],
  ['a huge first-pos with a larger last-pos', 'bytes=99999999999999999998-99999999999999999999']
]
for (const [rule, header] of unsatisfiables) {
  test(`range: 416 (${rule}: ${header})`, t => {
    t.deepEqual(parseRange(header, 1000), unsatisfiable)
  })
}

const ignoredHeaders: Array<[rule: string, header: string]> = [
  ['rule 3: unknown unit (not 416 as in Go/Caddy)', 'items=0-4'],
  ['rule 3: no =', 'bytes 0-4'],
  ['rule 3: no = at all', 'bytes'],
  ['rule 3: space before =', 'bytes =0-4'],
  ['rule 3: a unit that only starts with bytes', 'bytesx=0-4'],
  ['rule 3: empty header', ''],
  ['rule 4: empty range-set', 'bytes='],
  ['rule 4: only commas', 'bytes=, ,'],
  ['rule 4: double dash (not 416 as in Go/Caddy)', 'bytes=--6'],
  ['rule 4: letters (not 416 as in range-parser)', 'bytes=abc'],
  ['rule 4: parseInt leniency', 'bytes=1abc-5'],
  ['rule 4: trailing garbage in last-pos', 'bytes=1-5x'],
  ['rule 4: a sign', 'bytes=+1-5'],
  ['rule 4: a negative first-pos', 'bytes=-1-5'],
  ['rule 4: a lone dash', 'bytes=-'],
  ['rule 4: whitespace inside a spec', 'bytes=1 -5'],
  ['rule 4: whitespace inside a number', 'bytes=1 0-5'],
  ['rule 4: decimals', 'bytes=1.5-6'],
  ['rule 4: hexadecimal', 'bytes=0x10-0x20'],
  ['rule 4: exponent', 'bytes=1e3-'],
  ['rule 4: non-ASCII digits', 'bytes=١-٥'],
  ['rule 4: two specs without a comma', 'bytes=0-1 2-3'],
  ['rule 4: a semicolon separator', 'bytes=0-1;2-3'],
  ['rule 4: last < first', 'bytes=5-1'],
  ['rule 4: one invalid element spoils the whole header', 'bytes=0-1,abc,4-5'],
  ['rule 4: last < first in one element spoils the whole header', 'bytes=0-1,9-2'],
  ['rule 4: last < first with huge numbers', 'bytes=99999999999999999999-99999999999999999998'],
  ['rule 4: last < first with huge numbers beyond double precision', 'bytes=10000000000000000001-10000000000000000000'],
  ['rule 4: last < first, one huge', 'bytes=99999999999999999999-5'],
  ['rule 4: last < first with leading zeros', 'bytes=0010-009']
]
for (const [rule, header] of ignoredHeaders) {
  test(`range: ignored → 200 (${rule}: ${JSON.stringify(header)})`, t => {
    ignored(t, parseRange(header, 1000), header)
  })
}

test('range: rule 5: an empty representation ignores Range (not 416 */0 as in send)', t => {
  ignored(t, parseRange('bytes=0-0', 0), 'bytes=0-0')
  ignored(t, parseRange('bytes=-1', 0), 'bytes=-1')
  ignored(t, parseRange('bytes=0-', 0), 'bytes=0-')
})

test('range: huge equal first and last positions are not last < first, and are unsatisfiable', t => {
  t.deepEqual(parseRange('bytes=10000000000000000001-10000000000000000001', 1000), unsatisfiable)
  t.deepEqual(parseRange('bytes=010000000000000000001-10000000000000000001', 1000), unsatisfiable)
})

test('range: a one-byte representation', t => {
  t.deepEqual(parseRange('bytes=0-', 1), r([0, 0]))
  t.deepEqual(parseRange('bytes=-5', 1), r([0, 0]))
  t.deepEqual(parseRange('bytes=1-', 1), unsatisfiable)
})

test('range: sizes beyond 4 GiB', t => {
  const size = 2 ** 40
  t.deepEqual(parseRange(`bytes=${2 ** 33}-`, size), r([2 ** 33, size - 1]))
  t.deepEqual(parseRange('bytes=-10', size), r([size - 10, size - 1]))
})

test('range: cap: more than 100 specs → ignored, 100 are allowed', t => {
  const specs = (n: number): string => 'bytes=' + Array.from({ length: n }, () => '0-0').join(',')
  t.deepEqual(parseRange(specs(100), 1000), r([0, 0]))
  ignored(t, parseRange(specs(101), 1000), '101 specs')
})

test('range: cap: empty elements do not count as specs', t => {
  t.deepEqual(parseRange('bytes=' + ','.repeat(500) + '0-0', 1000), r([0, 0]))
})

test('range: cap: more than 32 parts after coalescing → ignored, 32 are allowed', t => {
  const parts = (n: number): string => 'bytes=' + Array.from({ length: n }, (_, k) => `${k * 100}-${k * 100}`).join(',')
  const allowed = parseRange(parts(32), 10_000)
  t.is(allowed.type, 'ranges')
  if (allowed.type === 'ranges') t.is(allowed.ranges.length, 32)
  ignored(t, parseRange(parts(33), 10_000), '33 parts')
})

test('range: cap: many small ranges that coalesce under the part cap are served', t => {
  const header = 'bytes=' + Array.from({ length: 100 }, (_, k) => `${k * 10}-${k * 10 + 4}`).join(',')
  t.deepEqual(parseRange(header, 10_000), r([0, 994]))
})

test('range: coalescing never sends more bytes than the file (Σ lengths > size)', t => {
  const header = 'bytes=' + Array.from({ length: 50 }, () => '0-').join(',')
  t.deepEqual(parseRange(header, 1000), r([0, 999]))
})

test('range: limits are configurable', t => {
  t.deepEqual(parseRange('bytes=0-0,2-2', 1000, { maxSpecs: 1 }).type, 'none')
  t.deepEqual(parseRange('bytes=0-0,500-500', 1000, { maxParts: 1 }).type, 'none')
  t.deepEqual(parseRange('bytes=0-0,2-2', 1000, { coalesceGap: 0 }), r([0, 0], [2, 2]))
  t.deepEqual(parseRange('bytes=0-0,1-1', 1000, { coalesceGap: 0 }), r([0, 1]), 'adjacent ranges always merge')
  t.deepEqual(parseRange('bytes=0-0,500-500', 1000, { coalesceGap: 1000 }), r([0, 500]))
})

test('range: one range is never split or reordered', t => {
  t.deepEqual(parseRange('bytes=0-999', 1000, { maxParts: 0 }), r([0, 999]))
})

// A deliberately naive model (regexes, BigInt) to cross-check the allocation-free parser.
function model (header: string, size: number): RangeResult['type'] | ByteRange[] {
  const m = /^bytes=(.*)$/i.exec(header)
  if (m?.[1] === undefined) return 'none'
  const specs = m[1].split(',').map(s => s.replace(/^[ \t]+|[ \t]+$/g, '')).filter(s => s !== '')
  if (specs.length === 0 || specs.length > 100) return 'none'
  const big = BigInt(size)
  const ranges: ByteRange[] = []
  for (const spec of specs) {
    const s = /^(\d*)-(\d*)$/.exec(spec)
    if (s === null || (s[1] === '' && s[2] === '')) return 'none'
    const [, a = '', b = ''] = s
    if (a === '') {
      const n = BigInt(b)
      if (n > 0n) ranges.push({ start: Number(n >= big ? 0n : big - n), end: size - 1 })
      continue
    }
    if (b !== '' && BigInt(b) < BigInt(a)) return 'none'
    if (BigInt(a) >= big) continue
    ranges.push({ start: Number(a), end: b === '' || BigInt(b) >= big ? size - 1 : Number(b) })
  }
  if (size === 0) return 'none'
  if (ranges.length === 0) return 'unsatisfiable'
  // Merged in ascending order, then put in the order of the first range each part holds.
  const indexed = ranges.map((range, first) => ({ ...range, first })).sort((x, y) => x.start - y.start)
  const out: Array<ByteRange & { first: number }> = []
  for (const range of indexed) {
    const prev = out.at(-1)
    if (prev !== undefined && range.start - prev.end - 1 < 80) {
      prev.end = Math.max(prev.end, range.end)
      prev.first = Math.min(prev.first, range.first)
    } else out.push({ ...range })
  }
  out.sort((x, y) => x.first - y.first)
  return out.length > 32 ? 'none' : out.map(({ start, end }) => ({ start, end }))
}

test('range: agrees with a naive BigInt model on random headers', t => {
  const num = fc.oneof(fc.nat({ max: 1200 }).map(String), fc.constantFrom('', '0', '00', '99999999999999999999', 'x', '+1', ' 1'))
  const spec = fc.oneof(
    fc.tuple(num, num).map(([a, b]) => `${a}-${b}`),
    num.map(n => `-${n}`),
    fc.constantFrom('', ' ', '--1', '1-2-3')
  )
  const header = fc.tuple(fc.constantFrom('bytes=', 'BYTES=', 'items=', 'bytes =', 'bytes= '), fc.array(spec, { maxLength: 8 }), fc.constantFrom(',', ', ', ' ,'))
    .map(([unit, specs, sep]) => unit + specs.join(sep))
  fc.assert(fc.property(header, fc.nat({ max: 1100 }), (h, size) => {
    const result = parseRange(h, size)
    const expected = model(h, size)
    return typeof expected === 'string' ? result.type === expected : result.type === 'ranges' && JSON.stringify(result.ranges) === JSON.stringify(expected)
  }), { numRuns: 5000 })
  t.pass()
})

test('parseContentRange: bytes a-b/size with a ≤ b < size, nothing else', t => {
  t.deepEqual(parseContentRange('bytes 0-0/1'), { start: 0, end: 0, size: 1 })
  t.deepEqual(parseContentRange('bytes 100-65635/268435456'), { start: 100, end: 65635, size: 268435456 })
  for (const value of [undefined, '', 'bytes */100', 'bytes 0-9/*', 'bytes 5-4/10', 'bytes 0-10/10', 'bytes 0-9/10 ', 'items 0-9/10',
    'bytes -1-9/10', 'bytes 0-9/1e3', `bytes 0-9/${'9'.repeat(16)}`]) {
    t.is(parseContentRange(value), undefined, String(value))
  }
})
