import { AssertionError } from 'node:assert'
import type { Stream } from 'node:stream'

/**
 * `koa-downloads/testing`: assertions for download responses, for any test runner (they throw
 * node:assert's `AssertionError`). Each takes a supertest response or a fetch `Response` and returns
 * a Promise: always `await` it.
 *
 * @example
 * // ava
 * import test from 'ava'
 * import request from 'supertest'
 * import { assertXAccelRedirect } from 'koa-downloads/testing'
 * test('report is offloaded to nginx', async (t) => {
 *   const res = await request(app.callback()).get('/report')
 *   await assertXAccelRedirect(res, { redirect: '/protected/Q3 report.pdf', filename: 'Q3 report.pdf' })
 *   t.pass()
 * })
 *
 * // node:test, with fetch against a listening server
 * import { test } from 'node:test'
 * import { assertDownload } from 'koa-downloads/testing'
 * test('report is streamed', async () => {
 *   await assertDownload(await fetch(`${base}/report`), { contentType: 'application/pdf', body: expectedBytes })
 * })
 */

/**
 * A supertest/superagent parser that keeps the body as exact bytes whatever its type: superagent
 * decodes `text/*` bodies as UTF-8 (lossy for other bytes), so compare such bodies after
 * `request(app.callback()).get(path).buffer(true).parse(bufferParser)`.
 */
