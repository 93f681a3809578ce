import { AssertionError } from 'node:assert'
import type { Stream } from 'node:stream'
import { redactUrl } from './debug.ts'

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
 * decodes `text/*` bodies, and those of any type it does not know as binary (`application/zip`, office
 * documents…), as UTF-8 (lossy for other bytes), so compare such bodies after
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
  /**
   * The download name the browser would use: `filename*` decoded when present, else `filename`;
   * exactly (a string) or matched (a RegExp: a dated `users 2026-11-23.csv`); `null` = no name (no
   * Content-Disposition, or one without a name).
   */
  filename?: string | RegExp | null | undefined
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
   * The URI path the proxy serves, decoded as it decodes it: `'/protected/a b.txt'` matches
   * `/protected/a%20b.txt`, and `'/protected/q?x.txt'` (a file named `q?x.txt`) matches only
   * `/protected/q%3Fx.txt`, because a raw `?` in the header starts a query (nginx, Caddy). A string
   * expects no query unless `query` names one. A RegExp is tested against the raw header value.
   * The header is read as bytes, which must be UTF-8 once decoded: a hand-set `'/protected/März.txt'`
   * goes out with the single byte 0xE4 for "ä" (nginx: 404) and fails.
   */
  redirect?: string | RegExp | undefined
  /**
   * What follows the first raw `?` of the header, verbatim (the proxy does not decode it), e.g. a
   * presigned URL's signature after `/_remote/…`; a RegExp is tested against it; `null` = no `?`.
   * When omitted, a `redirect` string expects no query and a RegExp or no `redirect` checks none.
   */
  query?: string | RegExp | null | undefined
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
  /**
   * The absolute path, decoded (`'/srv/a b.txt'`), or a RegExp tested against the raw header value.
   * The whole value is the path: Apache and lighttpd read no query, so `?` is part of the name.
   * The header is read as bytes, which must be UTF-8 (once decoded, for lighttpd).
   */
  path?: string | RegExp | undefined
  /** `'raw'` for Apache mod_xsendfile (UTF-8 bytes), `'percent'` for lighttpd. @default 'raw' */
  encoding?: 'raw' | 'percent' | undefined
}

export interface InternalRedirectExpectation extends ResponseExpectation {
  /**
   * The `Location` path, percent-decoded; a raw `?` starts the query (RFC 3875 §6.2.2), so a file
   * named `q?x.txt` is `'/private/q?x.txt'` sent as `/private/q%3Fx.txt`. A string expects no query
   * unless `query` names one. A RegExp is tested against the raw header value. The header is read
   * as bytes, which must be UTF-8 once decoded.
   */
  location?: string | RegExp | undefined
  /** What follows the first raw `?` of `Location`, verbatim; a RegExp is tested against it; `null` = no `?`. */
  query?: string | RegExp | null | undefined
}

/** What both response kinds are reduced to. */
interface Normalized {
  status: number
  header: (name: string) => string | undefined
  /** Every header name, lower case. */
  names: () => string[]
  /** The body's bytes (read once, then kept), or undefined when the response does not hold them. */
  body: () => Promise<Buffer | undefined>
  /** Why `body()` is undefined, and what to do about it. */
  bodyHint: () => string
  /** When `body()` is text the client decoded (so not necessarily the bytes sent): why, and what to do. */
  decodedHint: () => string | undefined
}

type AnyResponse = Response | FetchLike | { status: number, headers: Record<string, unknown>, body?: unknown, text?: unknown }

