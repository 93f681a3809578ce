import test from 'ava'
import { evaluatePreconditions, ifRangeAllows } from '../source/preconditions.ts'
import type { ConditionalHeaders, PreconditionResult, Validators } from '../source/preconditions.ts'

const lm = Date.UTC(2024, 0, 15, 12, 0, 0)
const at = (ms: number): string => new Date(ms).toUTCString()
const LM = at(lm)
const BEFORE = at(lm - 1000)
const AFTER = at(lm + 1000)
const both: Validators = { etag: '"v1"', lastModified: lm }
const weakOnly: Validators = { etag: 'W/"v1"', lastModified: lm }
const etagOnly: Validators = { etag: '"v1"' }
const dateOnly: Validators = { lastModified: lm }
const none: Validators = {}

type Row = [title: string, method: string, headers: ConditionalHeaders, validators: Validators, status: 200 | 304 | 412]

// reference/http-semantics.md §2 (RFC 9110 §13.2.2), one row per step, precedence and deviation.
const rows: Row[] = [
  ['no conditional header → 200', 'GET', {}, both, 200],

  // Step 1: If-Match, strong comparison.
  ['If-Match: the current strong tag → 200', 'GET', { 'if-match': '"v1"' }, both, 200],
  ['If-Match: another tag → 412', 'GET', { 'if-match': '"v2"' }, both, 412],
  ['If-Match: the tag in a list → 200', 'GET', { 'if-match': '"v0", "v1"' }, both, 200],
  ['If-Match: list with empty members → 200', 'GET', { 'if-match': ',"v0",, "v1",' }, both, 200],
  ['If-Match: W/ of the current tag fails the strong comparison (not weak as in send) → 412', 'GET', { 'if-match': 'W/"v1"' }, both, 412],
  ['If-Match: against a weak current tag → 412', 'GET', { 'if-match': '"v1"' }, weakOnly, 412],
  ['If-Match: never a substring match → 412', 'GET', { 'if-match': '"v10"' }, both, 412],
  ['If-Match: the current tag inside longer list members is no match → 412', 'GET', { 'if-match': '"xv1x", "v1 "' }, both, 412],
  ['If-Match: * with an ETag → 200', 'GET', { 'if-match': '*' }, both, 200],
  ['If-Match: * without an ETag is true, the representation exists (not 412 as in send) → 200', 'GET', { 'if-match': '*' }, none, 200],
  ['If-Match: a tag when the representation has no ETag → 412', 'GET', { 'if-match': '"v1"' }, dateOnly, 412],
  ['If-Match: only malformed members → ignored → 200', 'GET', { 'if-match': 'v2, junk' }, both, 200],
  ['If-Match: malformed members skipped, a valid non-matching one remains → 412', 'GET', { 'if-match': 'v1, "v2"' }, both, 412],
  ['If-Match: empty → ignored → 200', 'GET', { 'if-match': '' }, both, 200],
  ['If-Match: applies to PUT too → 412', 'PUT', { 'if-match': '"v2"' }, both, 412],
  ['If-Match: applies to HEAD → 412', 'HEAD', { 'if-match': '"v2"' }, both, 412],
  // RFC 9110 §13.2.1: methods that select no representation ignore every conditional.
  ['OPTIONS: a failing If-Match is ignored → 200', 'OPTIONS', { 'if-match': '"v2"' }, both, 200],
  ['OPTIONS: a matching If-None-Match is ignored → 200', 'OPTIONS', { 'if-none-match': '"v1"' }, both, 200],
  ['TRACE: If-None-Match * is ignored → 200', 'TRACE', { 'if-none-match': '*' }, both, 200],
  ['TRACE: a failing If-Unmodified-Since is ignored → 200', 'TRACE', { 'if-unmodified-since': BEFORE }, both, 200],
  ['CONNECT: a failing If-Match is ignored → 200', 'CONNECT', { 'if-match': '"v2"' }, both, 200],

  // Step 2: If-Unmodified-Since, only without If-Match.
  ['If-Unmodified-Since: equal to Last-Modified → 200', 'GET', { 'if-unmodified-since': LM }, both, 200],
  ['If-Unmodified-Since: later than Last-Modified → 200', 'GET', { 'if-unmodified-since': AFTER }, both, 200],
  ['If-Unmodified-Since: earlier than Last-Modified → 412', 'GET', { 'if-unmodified-since': BEFORE }, both, 412],
  ['If-Unmodified-Since: ignored when If-Match is present (and passes) → 200', 'GET', { 'if-match': '"v1"', 'if-unmodified-since': BEFORE }, both, 200],
  ['If-Unmodified-Since: evaluated when If-Match is ignored as malformed → 412', 'GET', { 'if-match': 'junk', 'if-unmodified-since': BEFORE }, both, 412],
  ['If-Unmodified-Since: ignored without Last-Modified (not 412 as in send) → 200', 'GET', { 'if-unmodified-since': BEFORE }, etagOnly, 200],
  ['If-Unmodified-Since: an invalid date is ignored → 200', 'GET', { 'if-unmodified-since': 'yesterday' }, both, 200],
  ['If-Unmodified-Since: a list of dates is ignored → 200', 'GET', { 'if-unmodified-since': `${BEFORE}, ${BEFORE}` }, both, 200],
  ['If-Unmodified-Since: RFC 850 date → 412', 'GET', { 'if-unmodified-since': 'Monday, 15-Jan-24 11:59:59 GMT' }, both, 412],
  ['If-Unmodified-Since: asctime date → 412', 'GET', { 'if-unmodified-since': 'Mon Jan 15 11:59:59 2024' }, both, 412],
  ['If-Unmodified-Since: asctime date equal → 200', 'GET', { 'if-unmodified-since': 'Mon Jan 15 12:00:00 2024' }, both, 200],

  // Step 3: If-None-Match, weak comparison.
  ['If-None-Match: the current tag → 304', 'GET', { 'if-none-match': '"v1"' }, both, 304],
  ['If-None-Match: HEAD → 304', 'HEAD', { 'if-none-match': '"v1"' }, both, 304],
  ['If-None-Match: W/ of a strong current tag matches weakly → 304', 'GET', { 'if-none-match': 'W/"v1"' }, both, 304],
  ['If-None-Match: a strong tag against a weak current tag → 304', 'GET', { 'if-none-match': '"v1"' }, weakOnly, 304],
  ['If-None-Match: in a list with OWS and empty members → 304', 'GET', { 'if-none-match': '"a",, W/"v1" ,' }, both, 304],
  ['If-None-Match: another tag → 200', 'GET', { 'if-none-match': '"v2"' }, both, 200],
  ['If-None-Match: never a substring match → 200', 'GET', { 'if-none-match': '"v1x"' }, both, 200],
  ['If-None-Match: * → 304', 'GET', { 'if-none-match': '*' }, both, 304],
  ['If-None-Match: * without an ETag, the representation exists → 304', 'GET', { 'if-none-match': '*' }, none, 304],
  ['If-None-Match: a tag without a current ETag → 200', 'GET', { 'if-none-match': '"v1"' }, dateOnly, 200],
  ['If-None-Match: match on a non-GET method → 412 (not 304 as in send)', 'POST', { 'if-none-match': '"v1"' }, both, 412],
  ['If-None-Match: * on PUT → 412', 'PUT', { 'if-none-match': '*' }, both, 412],
  ['If-None-Match: only malformed members → ignored → 200', 'GET', { 'if-none-match': 'v1' }, both, 200],
  ['If-None-Match: equal to a malformed current ETag is no match (the fast path checks the tag) → 200', 'GET', { 'if-none-match': 'v1' }, { etag: 'v1' }, 200],
  ['If-None-Match: the exact current tag with If-Unmodified-Since failing → 412', 'GET', { 'if-none-match': '"v1"', 'if-unmodified-since': BEFORE }, both, 412],
  ['If-None-Match: the exact current tag on DELETE → 412', 'DELETE', { 'if-none-match': '"v1"' }, both, 412],

  // Step 4: If-Modified-Since, only without If-None-Match, GET/HEAD only.
  ['If-Modified-Since: equal to Last-Modified → 304', 'GET', { 'if-modified-since': LM }, both, 304],
  ['If-Modified-Since: later than Last-Modified → 304', 'GET', { 'if-modified-since': AFTER }, both, 304],
  ['If-Modified-Since: earlier than Last-Modified → 200', 'GET', { 'if-modified-since': BEFORE }, both, 200],
  ['If-Modified-Since: not an exact string match only (not as in Rack::Files) → 304', 'GET', { 'if-modified-since': 'Monday, 15-Jan-24 12:00:01 GMT' }, both, 304],
  ['If-Modified-Since: HEAD → 304', 'HEAD', { 'if-modified-since': LM }, both, 304],
  ['If-Modified-Since: ignored on POST → 200', 'POST', { 'if-modified-since': LM }, both, 200],
  ['If-Modified-Since: ignored without Last-Modified → 200', 'GET', { 'if-modified-since': AFTER }, etagOnly, 200],
  ['If-Modified-Since: an invalid date is ignored → 200', 'GET', { 'if-modified-since': 'garbage' }, both, 200],
  ['If-Modified-Since: a list of dates is ignored → 200', 'GET', { 'if-modified-since': `${AFTER}, ${AFTER}` }, both, 200],
  ['If-Modified-Since: Last-Modified compared in whole seconds → 304', 'GET', { 'if-modified-since': LM }, { lastModified: lm + 999 }, 304],
  ['If-Modified-Since: ignored when If-None-Match is present and does not match (not both as in ctx.fresh) → 200', 'GET', { 'if-none-match': '"v2"', 'if-modified-since': AFTER }, both, 200],
  ['If-Modified-Since: If-None-Match decides even when the date is stale → 304', 'GET', { 'if-none-match': '"v1"', 'if-modified-since': BEFORE }, both, 304],
  ['If-Modified-Since: evaluated when If-None-Match is ignored as malformed → 304', 'GET', { 'if-none-match': 'junk', 'if-modified-since': AFTER }, both, 304],

  // Precedence: 412 beats 304.
  ['precedence: If-Match fails and If-None-Match matches → 412', 'GET', { 'if-match': '"v2"', 'if-none-match': '"v1"' }, both, 412],
  ['precedence: If-Unmodified-Since fails and If-Modified-Since would 304 → 412', 'GET', { 'if-unmodified-since': BEFORE, 'if-modified-since': AFTER }, both, 412],
  ['precedence: If-Match passes, then If-None-Match matches → 304', 'GET', { 'if-match': '"v1"', 'if-none-match': '"v1"' }, both, 304],
  ['precedence: If-Unmodified-Since passes, then If-Modified-Since → 304', 'GET', { 'if-unmodified-since': AFTER, 'if-modified-since': AFTER }, both, 304],
  ['precedence: all four pass → 200', 'GET', { 'if-match': '*', 'if-unmodified-since': AFTER, 'if-none-match': '"v2"', 'if-modified-since': BEFORE }, both, 200]
]

