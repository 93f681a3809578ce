/**
 * HTTP dates (RFC 9110 §5.6.7). Parsing is strict and allocation-free: anything that is not exactly
 * one IMF-fixdate, RFC 850 or asctime date (a list of dates, trailing text, a 31st of April, a time
 * of 24:00) is `undefined`, which callers treat as "header ignored", never as "condition false".
 */

const dayNames = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const longDayNames = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const monthNames = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const monthDays = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

const SP = 0x20
const COMMA = 0x2c
const COLON = 0x3a
const DASH = 0x2d

/**
 * Epoch milliseconds of an HTTP date, or `undefined` when `value` is not one.
 * `now` (epoch ms) only matters for RFC 850's two-digit years: a year that would be more than 50
 * years in the future is taken from the previous century (§5.6.7).
 */
export function parseHttpDate (value: string, now?: number): number | undefined {
  // Sun, 06 Nov 1994 08:49:37 GMT
  if (value.length === 29 && value.charCodeAt(3) === COMMA) return parseImfFixdate(value)
  // Sun Nov  6 08:49:37 1994
  if (value.length === 24 && value.charCodeAt(3) === SP) return parseAsctime(value)
  // Sunday, 06-Nov-94 08:49:37 GMT
  const comma = value.indexOf(',')
  if (comma >= 6 && comma <= 9 && value.length === comma + 24) return parseRfc850(value, comma, now ?? Date.now())
  return undefined
}

function parseImfFixdate (v: string): number | undefined {
  if (dayNames.indexOf(v.slice(0, 3)) === -1) return undefined
  if (v.charCodeAt(4) !== SP || v.charCodeAt(7) !== SP || v.charCodeAt(11) !== SP || v.charCodeAt(16) !== SP) return undefined
  if (!v.endsWith(' GMT')) return undefined
  return build(digits(v, 12, 4), monthOf(v, 8), digits(v, 5, 2), v, 17)
}

function parseRfc850 (v: string, comma: number, now: number): number | undefined {
  if (longDayNames.indexOf(v.slice(0, comma)) === -1) return undefined
  const p = comma + 1 // " 06-Nov-94 08:49:37 GMT"
  if (v.charCodeAt(p) !== SP || v.charCodeAt(p + 3) !== DASH || v.charCodeAt(p + 7) !== DASH || v.charCodeAt(p + 10) !== SP) return undefined
  if (!v.endsWith(' GMT')) return undefined
  const yy = digits(v, p + 8, 2)
  if (yy < 0) return undefined
  const nowYear = new Date(now).getUTCFullYear()
  let year = nowYear - (nowYear % 100) + yy
  if (year > nowYear + 50) year -= 100
  return build(year, monthOf(v, p + 4), digits(v, p + 1, 2), v, p + 11)
}

function parseAsctime (v: string): number | undefined {
  if (dayNames.indexOf(v.slice(0, 3)) === -1) return undefined
  if (v.charCodeAt(7) !== SP || v.charCodeAt(10) !== SP || v.charCodeAt(19) !== SP) return undefined
  // day = 2DIGIT / ( SP DIGIT )
  const day = v.charCodeAt(8) === SP ? digits(v, 9, 1) : digits(v, 8, 2)
  return build(digits(v, 20, 4), monthOf(v, 4), day, v, 11)
}

/** Validates the fields and the `hh:mm:ss` at `t`, then converts; -1 fields mean "not digits". */
function build (year: number, month: number, day: number, v: string, t: number): number | undefined {
  if (year < 0 || month < 0 || day < 1 || day > (monthDays[month] ?? 0)) return undefined
  if (month === 1 && day === 29 && !isLeapYear(year)) return undefined
  if (v.charCodeAt(t + 2) !== COLON || v.charCodeAt(t + 5) !== COLON) return undefined
  const hour = digits(v, t, 2)
  const minute = digits(v, t + 3, 2)
  const second = digits(v, t + 6, 2)
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return undefined
  // Date.UTC maps years 0–99 to 1900–1999; a four-digit year 0050 means 50.
  const date = new Date(0)
  date.setUTCFullYear(year, month, day)
  date.setUTCHours(hour, minute, second, 0)
  return date.getTime()
}

function isLeapYear (year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
}

/** The non-negative integer written with exactly `count` ASCII digits at `start`, else -1. */
function digits (v: string, start: number, count: number): number {
  let n = 0
  for (let i = start; i < start + count; i++) {
    const d = v.charCodeAt(i) - 0x30
    if (!(d >= 0 && d <= 9)) return -1
    n = n * 10 + d
  }
  return n
}

/** Month index 0–11 of the case-sensitive three-letter name at `start`, else -1. */
function monthOf (v: string, start: number): number {
  return monthNames.indexOf(v.slice(start, start + 3))
}

let lastSecond = Number.NaN
let lastFormatted = ''

/**
 * `time` (epoch ms or a Date) as an IMF-fixdate, truncated to the second.
 * Throws a RangeError for an invalid time or a year outside 0–9999 (no HTTP date can express it).
 */
export function formatHttpDate (time: number | Date): string {
  const ms = typeof time === 'number' ? time : time.getTime()
  const second = Math.floor(ms / 1000)
  // Responses in the same second share Last-Modified values and Date-like headers: cache one.
  if (second === lastSecond) return lastFormatted
  const date = new Date(second * 1000)
  const year = date.getUTCFullYear()
  if (!(year >= 0 && year <= 9999)) { // NaN for an invalid or out-of-range time
    throw new RangeError(`formatHttpDate(): ${String(time)} is not a time an HTTP date can express`)
  }
  lastFormatted = `${dayNames[date.getUTCDay()]}, ${pad2(date.getUTCDate())} ${monthNames[date.getUTCMonth()]} ${String(year).padStart(4, '0')} ` +
    `${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())} GMT`
  lastSecond = second
  return lastFormatted
}

function pad2 (n: number): string {
  return n < 10 ? `0${n}` : String(n)
}