/**
 * Asserts a download streamed by the app, not offloaded: no X-Accel-Redirect / X-Sendfile, no
 * `Location` (an internal redirect), and not the empty `Content-Length: 0` response an offload is
 * when bytes are expected (`body`, or a `Content-Length` in `headers`) or when a header of the
 * response carries a path (a Caddy rule's own header; name it in `headers` if the app streams it);
 * an empty file streamed by the app passes. A 200 or 206 without Content-Disposition fails (every
 * download has one: it is a page or an error), unless `filename: null` is expected. Then status,
 * presentation headers and the exact body. An unknown expectation key or a value of the wrong kind
 * is a TypeError.
 * supertest decodes `text/*` bodies (and `application/zip`, any type it does not know as binary) as
 * UTF-8 and hands `multipart/byteranges` (a multi-range 206) to its form parser, which keeps no
 * bytes: for exact bytes request with `.buffer(true).parse(bufferParser)`. A HEAD response's body
 * is empty.
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
  const fn = 'assertDownload'
  checkExpectation(fn, expected)
  const res = normalize(response, fn)
  checkStreamed(fn, res, expected)
  checkCommon(fn, res, expected)
  // Every download this library sends (a 200 or 206, HEAD too) has a Content-Disposition: without
  // one, the response is something else — a login page, an error sent as 200, a route that forgot
  // download(). Only `filename: null` (no name asked, no type) accepts its absence.
  if ((res.status === 200 || res.status === 206) && res.header('Content-Disposition') === undefined && !(expected.filename === null && expected.attachment === undefined)) {
    fail(fn, `the ${res.status} response has no Content-Disposition, which every download has: it is not a download (a page, an error sent as ${res.status}, a route that set its body without download()); expect filename: null if the app sends such a response on purpose`, undefined, 'Content-Disposition')
  }
  if (expected.body !== undefined) {
    const want = typeof expected.body === 'string' ? Buffer.from(expected.body, 'utf8') : Buffer.from(expected.body)
    // fetch and supertest undo gzip, deflate and br before anyone sees the bytes (bufferParser too):
    // what they hand over is not what was sent, and a download compressed by a middleware would
    // look like the file.
    const coding = res.header('Content-Encoding')?.trim()
    if (coding !== undefined && coding !== '' && coding.toLowerCase() !== 'identity') {
      fail(fn, `the body cannot be compared: the response has Content-Encoding ${JSON.stringify(coding)}, which fetch and supertest decode before the assertion sees the bytes (a file stored coded is sent decoded to a request with Accept-Encoding: identity; a middleware compressing downloads breaks their ranges and validators)`, coding, undefined)
    }
    const body = await res.body()
    if (body === undefined) fail(fn, `the response body is not available: ${res.bodyHint()}`, undefined, want)
    // Text supertest decoded with replacement characters cannot prove which bytes were sent.
    const decoded = res.decodedHint()
    if (!body.equals(want)) {
      fail(fn, `body differs: ${body.length} bytes received, ${want.length} expected${firstDifference(body, want)}${decoded === undefined ? '' : `; ${decoded}`}`, body, want)
    }
    if (decoded !== undefined) fail(fn, `the body cannot be compared byte for byte: ${decoded}`, body, want)
  }
}

/**
 * Asserts an nginx (or Caddy) offload: status, the redirect, the X-Accel-* controls, presentation
 * headers and an empty body (Content-Length 0). The redirect is the path the proxy serves, decoded;
 * a raw `?` in the header starts a query, expected only with `query`.
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
 * // a presigned object through nginx({ remote: true }): the path, then its signed query
 * await assertXAccelRedirect(res, { redirect: '/_remote/https/b.s3.example/k%20x', query: /^X-Amz-/ })
 */
export async function assertXAccelRedirect (response: AnyResponse, expected: XAccelRedirectExpectation = {}): Promise<void> {
  const fn = 'assertXAccelRedirect'
  checkExpectation(fn, expected)
  const res = normalize(response, fn)
  checkCommon(fn, res, expected)
  const header = expected.header ?? 'X-Accel-Redirect'
  const encoding = expected.encoding ?? 'percent'
  checkTarget(fn, header, res.header(header), expected.redirect, {
    encoding, query: expected.query, server: encoding === 'raw' ? 'Caddy' : 'nginx'
  })
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
  checkExpectation('assertXSendfile', expected)
  const res = normalize(response, 'assertXSendfile')
  checkCommon('assertXSendfile', res, expected)
  checkTarget('assertXSendfile', 'X-Sendfile', res.header('X-Sendfile'), expected.path, { encoding: expected.encoding ?? 'raw' })
  await checkEmpty('assertXSendfile', res)
}