for (const [title, method, headers, validators, status] of rows) {
  test(`preconditions: ${method} ${title}`, t => {
    const result: PreconditionResult = evaluatePreconditions(method, headers, validators)
    t.is(result.status, status)
    if (result.status !== 200) t.true(result.reason.length > 0, 'a reason for the debug log')
  })
}

test('preconditions: accepts Node IncomingHttpHeaders as they come', t => {
  const headers: import('node:http').IncomingHttpHeaders = { 'if-none-match': '"v1"', host: 'x' }
  t.deepEqual(evaluatePreconditions('GET', headers, both).status, 304)
})

// If-Range (§13.1.5), reference §4.
const now = lm + 60_000
const ifRangeRows: Array<[title: string, value: string, validators: Validators, now: number, allowed: boolean]> = [
  ['the current strong tag → range', '"v1"', both, now, true],
  ['another tag → full', '"v2"', both, now, false],
  ['a weak tag from the client → full (not accepted as in send)', 'W/"v1"', both, now, false],
  ['a strong tag against a weak current tag → full', '"v1"', weakOnly, now, false],
  ['a weak tag against a weak current tag → full', 'W/"v1"', weakOnly, now, false],
  ['a substring of the tag → full', '"v"', both, now, false],
  ['a tag containing the current tag → full', '"v1", "v2"', both, now, false],
  ['a tag when there is no current ETag → full', '"v1"', dateOnly, now, false],
  ['the exact Last-Modified date → range', LM, both, now, true],
  ['the exact Last-Modified date, RFC 850 → range', 'Monday, 15-Jan-24 12:00:00 GMT', dateOnly, now, true],
  ['the exact Last-Modified date, asctime → range', 'Mon Jan 15 12:00:00 2024', dateOnly, now, true],
  ['a date starting with W (Wednesday) is read as a date → range', at(Date.UTC(2024, 0, 17)), { lastModified: Date.UTC(2024, 0, 17) }, now + 2 * 86_400_000, true],
  ['a later date → full (not Last-Modified ≤ date as in send)', AFTER, both, now, false],
  ['an earlier date → full', BEFORE, both, now, false],
  ['a date without Last-Modified → full (not honoured as in @fastify/send)', LM, etagOnly, now, false],
  ['Last-Modified compared in whole seconds → range', LM, { lastModified: lm + 500 }, now, true],
  ['Last-Modified within the last second is weak → full', LM, dateOnly, lm + 999, false],
  ['Last-Modified exactly one second old is strong → range', LM, dateOnly, lm + 1000, true],
  ['Last-Modified in the future → full', LM, dateOnly, lm - 5000, false],
  ['garbage → full', 'yesterday', both, now, false],
  ['empty → full', '', both, now, false],
  ['a list of dates → full', `${LM}, ${LM}`, both, now, false],
  ['star → full', '*', both, now, false]
]

for (const [title, value, validators, when, allowed] of ifRangeRows) {
  test(`if-range: ${title}`, t => {
    t.is(ifRangeAllows(value, validators, when), allowed)
  })
}
