import test from 'ava'
import fc from 'fast-check'
import { formatHttpDate, parseHttpDate } from '../source/http-date.ts'

const nov6 = Date.UTC(1994, 10, 6, 8, 49, 37)

test('http-date: IMF-fixdate parses to epoch ms', t => {
  t.is(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), nov6)
  t.is(parseHttpDate('Thu, 01 Jan 1970 00:00:00 GMT'), 0)
  t.is(parseHttpDate('Fri, 31 Dec 9999 23:59:59 GMT'), Date.UTC(9999, 11, 31, 23, 59, 59))
  t.is(parseHttpDate('Tue, 29 Feb 2000 12:00:00 GMT'), Date.UTC(2000, 1, 29, 12))
})

test('http-date: obsolete RFC 850 form parses', t => {
  t.is(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2026, 0, 1)), nov6)
  t.is(parseHttpDate('Wednesday, 09-Sep-26 10:00:00 GMT', Date.UTC(2026, 0, 1)), Date.UTC(2026, 8, 9, 10))
})

test('http-date: RFC 850 two-digit years more than 50 years ahead belong to the previous century', t => {
  const now = Date.UTC(2026, 5, 1)
  t.is(parseHttpDate('Friday, 01-Jan-76 00:00:00 GMT', now), Date.UTC(2076, 0, 1))
  t.is(parseHttpDate('Wednesday, 01-Jan-77 00:00:00 GMT', now), Date.UTC(1977, 0, 1))
  t.is(parseHttpDate('Saturday, 01-Jan-00 00:00:00 GMT', now), Date.UTC(2000, 0, 1))
  t.is(parseHttpDate('Friday, 01-Jan-99 00:00:00 GMT', now), Date.UTC(1999, 0, 1))
})

test('http-date: obsolete asctime form parses, with a space-padded or two-digit day', t => {
  t.is(parseHttpDate('Sun Nov  6 08:49:37 1994'), nov6)
  t.is(parseHttpDate('Sun Nov 06 08:49:37 1994'), nov6)
  t.is(parseHttpDate('Wed Nov 16 08:49:37 1994'), Date.UTC(1994, 10, 16, 8, 49, 37))
})

test('http-date: four-digit years below 100 are not shifted to the 1900s', t => {
  const expected = new Date(0)
  expected.setUTCFullYear(50, 0, 1)
  t.is(parseHttpDate('Sat, 01 Jan 0050 00:00:00 GMT'), expected.getTime())
})

const invalid: Array<[string, string]> = [
  ['empty', ''],
  ['garbage', 'yesterday'],
  ['a number', '784111777'],
  ['a list of two dates', 'Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT'],
  ['trailing text', 'Sun, 06 Nov 1994 08:49:37 GMT x'],
  ['leading space', ' Sun, 06 Nov 1994 08:49:37 GMT'],
  ['a time zone other than GMT', 'Sun, 06 Nov 1994 08:49:37 UTC'],
  ['a numeric offset', 'Sun, 06 Nov 1994 08:49:37 +0000'],
  ['lower-case month', 'Sun, 06 nov 1994 08:49:37 GMT'],
  ['unknown day name', 'Xyz, 06 Nov 1994 08:49:37 GMT'],
  ['unknown month', 'Sun, 06 Foo 1994 08:49:37 GMT'],
  ['one-digit day in IMF-fixdate', 'Sun, 6 Nov 1994 08:49:37 GMT'],
  ['day 00', 'Sun, 00 Nov 1994 08:49:37 GMT'],
  ['31 April', 'Thu, 31 Apr 2025 08:49:37 GMT'],
  ['29 February in a common year', 'Thu, 29 Feb 2025 08:49:37 GMT'],
  ['29 February 1900 (not a leap year)', 'Thu, 29 Feb 1900 08:49:37 GMT'],
  ['hour 24', 'Sun, 06 Nov 1994 24:00:00 GMT'],
  ['minute 60', 'Sun, 06 Nov 1994 08:60:00 GMT'],
  ['second 60', 'Sun, 06 Nov 1994 08:49:60 GMT'],
  ['a sign in a number', 'Sun, +6 Nov 1994 08:49:37 GMT'],
  ['missing seconds', 'Sun, 06 Nov 1994 08:49 GMT'],
  ['ISO 8601', '1994-11-06T08:49:37Z'],
  ['RFC 850 with a four-digit year', 'Sunday, 06-Nov-1994 08:49:37 GMT'],
  ['RFC 850 with a short day name', 'Sun, 06-Nov-94 08:49:37 GMT'],
  ['RFC 850 with a bad day name', 'Someday, 06-Nov-94 08:49:37 GMT'],
  ['asctime with a two-digit year', 'Sun Nov  6 08:49:37 94'],
  ['asctime with a bad padding', 'Sun Nov 6  08:49:37 1994'],
  ['non-ASCII digits', 'Sun, ０6 Nov 1994 08:49:37 GMT']
]

for (const [title, value] of invalid) {
  test(`http-date: invalid (${title}) → undefined`, t => {
    t.is(parseHttpDate(value), undefined)
  })
}

test('http-date: formatHttpDate writes IMF-fixdate, truncated to the second', t => {
  t.is(formatHttpDate(nov6), 'Sun, 06 Nov 1994 08:49:37 GMT')
  t.is(formatHttpDate(nov6 + 999), 'Sun, 06 Nov 1994 08:49:37 GMT')
  t.is(formatHttpDate(new Date(nov6)), 'Sun, 06 Nov 1994 08:49:37 GMT')
  t.is(formatHttpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT')
  t.is(formatHttpDate(Date.UTC(2026, 1, 3, 4, 5, 6)), 'Tue, 03 Feb 2026 04:05:06 GMT')
})

test('http-date: formatHttpDate agrees with toUTCString and parseHttpDate round-trips it', t => {
  fc.assert(fc.property(fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31) }), ms => {
    const text = formatHttpDate(ms)
    return text === new Date(ms).toUTCString() && parseHttpDate(text) === Math.floor(ms / 1000) * 1000
  }), { numRuns: 2000 })
  t.pass()
})

test('http-date: formatHttpDate rejects times no HTTP date can express', t => {
  t.throws(() => formatHttpDate(Number.NaN), { instanceOf: RangeError })
  t.throws(() => formatHttpDate(new Date('nope')), { instanceOf: RangeError })
  t.throws(() => formatHttpDate(8.64e15 + 1000), { instanceOf: RangeError })
  t.throws(() => formatHttpDate(Date.UTC(10000, 0, 1)), { instanceOf: RangeError })
  t.throws(() => formatHttpDate(Date.UTC(-1, 0, 1)), { instanceOf: RangeError })
})