/**
 * Asserts a CGI-style internal redirect: status 200, the `Location` path (decoded; a raw `?` starts
 * a query, expected only with `query`) and an empty body. With supertest, call `.redirects(0)`;
 * fetch does not follow a 200.
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
  const fn = 'assertInternalRedirect'
  checkExpectation(fn, expected)
  const res = normalize(response, fn)
  checkCommon(fn, res, expected)
  checkTarget(fn, 'Location', res.header('Location'), expected.location, { encoding: 'percent', query: expected.query, server: 'the gateway' })
  await checkEmpty(fn, res)
}

type Check = (value: unknown) => boolean
const isString: Check = (v) => typeof v === 'string'
const isPattern: Check = (v) => typeof v === 'string' || v instanceof RegExp
const orNull = (check: Check): Check => (v) => v === null || check(v)
const common: Record<string, Check> = {
  status: (v) => Number.isInteger(v) && (v as number) >= 100 && (v as number) <= 599,
  contentType: isPattern,
  filename: orNull(isPattern),
  attachment: (v) => typeof v === 'boolean',
  cacheControl: orNull(isString),
  headers: (v) => isPlainObject(v) && Object.values(v).every((want) => want === null || typeof want === 'string' || want instanceof RegExp)
}
const EXPECTATIONS: Record<string, Record<string, Check>> = {
  assertDownload: { ...common, body: (v) => typeof v === 'string' || v instanceof Uint8Array },
  assertXAccelRedirect: {
    ...common,
    redirect: isPattern,
    query: orNull(isPattern),
    encoding: (v) => v === 'percent' || v === 'raw',
    header: isString,
    buffering: orNull((v) => typeof v === 'boolean'),
    limitRate: orNull((v) => Number.isSafeInteger(v) && (v as number) >= 0),
    expires: orNull((v) => v === false || (Number.isSafeInteger(v) && (v as number) >= 0) || (v instanceof Date && !Number.isNaN(v.getTime()))),
    charset: orNull(isString)
  },
  assertXSendfile: { ...common, path: isPattern, encoding: (v) => v === 'raw' || v === 'percent' },
  assertInternalRedirect: { ...common, location: isPattern, query: orNull(isPattern) }
}
/** django-downloadview's names and the other helpers' own, for the message of an unknown key. */
const OTHER_NAMES: Record<string, string> = {
  redirect_url: 'redirect', with_buffering: 'buffering', limit_rate: 'limitRate', basename: 'filename', mime_type: 'contentType',
  content: 'body', fileName: 'filename', contentDisposition: 'filename', redirect: 'redirect (assertXAccelRedirect)',
  path: 'path (assertXSendfile)', location: 'location (assertInternalRedirect)'
}

/** An object literal's kind: a Map or a fetch Headers holds its entries where Object.entries() sees none. */
function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const prototype = Object.getPrototypeOf(value) as unknown
  return prototype === Object.prototype || prototype === null
}

/**
 * The expectation as its helper reads it: an unknown key (a Django name, another helper's key, a
 * typo) or a value of the wrong kind (`buffering: 'no'`) would be ignored and the assertion pass on
 * a wrong response, so they are a TypeError, as the library's own options are.
 */
function checkExpectation (fn: string, expected: unknown): void {
  if (expected === undefined) return
  if (!isPlainObject(expected)) throw new TypeError(`${fn}(): the expectation must be a plain object (not a Map, an array or a class instance)`)
  const allowed = EXPECTATIONS[fn] ?? common
  for (const [key, value] of Object.entries(expected)) {
    if (value === undefined) continue
    const check = allowed[key]
    if (check === undefined) {
      const hint = OTHER_NAMES[key]
      throw new TypeError(`${fn}(): unknown expectation ${JSON.stringify(key)}${hint === undefined ? '' : ` (did you mean ${hint}?)`}; it takes ${Object.keys(allowed).join(', ')}`)
    }
    if (!check(value)) throw new TypeError(`${fn}(): expectation ${key} has a value of the wrong kind: ${value instanceof RegExp ? String(value) : JSON.stringify(value) ?? String(value)}`)
  }
}

/**
 * The bytes each fetch Response handed to an assertion, so that a second assertion on the same
 * response compares them too (a fetch body can be read once).
 */
const fetchBodies = new WeakMap<object, Promise<Buffer | undefined>>()