export function bufferParser (res: Stream, callback: (error: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = []
  res.on('data', (chunk: Buffer) => chunks.push(chunk))
  res.on('end', () => { callback(null, Buffer.concat(chunks)) })
  res.on('error', (error: Error) => { callback(error, Buffer.concat(chunks)) })
}

/** Checks shared by every assertion. A header expectation of `null` means "must be absent". */
export interface ResponseExpectation {
  /** @default 200 */
  status?: number | undefined
  /** The Content-Type, exactly (a string) or matched (a RegExp). */
  contentType?: string | RegExp | undefined
  /** The download name the browser would use: `filename*` decoded when present, else `filename`; `null` = no name. */
  filename?: string | null | undefined
  /** `true` → `attachment`, `false` → `inline`. */
  attachment?: boolean | undefined
  cacheControl?: string | null | undefined
  /** Any other headers: exact string, RegExp, or `null` for absent. Names are case-insensitive. */
  headers?: Readonly<Record<string, string | RegExp | null>> | undefined
}

export interface DownloadExpectation extends ResponseExpectation {
  /** The exact bytes of the body (a string is compared as UTF-8). */
  body?: Uint8Array | string | undefined
}

export interface XAccelRedirectExpectation extends ResponseExpectation {
  /**
   * The redirect, decoded as nginx decodes it (`'/protected/a b.txt'` matches `/protected/a%20b.txt`;
   * a query after `?` is compared verbatim), or a RegExp tested against the raw header value.
   */
  redirect?: string | RegExp | undefined
  /** `'percent'` (nginx) or `'raw'` (Caddy: the UTF-8 bytes as sent). @default 'percent' */
  encoding?: 'percent' | 'raw' | undefined
  /** The header carrying the redirect (Caddy rules may name another). @default 'X-Accel-Redirect' */
  header?: string | undefined
  /** `X-Accel-Buffering` yes/no; `null` = absent. */
  buffering?: boolean | null | undefined
  /** `X-Accel-Limit-Rate` in bytes/s; `null` = absent. */
  limitRate?: number | null | undefined
  /** `X-Accel-Expires`: seconds, a Date (`@epoch`), `false` (`0`); `null` = absent. */
  expires?: number | Date | false | null | undefined
  /** `X-Accel-Charset`; `null` = absent. */
  charset?: string | null | undefined
}

export interface XSendfileExpectation extends ResponseExpectation {
  /** The absolute path, decoded (`'/srv/a b.txt'`), or a RegExp tested against the raw header value. */
  path?: string | RegExp | undefined
  /** `'raw'` for Apache mod_xsendfile (UTF-8 bytes), `'percent'` for lighttpd. @default 'raw' */
  encoding?: 'raw' | 'percent' | undefined
}

export interface InternalRedirectExpectation extends ResponseExpectation {
  /** The `Location` path, percent-decoded, or a RegExp tested against the raw header value. */
  location?: string | RegExp | undefined
}

/** What both response kinds are reduced to. */
interface Normalized {
  status: number
  header: (name: string) => string | undefined
  body: () => Promise<Buffer | undefined>
}

type AnyResponse = Response | { status: number, headers: Record<string, unknown>, body?: unknown, text?: unknown }

/**
 * Asserts a download streamed by the app (not offloaded: no X-Accel-Redirect / X-Sendfile):
 * status, presentation headers and the exact body. supertest decodes `text/*` bodies as UTF-8;
 * for exact bytes of such a body use `.buffer(true).parse(bufferParser)`.
 * @example
 * // ava
 * test('streams the report', async (t) => {
 *   await assertDownload(await request(app.callback()).get('/report'), { filename: 'report.pdf', body: pdfBytes })
 *   t.pass()
 * })
 * // node:test
 * test('streams the report', async () => {
 *   await assertDownload(await fetch(`${base}/report`), { contentType: 'application/pdf', attachment: true, body: pdfBytes })
 * })
 */
export async function assertDownload (response: AnyResponse, expected: DownloadExpectation = {}): Promise<void> {
  const res = normalize(response, 'assertDownload')
  checkCommon('assertDownload', res, expected)
  for (const name of ['X-Accel-Redirect', 'X-Sendfile']) {
    const value = res.header(name)
    if (value !== undefined) fail('assertDownload', `expected a streamed download, but ${name} is ${JSON.stringify(value)} (offloaded)`, value, undefined)
  }
  if (expected.body !== undefined) {
    const body = await res.body()
    const want = typeof expected.body === 'string' ? Buffer.from(expected.body, 'utf8') : Buffer.from(expected.body)
    if (body === undefined) fail('assertDownload', 'the response body is not available (supertest: add .buffer(true); fetch: do not read the body before asserting)', undefined, want)
    if (!body.equals(want)) {
      fail('assertDownload', `body differs: ${body.length} bytes received, ${want.length} expected${firstDifference(body, want)}`, body, want)
    }
  }
}

/**
 * Asserts an nginx (or Caddy) offload: status, the redirect, the X-Accel-* controls, presentation
 * headers and an empty body (Content-Length 0).
 * @example
 * // ava
 * test('offloads to nginx', async (t) => {
 *   const res = await request(app.callback()).get('/files/a%20b.pdf')
 *   await assertXAccelRedirect(res, { redirect: '/protected/a b.pdf', filename: 'a b.pdf', limitRate: 0 })
 *   t.pass()
 * })
 * // node:test; a Caddy rule with its raw value
 * test('offloads to caddy', async () => {
 *   await assertXAccelRedirect(await fetch(`${base}/files/a.pdf`), { redirect: '/protected/a.pdf', encoding: 'raw' })
 * })
 */
export async function assertXAccelRedirect (response: AnyResponse, expected: XAccelRedirectExpectation = {}): Promise<void> {
  const fn = 'assertXAccelRedirect'
  const res = normalize(response, fn)
  checkCommon(fn, res, expected)
  const header = expected.header ?? 'X-Accel-Redirect'
  checkValue(fn, header, res.header(header), expected.redirect, expected.encoding ?? 'percent')
  const controls: Array<[string, string | null | undefined]> = [
    ['X-Accel-Buffering', expected.buffering === undefined || expected.buffering === null ? expected.buffering : expected.buffering ? 'yes' : 'no'],
    ['X-Accel-Limit-Rate', expected.limitRate === undefined || expected.limitRate === null ? expected.limitRate : String(expected.limitRate)],
    ['X-Accel-Expires', expected.expires === undefined || expected.expires === null ? expected.expires
      : expected.expires === false ? '0' : expected.expires instanceof Date ? `@${Math.floor(expected.expires.getTime() / 1000)}` : String(expected.expires)],
    ['X-Accel-Charset', expected.charset]
  ]
  for (const [name, want] of controls) if (want !== undefined) checkHeader(fn, res, name, want)
  await checkEmpty(fn, res)
}

/**
 * Asserts an Apache (`encoding: 'raw'`, the default) or lighttpd (`encoding: 'percent'`) offload:
 * status, the X-Sendfile path (decoded), presentation headers and an empty body.
 * @example
 * // ava
 * test('offloads to Apache', async (t) => {
 *   await assertXSendfile(await request(app.callback()).get('/files/ü.txt'), { path: '/srv/files/ü.txt', headers: { ETag: /^"/ } })
 *   t.pass()
 * })
 * // node:test
 * test('offloads to lighttpd', async () => {
 *   await assertXSendfile(await fetch(`${base}/files/ü.txt`), { path: '/srv/files/ü.txt', encoding: 'percent' })
 * })
 */
export async function assertXSendfile (response: AnyResponse, expected: XSendfileExpectation = {}): Promise<void> {
  const res = normalize(response, 'assertXSendfile')
  checkCommon('assertXSendfile', res, expected)
  checkValue('assertXSendfile', 'X-Sendfile', res.header('X-Sendfile'), expected.path, expected.encoding ?? 'raw')
  await checkEmpty('assertXSendfile', res)
}

/**
 * Asserts a CGI-style internal redirect: status 200, the `Location` path (decoded) and an empty body.
 * With supertest, call `.redirects(0)`; fetch does not follow a 200.
 * @example
 * // ava
 * test('redirects internally', async (t) => {
 *   await assertInternalRedirect(await request(app.callback()).get('/files/a b.txt').redirects(0), { location: '/private/a b.txt' })
 *   t.pass()
 * })
 * // node:test
 * test('redirects internally', async () => {
 *   await assertInternalRedirect(await fetch(`${base}/files/a b.txt`), { location: '/private/a b.txt' })
 * })
 */
export async function assertInternalRedirect (response: AnyResponse, expected: InternalRedirectExpectation = {}): Promise<void> {
  const res = normalize(response, 'assertInternalRedirect')
  checkCommon('assertInternalRedirect', res, expected)
  checkValue('assertInternalRedirect', 'Location', res.header('Location'), expected.location, 'percent')
  await checkEmpty('assertInternalRedirect', res)
}

function normalize (response: AnyResponse, fn: string): Normalized {
  if (typeof Response === 'function' && response instanceof Response) {
    return {
      status: response.status,
      header: (name) => response.headers.get(name) ?? undefined,
      body: async () => response.bodyUsed ? undefined : Buffer.from(await response.arrayBuffer())
    }
  }
  const r = response as { status?: unknown, headers?: unknown, body?: unknown, text?: unknown } | null
  if (r === null || typeof r !== 'object' || typeof r.status !== 'number' || r.headers === null || typeof r.headers !== 'object') {
    throw new TypeError(`${fn}(): response must be a supertest response or a fetch Response`)
  }
  const headers = r.headers as Record<string, unknown>
  return {
    status: r.status,
    header: (name) => {
      const value = headers[name.toLowerCase()]
      return Array.isArray(value) ? value.join(', ') : typeof value === 'string' ? value : undefined
    },
    body: async () => Buffer.isBuffer(r.body) ? r.body : typeof r.text === 'string' ? Buffer.from(r.text, 'utf8') : undefined
  }
}

function checkCommon (fn: string, res: Normalized, expected: ResponseExpectation): void {
  const status = expected.status ?? 200
  if (res.status !== status) fail(fn, `status is ${res.status}, expected ${status}`, res.status, status)
  if (expected.contentType !== undefined) checkHeader(fn, res, 'Content-Type', expected.contentType)
  if (expected.cacheControl !== undefined) checkHeader(fn, res, 'Cache-Control', expected.cacheControl)
  for (const [name, want] of Object.entries(expected.headers ?? {})) checkHeader(fn, res, name, want)
  if (expected.filename === undefined && expected.attachment === undefined) return
  const disposition = res.header('Content-Disposition')
  if (disposition === undefined) fail(fn, 'Content-Disposition is missing', undefined, expected.filename ?? expected.attachment)
  const parsed = parseDisposition(disposition)
  if (expected.attachment !== undefined && parsed.type !== (expected.attachment ? 'attachment' : 'inline')) {
    fail(fn, `Content-Disposition is ${JSON.stringify(disposition)}, expected ${expected.attachment ? 'attachment' : 'inline'}`, parsed.type, expected.attachment ? 'attachment' : 'inline')
  }
  if (expected.filename !== undefined && parsed.filename !== (expected.filename ?? undefined)) {
    fail(fn, `Content-Disposition is ${JSON.stringify(disposition)}: filename ${JSON.stringify(parsed.filename)}, expected ${JSON.stringify(expected.filename)}`, parsed.filename, expected.filename)
  }
}

function checkHeader (fn: string, res: Normalized, name: string, want: string | RegExp | null): void {
  const value = res.header(name)
  const ok = want === null ? value === undefined : value !== undefined && (typeof want === 'string' ? value === want : want.test(value))
  if (!ok) {
    const shown = want === null ? 'absent' : typeof want === 'string' ? JSON.stringify(want) : String(want)
    fail(fn, `${name} is ${value === undefined ? 'absent' : JSON.stringify(value)}, expected ${shown}`, value, want)
  }
}

function checkValue (fn: string, name: string, value: string | undefined, want: string | RegExp | undefined, encoding: 'percent' | 'raw'): void {
  if (value === undefined) fail(fn, `${name} is absent: the response was not offloaded`, undefined, want ?? 'present')
  if (want === undefined) return
  if (want instanceof RegExp) {
    if (!want.test(value)) fail(fn, `${name} is ${JSON.stringify(value)}, expected to match ${String(want)}`, value, want)
    return
  }
  const decoded = decodeValue(value, encoding)
  if (decoded !== want) {
    fail(fn, `${name} is ${JSON.stringify(value)} (decoded ${JSON.stringify(decoded)}), expected ${JSON.stringify(want)}`, decoded, want)
  }
}

/** Percent-decodes the path (not the query); raw values are UTF-8 bytes carried as latin1. */
function decodeValue (value: string, encoding: 'percent' | 'raw'): string | undefined {
  if (encoding === 'raw') return Buffer.from(value, 'latin1').toString('utf8')
  const q = value.indexOf('?')
  const [path, query] = q === -1 ? [value, ''] : [value.slice(0, q), value.slice(q)]
  try { return decodeURIComponent(path) + query } catch { return undefined }
}

async function checkEmpty (fn: string, res: Normalized): Promise<void> {
  const length = res.header('Content-Length')
  if (length !== undefined && length !== '0') fail(fn, `Content-Length is ${length}, expected 0 on an offloaded response`, length, '0')
  const body = await res.body()
  if (body !== undefined && body.length > 0) fail(fn, `the offloaded response has a ${body.length}-byte body, expected none`, body.length, 0)
}

/** `attachment; filename="a"; filename*=UTF-8''%C3%A9` → type and the name a browser would pick. */
export function parseDisposition (header: string): { type: string, filename: string | undefined } {
  const type = (header.split(';')[0] ?? '').trim().toLowerCase()
  const star = /;\s*filename\*\s*=\s*UTF-8''([^;\s]*)/i.exec(header)
  if (star?.[1] !== undefined) {
    try { return { type, filename: decodeURIComponent(star[1]) } } catch {}
  }
  const quoted = /;\s*filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header)
  if (quoted?.[1] !== undefined) return { type, filename: quoted[1].replace(/\\(.)/g, '$1') }
  const token = /;\s*filename\s*=\s*([^;\s"]+)/i.exec(header)
  return { type, filename: token?.[1] }
}

function firstDifference (a: Buffer, b: Buffer): string {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `; first difference at byte ${i}`
  return ''
}

function fail (fn: string, message: string, actual: unknown, expected: unknown): never {
  throw new AssertionError({ message: `${fn}: ${message}`, actual, expected, operator: fn })
}