function normalize (response: AnyResponse, fn: string): Normalized {
  if (isFetchResponse(response)) {
    // fetch follows redirects by default: what it returns is then another server's answer, not the app's.
    if (response.redirected === true) {
      // (Without its query: a presigned URL's signature stays out of test logs.)
      fail(fn, `fetch followed a redirect and got ${response.status} from ${JSON.stringify(redactUrl(response.url))}, which is not the app's own response (fetch with { redirect: 'manual' } to see it)`, response.status, undefined)
    }
    let why = 'the fetch Response body was read before the assertion (assert first)'
    return {
      status: response.status,
      header: (name) => response.headers.get(name) ?? undefined,
      names: () => {
        const names: string[] = []
        response.headers.forEach((_, name) => { names.push(name.toLowerCase()) })
        return names
      },
      body: async () => {
        let read = fetchBodies.get(response)
        if (read === undefined) {
          read = response.bodyUsed === true
            ? Promise.resolve(undefined)
            : response.arrayBuffer().then((bytes) => Buffer.from(bytes), (error: unknown) => {
              // A body whose stream is locked (a reader taken) or was read elsewhere.
              why = `the fetch Response body cannot be read (${error instanceof Error ? error.message : String(error)}): assert before reading it`
              return undefined
            })
          fetchBodies.set(response, read)
        }
        return await read
      },
      bodyHint: () => why,
      decodedHint: () => undefined
    }
  }
  const r = response as { status?: unknown, headers?: unknown, body?: unknown, text?: unknown, req?: unknown, redirects?: unknown } | null
  if (r === null || typeof r !== 'object' || typeof r.status !== 'number' || r.headers === null || typeof r.headers !== 'object') {
    throw new TypeError(`${fn}(): response must be a supertest response or a fetch Response`)
  }
  // supertest follows redirects only when asked (.redirects(n)); it lists the URLs it followed.
  if (Array.isArray(r.redirects) && r.redirects.length > 0) {
    fail(fn, `supertest followed ${r.redirects.length} redirect(s), to ${JSON.stringify(redactUrl(String(r.redirects[r.redirects.length - 1])))}: the response is not the app's own (leave out .redirects(n) to see it)`, r.status, undefined)
  }
  const headers = r.headers as Record<string, unknown>
  const header = (name: string): string | undefined => {
    const value = headers[name.toLowerCase()]
    return Array.isArray(value) ? value.join(', ') : typeof value === 'string' ? value : undefined
  }
  const method = typeof r.req === 'object' && r.req !== null ? (r.req as { method?: unknown }).method : undefined
  return {
    status: r.status,
    header,
    names: () => Object.keys(headers).map((name) => name.toLowerCase()),
    body: async () => Buffer.isBuffer(r.body) ? r.body
      : typeof r.text === 'string' ? Buffer.from(r.text, 'utf8')
        : method === 'HEAD' ? Buffer.alloc(0) : undefined,
    bodyHint: () => {
      // superagent gives multipart/* to formidable, which parses fields and files and keeps no
      // bytes; .buffer(true) does not change that, a parser of one's own does.
      const type = /^\s*(multipart\/[^;\s]*)/i.exec(header('Content-Type') ?? '')?.[1]
      return type !== undefined
        ? `supertest hands ${type} to its form parser, which keeps no bytes (.buffer(true) does not change that): request with .parse(bufferParser) from koa-downloads/testing`
        : 'supertest did not buffer it: request with .buffer(true).parse(bufferParser) from koa-downloads/testing'
    },
    // superagent keeps bytes only for the types it knows as binary (image/*, application/pdf,
    // application/octet-stream, …); any other body (text/*, application/zip, office documents…) it
    // decodes as UTF-8, which turns every invalid sequence into U+FFFD: the text is not the bytes sent.
    decodedHint: () => Buffer.isBuffer(r.body) || typeof r.text !== 'string' || !r.text.includes('\uFFFD') ? undefined
      : `supertest decoded this ${header('Content-Type') ?? 'untyped'} body as UTF-8 text, which changes bytes that are not valid UTF-8: request with .buffer(true).parse(bufferParser) from koa-downloads/testing to compare the exact bytes`
  }
}

/** The fetch Response shape: the global class, undici's own, node-fetch's (headers with get()). */
interface FetchLike {
  status: number
  url: string
  redirected?: boolean
  bodyUsed?: boolean
  headers: { get: (name: string) => string | null, forEach: (fn: (value: string, name: string) => void) => void }
  arrayBuffer: () => Promise<ArrayBuffer>
}

function isFetchResponse (response: unknown): response is FetchLike {
  if (typeof Response === 'function' && response instanceof Response) return true
  const r = response as { status?: unknown, headers?: { get?: unknown, forEach?: unknown } | null, arrayBuffer?: unknown } | null
  return typeof r === 'object' && r !== null && typeof r.status === 'number' && typeof r.arrayBuffer === 'function' &&
    typeof r.headers === 'object' && r.headers !== null && typeof r.headers.get === 'function' && typeof r.headers.forEach === 'function'
}

/**
 * The "not offloaded" half of assertDownload. Every offload response of this library is
 * `Content-Length: 0` with an empty body, so an empty response is suspect when bytes are expected or
 * when one of its headers carries a path; an empty file streamed by the app has neither.
 */
function checkStreamed (fn: string, res: Normalized, expected: DownloadExpectation): void {
  for (const name of ['X-Accel-Redirect', 'X-Sendfile']) {
    const value = res.header(name)
    if (value !== undefined) fail(fn, `expected a streamed download, but ${name} is ${JSON.stringify(value)} (offloaded)`, value, undefined)
  }
  // A 200 with Location is an internal redirect (offloaded), a 3xx a redirect; a 201 names what it
  // created (RFC 9110 §15.3.2) and may well stream it.
  const location = res.header('Location')
  if (location !== undefined && (res.status === 200 || (res.status >= 300 && res.status < 400))) {
    const what = res.status === 200 ? 'an internal redirect: offloaded' : 'a redirect'
    fail(fn, `expected a streamed download, but the ${res.status} response carries Location ${JSON.stringify(location)} (${what})`, location, undefined)
  }
  if (res.header('Content-Length')?.trim() !== '0') return
  const size = expectedSize(expected)
  if (size !== undefined && size > 0) {
    fail(fn, `expected a streamed download of ${size} bytes, but the response is empty (Content-Length: 0), as an offloaded one is`, 0, size)
  }
  const named = new Set(Object.keys(expected.headers ?? {}).map((name) => name.toLowerCase()))
  for (const name of res.names()) {
    if (name === 'content-location' || named.has(name)) continue
    const value = res.header(name)
    if (value?.startsWith('/') === true) {
      fail(fn, `expected a streamed download, but the response is empty (Content-Length: 0) and ${name} is ${JSON.stringify(value)}, which looks like an offload header (a caddy() rule's own header); if the app streams this response, name ${name} in the expected headers`, value, undefined)
    }
  }
}

/** The byte count an expectation implies: `body`'s length, else a `Content-Length` in `headers`. */
function expectedSize (expected: DownloadExpectation): number | undefined {
  if (expected.body !== undefined) return typeof expected.body === 'string' ? Buffer.byteLength(expected.body, 'utf8') : expected.body.byteLength
  for (const [name, want] of Object.entries(expected.headers ?? {})) {
    if (name.toLowerCase() === 'content-length' && typeof want === 'string' && /^\s*\d+\s*$/.test(want)) return Number(want)
  }
  return undefined
}

function checkCommon (fn: string, res: Normalized, expected: ResponseExpectation): void {
  const status = expected.status ?? 200
  if (res.status !== status) fail(fn, `status is ${res.status}, expected ${status}`, res.status, status)
  if (expected.contentType !== undefined) checkHeader(fn, res, 'Content-Type', expected.contentType)
  if (expected.cacheControl !== undefined) checkHeader(fn, res, 'Cache-Control', expected.cacheControl)
  for (const [name, want] of Object.entries(expected.headers ?? {})) checkHeader(fn, res, name, want)
  if (expected.filename === undefined && expected.attachment === undefined) return
  const disposition = res.header('Content-Disposition')
  // No header names no file: what `filename: null` asks, when the type is not asked too.
  if (disposition === undefined && expected.filename === null && expected.attachment === undefined) return
  if (disposition === undefined) fail(fn, 'Content-Disposition is missing', undefined, expected.filename ?? expected.attachment)
  const parsed = parseDisposition(disposition)
  if (parsed === undefined) {
    fail(fn, `Content-Disposition is ${JSON.stringify(disposition)}, which is malformed (RFC 6266)`, disposition, expected.filename ?? expected.attachment)
  }
  if (expected.attachment !== undefined && parsed.type !== (expected.attachment ? 'attachment' : 'inline')) {
    fail(fn, `Content-Disposition is ${JSON.stringify(disposition)}, expected ${expected.attachment ? 'attachment' : 'inline'}`, parsed.type, expected.attachment ? 'attachment' : 'inline')
  }
  const wantName = expected.filename
  if (wantName !== undefined && !(wantName instanceof RegExp ? parsed.filename !== undefined && matches(wantName, parsed.filename) : parsed.filename === (wantName ?? undefined))) {
    fail(fn, `Content-Disposition is ${JSON.stringify(disposition)}: filename ${JSON.stringify(parsed.filename)}, expected ${wantName instanceof RegExp ? String(wantName) : JSON.stringify(wantName)}`, parsed.filename, wantName)
  }
}

function checkHeader (fn: string, res: Normalized, name: string, want: string | RegExp | null): void {
  const value = res.header(name)
  const ok = want === null ? value === undefined : value !== undefined && (typeof want === 'string' ? value === want : matches(want, value))
  if (!ok) {
    const shown = want === null ? 'absent' : typeof want === 'string' ? JSON.stringify(want) : String(want)
    fail(fn, `${name} is ${value === undefined ? 'absent' : JSON.stringify(value)}, expected ${shown}`, value, want)
  }
}

/** `pattern.test(value)` from the start of the value, whatever a `g` or `y` flag left in `lastIndex`. */
function matches (pattern: RegExp, value: string): boolean {
  pattern.lastIndex = 0
  return pattern.test(value)
}

interface Reading {
  /** `'percent'`: decoded once (nginx, lighttpd, CGI gateways); `'raw'`: UTF-8 bytes as sent (Apache, Caddy). */
  encoding: 'percent' | 'raw'
  /** The expected query (`XAccelRedirectExpectation.query`); only for a URI. */
  query?: string | RegExp | null | undefined
  /**
   * Who reads the value as a URI, whose first raw `?` starts a query the server neither decodes nor
   * looks for on disk (X-Accel-Redirect, Location); named in messages. Absent for a file path
   * (X-Sendfile: Apache and lighttpd take the whole value as the path).
   */
  server?: string
}

/**
 * The offload value against its expectation: the path decoded as its server decodes it, compared
 * whole; for a URI, the query after the first raw `?` compared on its own.
 */
function checkTarget (fn: string, name: string, value: string | undefined, want: string | RegExp | undefined, reading: Reading): void {
  if (value === undefined) fail(fn, `${name} is absent: the response was not offloaded`, undefined, want ?? 'present')
  if (want instanceof RegExp && !matches(want, value)) fail(fn, `${name} is ${JSON.stringify(value)}, expected to match ${String(want)}`, value, want)
  const uri = reading.server !== undefined
  const q = uri ? value.indexOf('?') : -1
  const query = q === -1 ? undefined : value.slice(q + 1)
  if (typeof want === 'string') {
    const read = decodePath(q === -1 ? value : value.slice(0, q), reading.encoding)
    const path = 'path' in read ? read.path : undefined
    if (path !== want) {
      if (path !== undefined && query !== undefined && `${path}?${query}` === want) {
        fail(fn, `${name} is ${JSON.stringify(value)}: ${reading.server ?? 'the server'} reads the path ${JSON.stringify(path)} and the query ${JSON.stringify(query)} (a raw "?" starts a query), expected the path ${JSON.stringify(want)} (a "?" in a file name is sent as %3F; a query is expected with the query option)`, path, want)
      }
      const decoded = 'path' in read ? `decoded ${JSON.stringify(read.path)}` : `not decodable: ${read.reason}`
      fail(fn, `${name} is ${JSON.stringify(value)} (${decoded}${query === undefined ? '' : `, query ${JSON.stringify(query)}`}), expected ${JSON.stringify(want)}`, path, want)
    }
  }
  if (!uri) return
  const wantQuery = reading.query !== undefined ? reading.query : typeof want === 'string' ? null : undefined
  if (wantQuery === undefined) return
  if (wantQuery === null) {
    if (query !== undefined) {
      fail(fn, `${name} is ${JSON.stringify(value)}: its raw "?" starts the query ${JSON.stringify(query)}, expected none (a "?" in a file name is sent as %3F; a query is expected with the query option)`, query, null)
    }
    return
  }
  const shown = typeof wantQuery === 'string' ? JSON.stringify(wantQuery) : `to match ${String(wantQuery)}`
  if (query === undefined) fail(fn, `${name} is ${JSON.stringify(value)}, with no query; expected the query ${shown}`, undefined, wantQuery)
  if (typeof wantQuery === 'string' ? query !== wantQuery : !matches(wantQuery, query)) {
    fail(fn, `${name} is ${JSON.stringify(value)}: query ${JSON.stringify(query)}, expected ${shown}`, query, wantQuery)
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A path as its server reads it, or why it reads none. A header value is bytes, and both response
 * kinds hand it over one character per byte (latin1: Node's parser, fetch's ByteString), as Node's
 * setHeader writes it: a hand-written `'/protected/März.txt'` goes out with the single byte 0xE4,
 * which is not the UTF-8 name on disk (nginx: 404), while the UTF-8 bytes of "ä" sent raw are
 * So the value is taken as bytes, each `%XX` replaced by its byte for `'percent'`
 * (nginx, lighttpd, CGI gateways decode once; `'raw'`: Apache, Caddy take them as sent), and the
 * result must be strict UTF-8. decodeURIComponent would read the characters as code points instead.
 */
function decodePath (value: string, encoding: 'percent' | 'raw'): { path: string } | { reason: string } {
  // Only a response built by hand can hold one: Node refuses to send it (ERR_INVALID_CHAR).
  const wide = /[^\0-\xff]/u.exec(value)?.[0]
  if (wide !== undefined) return { reason: `${JSON.stringify(wide)} is above U+00FF, which no header can carry` }
  const raw = Buffer.from(value, 'latin1')
  let bytes = raw
  if (encoding === 'percent') {
    const bad = /%(?![0-9A-Fa-f]{2})/.exec(value)
    if (bad !== null) return { reason: `invalid percent-encoding ${JSON.stringify(value.slice(bad.index, bad.index + 3))}` }
    bytes = percentDecodedBytes(value)
  }
  try { return { path: utf8.decode(bytes) } } catch {}
  const shown = bytes.toString('latin1').replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
  const at = invalidUtf8At(raw)
  const hint = at === -1 ? '' : `; a header carries one byte per character, so the raw ${JSON.stringify(value[at])} is the single byte 0x${raw[at]?.toString(16).toUpperCase()}, not UTF-8: ` +
    (encoding === 'percent' ? 'percent-encode the name' : "send the name's UTF-8 bytes, Buffer.from(name).toString('latin1')")
  return { reason: `its bytes${value.includes('%') && encoding === 'percent' ? ', percent-decoded,' : ''} "${shown}" are not UTF-8${hint}` }
}

/** The bytes of a header value (one character per byte) with each `%XX` replaced by its byte. */
function percentDecodedBytes (value: string): Buffer<ArrayBuffer> {
  return Buffer.from(value.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))), 'latin1')
}

/** The offset of the first byte of `bytes` that starts no valid UTF-8 sequence, or -1. */
function invalidUtf8At (bytes: Buffer): number {
  for (let i = 0; i < bytes.length;) {
    const lead = bytes[i] ?? 0
    const length = lead < 0x80 ? 1 : lead < 0xc2 ? 0 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : lead < 0xf5 ? 4 : 0
    if (length === 0) return i
    try { utf8.decode(bytes.subarray(i, i + length)) } catch { return i }
    i += length
  }
  return -1
}

async function checkEmpty (fn: string, res: Normalized): Promise<void> {
  const length = res.header('Content-Length')
  if (length !== undefined && length !== '0') fail(fn, `Content-Length is ${length}, expected 0 on an offloaded response`, length, '0')
  const body = await res.body()
  if (body !== undefined && body.length > 0) fail(fn, `the offloaded response has a ${body.length}-byte body, expected none`, body.length, 0)
  // With no Content-Length (a chunked body), only the bytes can show that the body is empty.
  if (body === undefined && length === undefined) fail(fn, `the body is not available and no Content-Length says it is empty: ${res.bodyHint()}`, undefined, 0)
}

/**
 * A Content-Disposition value (RFC 6266) → its type (lower case) and the name a browser would pick:
 * `filename*` (RFC 8187, UTF-8 or ISO-8859-1, any language tag) when it decodes, else `filename`.
 * Parameters are tokens or quoted-strings with backslash escapes (RFC 9110 §5.6.6), so a quoted name
 * may contain `;` or `filename*=`. `undefined` for a malformed value (an unterminated quoted-string,
 * a parameter without `=`, a duplicate parameter, stray characters).
 * @example parseDisposition(`attachment; filename="a"; filename*=UTF-8''%C3%A9`) // { type: 'attachment', filename: 'é' }
 */
export function parseDisposition (header: string): { type: string, filename: string | undefined } | undefined {
  if (typeof header !== 'string') return undefined
  let i = 0
  const ows = (): void => { while (header[i] === ' ' || header[i] === '\t') i++ }
  const token = (): string => {
    const start = i
    while (i < header.length && isTchar(header.charCodeAt(i))) i++
    return header.slice(start, i)
  }
  ows()
  const type = token().toLowerCase()
  if (type === '') return undefined
  const params = new Map<string, { value: string, quoted: boolean }>()
  ows()
  while (i < header.length) {
    if (header[i] !== ';') return undefined
    i++
    ows()
    if (i === header.length || header[i] === ';') continue // an empty parameter (RFC 9110 allows it)
    const name = token().toLowerCase()
    if (name === '') return undefined
    // RFC 6266's grammar (RFC 2616 style) allows whitespace around "=", as browsers do.
    ows()
    if (header[i] !== '=') return undefined
    i++
    ows()
    let value = ''
    const quoted = header[i] === '"'
    if (quoted) {
      i++
      for (;;) {
        if (i >= header.length) return undefined
        let code = header.charCodeAt(i)
        if (code === 0x22) break
        if (code === 0x5c) code = header.charCodeAt(++i) // quoted-pair; NaN at the end fails below
        if (!isQuotedChar(code)) return undefined
        value += header[i]
        i++
      }
      i++
    } else {
      value = token()
      if (value === '') return undefined
    }
    if (params.has(name)) return undefined // RFC 6266 §4.1: a repeated parameter makes the value invalid
    params.set(name, { value, quoted })
    ows()
  }
  const star = params.get('filename*')
  const extended = star === undefined || star.quoted ? undefined : decodeExtValue(star.value)
  return { type, filename: extended ?? params.get('filename')?.value }
}

/** token characters (RFC 9110 §5.6.2). */
function isTchar (code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) ||
    (code < 0x7f && "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code)))
}

/** qdtext or the second character of a quoted-pair: HTAB, SP, VCHAR, obs-text. */
function isQuotedChar (code: number): boolean {
  return code === 0x09 || (code >= 0x20 && code <= 0xff && code !== 0x7f)
}

/**
 * RFC 8187 ext-value: charset'[language]'value-chars → the decoded text, or undefined when malformed,
 * in another charset, or not valid UTF-8 (a browser then falls back to `filename`).
 */
function decodeExtValue (value: string): string | undefined {
  const match = /^([A-Za-z0-9!#$%&+\-^_`{}~]+)'([A-Za-z0-9-]*)'((?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*)$/.exec(value)
  if (match === null) return undefined
  const charset = (match[1] ?? '').toLowerCase()
  const bytes = percentDecodedBytes(match[3] ?? '')
  if (charset === 'iso-8859-1') return bytes.toString('latin1')
  if (charset !== 'utf-8') return undefined
  try { return utf8.decode(bytes) } catch { return undefined }
}

function firstDifference (a: Buffer, b: Buffer): string {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `; first difference at byte ${i}`
  return ''
}

function fail (fn: string, message: string, actual: unknown, expected: unknown): never {
  throw new AssertionError({ message: `${fn}: ${message}`, actual, expected, operator: fn })
}
