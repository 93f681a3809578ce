import test from 'ava'
import type { ExecutionContext } from 'ava'
import createHttpError, { HttpError } from 'http-errors'
import type Koa from 'koa'
import { get } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { download } from '../source/download.ts'
import { DownloadError, notFound, statusFor, toHttpError } from '../source/errors.ts'
import type { DownloadErrorCode } from '../source/errors.ts'
import { PathFile } from '../source/path-file.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import type { ByteRange, DownloadFile, FileStat } from '../source/types.ts'
import { assertErrorResponse } from './helpers/error-response.ts'
import { downloadApp, fixtureRoot } from './helpers/koa.ts'
import { fetchBytes, listen } from './helpers/listen.ts'

const secretPath = '/srv/private/customer-4711/invoice.pdf'

/** A system error as fs throws it: a code, and a message and path that must never reach a client. */
function systemError (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: failed, open '${secretPath}'`), { code, path: secretPath, syscall: 'open' })
}

/** A DownloadFile whose stat() and open() do what the test says, counting the calls. */
class ScriptedFile implements DownloadFile {
  readonly name = 'invoice.pdf'
  stats = 0
  opens = 0
  readonly #stat: () => Promise<FileStat>
  readonly #open: (attempt: number, range?: ByteRange) => Promise<Readable>

  constructor (stat: () => Promise<FileStat>, open: (attempt: number, range?: ByteRange) => Promise<Readable> = async () => Readable.from([Buffer.from('%PDF-1.4\n')])) {
    this.#stat = stat
    this.#open = open
  }

  async stat (): Promise<FileStat> {
    this.stats++
    return await this.#stat()
  }

  async open (range?: ByteRange): Promise<Readable> {
    this.opens++
    return await this.#open(this.opens, range)
  }
}

const goodStat = async (): Promise<FileStat> => ({ size: 9, etag: '"v1"', lastModified: new Date('2024-01-02T03:04:05Z') })

/** An app serving `file` with presentation options that would add headers, and recording app errors. */
async function appFor (t: ExecutionContext, file: DownloadFile): Promise<{ url: string, errors: Error[] }> {
  const errors: Error[] = []
  const app: Koa = downloadApp((ctx) => { ctx.body = download(file, { cacheControl: 'private, max-age=60', filename: 'report.pdf' }) })
  app.on('error', (error: Error) => { errors.push(error) })
  return { url: await listen(t, app), errors }
}

// ——— toHttpError: the one mapping ———

const mapping: Array<[string, unknown, number]> = [
  ['ENOENT', systemError('ENOENT'), 404],
  ['ENOTDIR', systemError('ENOTDIR'), 404],
  ['ENAMETOOLONG', systemError('ENAMETOOLONG'), 404],
  ['EISDIR', systemError('EISDIR'), 404],
  ['ELOOP', systemError('ELOOP'), 404],
  ['ERR_FS_EISDIR', systemError('ERR_FS_EISDIR'), 404],
  ['EACCES (like nginx)', systemError('EACCES'), 403],
  ['EPERM', systemError('EPERM'), 403],
  ['a bare { code: "EACCES" } object', { code: 'EACCES' }, 403],
  ['EIO', systemError('EIO'), 500],
  ['EMFILE (out of descriptors: may succeed later)', systemError('EMFILE'), 503],
  ['ENFILE', systemError('ENFILE'), 503],
  ['a plain Error', new Error(`cannot read ${secretPath}`), 500],
  ['a thrown string', `cannot read ${secretPath}`, 500],
  ['undefined', undefined, 500],
  ['null', null, 500],
  ['a non-string code', { code: 404 }, 500],
  ['an http-errors 403', createHttpError(403), 403],
  ['an error with its own status 451 (and expose, Koa\'s convention)', Object.assign(new Error('legal'), { status: 451, expose: true }), 451],
  ['an error with its own statusCode 410 (and expose)', Object.assign(new Error('gone'), { statusCode: 410, expose: false }), 410],
  ['an HTTP client\'s error: the origin\'s 401 (superagent, axios: status, no expose)', Object.assign(new Error('Unauthorized'), { status: 401, response: {} }), 500],
  ['an HTTP client\'s error: the origin\'s 407 (undici: statusCode)', Object.assign(new Error('Response status code 407'), { statusCode: 407 }), 500],
  ['an error whose status is not an error status (200)', Object.assign(new Error('ok?'), { status: 200, expose: true }), 500],
  ['an error whose status is out of range (600)', Object.assign(new Error('?'), { status: 600, expose: true }), 500],
  ['an error declaring a redirect (302, and expose): no error status, and no Location to go with it', Object.assign(new Error('origin answered 302'), { status: 302, expose: false }), 500],
  ['an error declaring 304 in statusCode (and expose)', Object.assign(new Error('not modified'), { statusCode: 304, expose: true }), 500],
  ['an error declaring 300 (the first 3xx)', Object.assign(new Error('?'), { status: 300, expose: true }), 500],
  ['an error declaring 399 (the last 3xx)', Object.assign(new Error('?'), { status: 399, expose: true }), 500],
  ['an error whose status is a string', Object.assign(new Error('?'), { status: '404', expose: true }), 500],
  ['an error whose status is fractional', Object.assign(new Error('?'), { status: 404.5, expose: true }), 500]
]

for (const [title, error, status] of mapping) {
  test(`errors: toHttpError maps ${title} → ${status}`, t => {
    const httpError = toHttpError(error)
    t.true(httpError instanceof HttpError)
    t.is(httpError.status, status)
    t.is(statusFor(error), status)
    t.is(httpError.expose, status < 500, 'only 4xx messages are exposed')
    t.false(httpError.message.includes(secretPath), 'the message never carries the path')
    t.is(httpError.cause, error, 'the original error is kept as the cause, for logs')
  })
}

const codes: Array<[DownloadErrorCode, number]> = [
  ['E_NOT_FOUND', 404],
  ['E_FORBIDDEN', 403],
  ['E_UPSTREAM', 502],
  ['E_UNAVAILABLE', 503],
  ['E_TIMEOUT', 504],
  ['E_CHANGED', 503]
]

for (const [code, status] of codes) {
  test(`errors: DownloadError ${code} has status ${status} and toHttpError keeps it`, t => {
    const cause = new Error('upstream said no')
    const error = new DownloadError(code, `the storage at ${secretPath} failed`, { cause })
    t.is(error.code, code)
    t.is(error.status, status)
    t.is(error.name, 'DownloadError')
    t.is(error.cause, cause)
    const httpError = toHttpError(error)
    t.is(httpError.status, status)
    t.false(httpError.message.includes(secretPath))
  })
}

test('errors: notFound() is an E_NOT_FOUND DownloadError with its cause', t => {
  const cause = systemError('ENOENT')
  const error = notFound('missing', cause)
  t.true(error instanceof DownloadError)
  t.is(error.code, 'E_NOT_FOUND')
  t.is(error.status, 404)
  t.is(error.cause, cause)
})

test('errors: a 5xx carries its causes in its stack (what Koa\'s default error log prints), not in its message; a 4xx\'s stack is left alone', t => {
  const root = Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:9 for ${secretPath}`), { code: 'ECONNREFUSED' })
  const error = new DownloadError('E_UPSTREAM', 'http GET https://media.example/x: ECONNREFUSED', { cause: root })
  const httpError = toHttpError(error)
  t.is(httpError.message, 'Bad Gateway')
  t.regex(httpError.stack ?? '', /^BadGatewayError: Bad Gateway\n/)
  t.regex(httpError.stack ?? '', /\n\[cause\]: DownloadError: http GET https:\/\/media\.example\/x: ECONNREFUSED\n/)
  t.regex(httpError.stack ?? '', /\n\[cause\]: Error: connect ECONNREFUSED 127\.0\.0\.1:9/)
  t.regex(toHttpError('a thrown string').stack ?? '', /\n\[cause\]: a thrown string$/)
  const missing = toHttpError(systemError('ENOENT'))
  t.false((missing.stack ?? '').includes('[cause]'))
})

// ——— Through Koa ———

test('errors: a source failing before its first bytes → 500 whose logged stack names the failure, while the client sees only the status text', async t => {
  const file = new ScriptedFile(async () => ({ size: 9 }), async () => { throw new Error('SQLITE_BUSY: database is locked') })
  const { url, errors } = await appFor(t, file)
  const res = await fetchBytes(url, '/')
  assertErrorResponse(t, res, 500)
  t.false(res.body.toString().includes('SQLITE_BUSY'))
  t.is(errors.length, 1)
  t.regex(errors[0]?.stack ?? '', /\[cause\]: Error: SQLITE_BUSY: database is locked/)
})

for (const code of ['EACCES', 'EPERM']) {
  test(`errors: a stat() that fails with ${code} → a clean 403, exposed (not logged by Koa), nothing opened`, async t => {
    const file = new ScriptedFile(async () => { throw systemError(code) })
    const { url, errors } = await appFor(t, file)
    const res = await fetchBytes(url, '/')
    assertErrorResponse(t, res, 403)
    t.is(file.opens, 0)
    t.is(errors.length, 1)
    t.is((errors[0] as HttpError).expose, true, "exposed: Koa's default error handler does not log it")
  })
}

test('errors: an open() that fails with EACCES → a clean 403', async t => {
  const file = new ScriptedFile(goodStat, async () => { throw systemError('EACCES') })
  const { url } = await appFor(t, file)
  assertErrorResponse(t, await fetchBytes(url, '/'), 403)
})

test('errors: a stat() that fails with ENOENT → a clean 404, exposed (not logged by Koa)', async t => {
  const file = new ScriptedFile(async () => { throw systemError('ENOENT') })
  const { url, errors } = await appFor(t, file)
  assertErrorResponse(t, await fetchBytes(url, '/'), 404)
  t.is(errors.length, 1)
  t.is((errors[0] as HttpError).expose, true, "exposed: Koa's default error handler does not log it")
})

for (const stage of ['stat', 'open'] as const) {
  test(`errors: an unknown ${stage}() failure → 500 whose body has neither the path nor the message; the app's error event has the cause`, async t => {
    const failure = systemError('EIO')
    const file = stage === 'stat'
      ? new ScriptedFile(async () => { throw failure })
      : new ScriptedFile(goodStat, async () => { throw failure })
    const { url, errors } = await appFor(t, file)
    const res = await fetchBytes(url, '/')
    assertErrorResponse(t, res, 500)
    const raw = (res.body as Buffer).toString() + JSON.stringify(res.headers)
    t.false(raw.includes(secretPath))
    t.false(raw.includes('EIO'))
    t.is(errors.length, 1, 'a 500 reaches the app error event')
    t.is((errors[0] as Error & { cause?: unknown }).cause, failure)
  })
}

for (const [code, status] of codes.filter(([code]) => code !== 'E_CHANGED')) {
  test(`errors: a DownloadError ${code} from stat() → a clean ${status}`, async t => {
    const file = new ScriptedFile(async () => { throw new DownloadError(code, `storage failed at ${secretPath}`) })
    const { url } = await appFor(t, file)
    const res = await fetchBytes(url, '/')
    assertErrorResponse(t, res, status)
    t.false((res.body as Buffer).toString().includes(secretPath))
  })
}

test('errors: E_CHANGED at open() is retried once with a fresh stat, then served', async t => {
  const file = new ScriptedFile(goodStat, async (attempt) => {
    if (attempt === 1) throw new DownloadError('E_CHANGED', 'changed')
    return Readable.from([Buffer.from('%PDF-1.4\n')])
  })
  const { url } = await appFor(t, file)
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), '%PDF-1.4\n')
  t.is(file.stats, 2)
  t.is(file.opens, 2)
})

test('errors: E_CHANGED twice in a row → a clean 503', async t => {
  const file = new ScriptedFile(goodStat, async () => { throw new DownloadError('E_CHANGED', 'changed') })
  const { url } = await appFor(t, file)
  assertErrorResponse(t, await fetchBytes(url, '/'), 503)
  t.is(file.opens, 2)
})

// ——— Hygiene of every error the middleware produces (http-semantics.md §9) ———

/** An app serving the fixture hello.txt with every presentation option set, so that leftovers would show. */
async function helloApp (t: ExecutionContext): Promise<string> {
  return await listen(t, downloadApp((ctx) => {
    ctx.body = download(new PathFile(String(ctx.query.p ?? 'hello.txt'), { root: fixtureRoot }), { cacheControl: 'public, max-age=600', attachment: true, filename: 'hello.txt' })
  }))
}

test('errors hygiene: 412 (If-Match fails) carries no file headers and an exact Content-Length', async t => {
  const url = await helloApp(t)
  assertErrorResponse(t, await fetchBytes(url, '/').set('If-Match', '"nope"'), 412)
})

test('errors hygiene: 412 on HEAD too', async t => {
  const url = await helloApp(t)
  assertErrorResponse(t, await fetchBytes(url, '/', 'head').set('If-Match', '"nope"'), 412, { head: true })
})

test('errors hygiene: 416 carries Content-Range bytes */size and nothing else of the file', async t => {
  const url = await helloApp(t)
  assertErrorResponse(t, await fetchBytes(url, '/').set('Range', 'bytes=14-'), 416, { size: 14 })
})

test('errors hygiene: 404 of a download with cacheControl and filename options', async t => {
  const url = await helloApp(t)
  assertErrorResponse(t, await fetchBytes(url, '/?p=missing.txt'), 404)
  assertErrorResponse(t, await fetchBytes(url, '/?p=missing.txt', 'head'), 404, { head: true })
})

test('errors hygiene: headers the app set before the download failed are not kept either', async t => {
  const url = await listen(t, downloadApp((ctx) => {
    ctx.set('Cache-Control', 'public, max-age=600')
    ctx.set('ETag', '"app-set"')
    ctx.body = new PathFile('missing.txt', { root: fixtureRoot })
  }))
  assertErrorResponse(t, await fetchBytes(url, '/'), 404)
})

// ——— After the headers ———

/** A raw GET that reports how the response ended: completely, or aborted mid-body. */
async function rawGet (url: string): Promise<{ status: number, headers: IncomingMessage['headers'], body: Buffer, complete: boolean }> {
  return await new Promise((resolve) => {
    const req = get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      const done = (): void => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete }) }
      res.on('end', done)
      res.on('error', done)
      res.on('aborted', done)
      res.on('close', done)
    })
    // A connection dropped before any response: status 0, nothing complete.
    req.on('error', () => { resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false }) })
  })
}

for (const sized of [true, false]) {
  test(`errors: a source that fails mid-body aborts the response, never a silently short 200 (${sized ? 'Content-Length' : 'chunked'})`, async t => {
    async function * failing (): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1000, 0x61)
      await new Promise((resolve) => setTimeout(resolve, 20))
      throw new Error(`disk failed reading ${secretPath}`)
    }
    const file = new ScriptedFile(async () => (sized ? { size: 5000, ranges: false } : { ranges: false }), async () => Readable.from(failing()))
    const { url } = await appFor(t, file)
    const res = await rawGet(url)
    t.is(res.status, 200)
    t.false(res.complete, 'the client can tell the transfer was cut')
    t.is(res.headers['content-length'], sized ? '5000' : undefined)
    t.true(res.body.length < 5000)
    t.false(res.body.toString().includes(secretPath))
  })
}

const failsAtOnce = (error: Error) => async () => new Readable({ read () { this.destroy(error) } })

for (const [title, error] of [['a DownloadError', new DownloadError('E_UPSTREAM', `origin reset while reading ${secretPath}`)], ['an unknown error', systemError('EIO')]] as const) {
  test(`errors: a source stream that fails before its first byte (${title}) never yields a successful response`, async t => {
    const file = new ScriptedFile(async () => ({ size: 5000, ranges: false }), failsAtOnce(error))
    const { url } = await appFor(t, file)
    const res = await rawGet(url)
    t.false(res.complete && res.status === 200)
    t.false(res.body.toString().includes(secretPath))
  })
}

// Known gap (reported): serve() commits the response as soon as open() resolves, and Koa's pipeline
// then drops the connection when the stream fails before any byte — although no header was sent
// yet, so a clean 502 (design: "upstream failure → 502/503/504 before headers") was still possible.
test('errors: a source stream that fails before its first byte with a DownloadError → its clean status', async t => {
  const file = new ScriptedFile(async () => ({ size: 5000, ranges: false }), failsAtOnce(new DownloadError('E_UPSTREAM', 'origin reset')))
  const { url } = await appFor(t, file)
  assertErrorResponse(t, await fetchBytes(url, '/'), 502)
})

test('a declared Content-Type that cannot be a header value is replaced by the name\'s, not a 500', async t => {
  for (const contentType of ['text/plain; name="résumé €.txt"', 'text/plain\r\nX-Injected: 1', 'text/plain\u0000']) {
    const file = new ScriptedFile(async () => ({ size: 9, contentType }))
    const res = await fetchBytes(await listen(t, downloadApp((ctx) => { ctx.body = file })), '/')
    t.is(res.status, 200, JSON.stringify(contentType))
    t.is(res.headers['content-type'], 'application/pdf')
    t.is(res.headers['x-injected'], undefined)
    t.is(res.body.toString(), '%PDF-1.4\n')
  }
})

test('a wrapper\'s ETag that is not an entity-tag (unquoted, a control character Node would refuse, a tab, trailing space) is left out: 200 with the file and no ETag, not a 500 or a malformed header', async t => {
  for (const etag of ['abc', '"a\u0001b"', '"a\tb"', '"x" ', 'W/x']) {
    const file = new ScriptedFile(async () => ({ size: 9, etag }))
    const url = await listen(t, downloadApp((ctx) => { ctx.body = file }))
    const res = await fetchBytes(url, '/')
    t.is(res.status, 200, JSON.stringify(etag))
    t.is(res.headers.etag, undefined, JSON.stringify(etag))
    t.is(res.body.toString(), '%PDF-1.4\n')
    // Nothing to compare with: If-None-Match never matches, If-Match only as `*`.
    t.is((await fetchBytes(url, '/').set('If-None-Match', '"abc", abc')).status, 200, JSON.stringify(etag))
    t.is((await fetchBytes(url, '/').set('If-Match', '"abc"')).status, 412, JSON.stringify(etag))
  }
  const file = new ScriptedFile(async () => ({ size: 9, etag: 'W/"ok"' }))
  t.is((await fetchBytes(await listen(t, downloadApp((ctx) => { ctx.body = file })), '/')).headers.etag, 'W/"ok"')
})

test('an exposed error (404) serialised by an error handler carries nothing of the original failure; err.cause still holds it', async t => {
  let serialised = ''
  let cause: unknown
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/no-such-secret-name.txt`) })
  app.middleware.unshift(async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      serialised = JSON.stringify(error)
      cause = (error as Error).cause
      ctx.status = (error as HttpError).status
      ctx.body = { error: (error as HttpError).expose ? error : 'internal' }
    }
  })
  const res = await fetchBytes(await listen(t, app), '/')
  t.is(res.status, 404)
  t.false(serialised.includes('no-such-secret-name'), serialised)
  t.false((res.body as Buffer).toString().includes('no-such-secret-name'))
  t.is((cause as DownloadError | undefined)?.code, 'E_NOT_FOUND')
  t.is(((cause as Error | undefined)?.cause as NodeJS.ErrnoException | undefined)?.code, 'ENOENT')
})

test('errors under an error handler that renders its own page: the page gets its own type, not the download\'s (binary for download(), JSON for a bare wrapper); a 416 keeps its Content-Range', async t => {
  const app = downloadApp((ctx) => {
    const file = new PathFile(ctx.path === '/missing' ? `${fixtureRoot}/no-such-file.txt` : `${fixtureRoot}/hello.txt`)
    ctx.body = ctx.query.bare === '1' ? file : download(file)
  })
  app.middleware.unshift(async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      ctx.status = (error as HttpError).status
      ctx.body = `<!doctype html><title>${ctx.status}</title>`
    }
  })
  const url = await listen(t, app)
  const size = (await fetch(`${url}/hello`)).headers.get('content-length')
  for (const bare of ['0', '1']) {
    const cases: Array<[string, RequestInit, number]> = [
      ['/missing', {}, 404],
      ['/hello', { headers: { 'If-Match': '"other"' } }, 412],
      ['/hello', { headers: { Range: 'bytes=999999-' } }, 416]
    ]
    for (const [path, init, status] of cases) {
      const response = await fetch(`${url}${path}?bare=${bare}`, init)
      const where = `${path} bare=${bare} → ${status}`
      t.is(response.status, status, where)
      t.is(response.headers.get('content-type'), 'text/html; charset=utf-8', where)
      t.is(response.headers.get('content-disposition'), null, where)
      t.is(response.headers.get('content-range'), status === 416 ? `bytes */${size}` : null, where)
      t.is(await response.text(), `<!doctype html><title>${status}</title>`, where)
    }
  }
})

test('errors: a source that fails before its first byte with an error naming its own status (a generator throwing createHttpError(410), a stat() throwing a 403) answers that status, clean', async t => {
  const gone = await appFor(t, new VirtualFile((async function * () { yield * []; throw createHttpError(410, `row of ${secretPath} was purged`) })(), { name: 'a.txt' }))
  const res = await fetchBytes(gone.url, '/')
  assertErrorResponse(t, res, 410)
  t.is((res.body as Buffer).toString(), 'Gone')
  const refused = await appFor(t, new ScriptedFile(async () => { throw Object.assign(new Error(`no access to ${secretPath}`), { status: 403, expose: true }) }))
  assertErrorResponse(t, await fetchBytes(refused.url, '/'), 403)
  // Koa's default handler logs only 5xx errors and unexposed ones: this one is neither.
  t.is((refused.errors[0] as HttpError | undefined)?.status, 403)
  t.is((refused.errors[0] as HttpError | undefined)?.expose, true)
  // Its headers go with it, as Koa sends them (RFC 9110 §15.5.2: a 401 sends WWW-Authenticate).
  const challenged = await appFor(t, new VirtualFile((async function * () { yield * []; throw createHttpError(401, { headers: { 'WWW-Authenticate': 'Bearer realm="files"' } }) })(), { name: 'a.txt' }))
  const challenge = await fetchBytes(challenged.url, '/')
  assertErrorResponse(t, challenge, 401)
  t.is(challenge.headers['www-authenticate'], 'Bearer realm="files"')
  // An HTTP client's error carries the origin's status to the app: a 500 that Koa logs, not the origin's 401.
  const upstream = await appFor(t, new ScriptedFile(async () => { throw Object.assign(new Error('Unauthorized'), { status: 401, response: { headers: {} } }) }))
  assertErrorResponse(t, await fetchBytes(upstream.url, '/'), 500)
})

test('errors: a stat() failing with an error that declares a redirect status (a wrapped client error for the origin\'s 302, Koa-style expose set) is a clean 500, not a 302 without a Location', async t => {
  for (const [status, expose] of [[302, false], [301, true], [304, true]] as const) {
    const { url, errors } = await appFor(t, new ScriptedFile(async () => { throw Object.assign(new Error(`origin answered ${status} for ${secretPath}`), { status, expose }) }))
    const res = await fetchBytes(url, '/')
    assertErrorResponse(t, res, 500)
    t.is((errors[0] as HttpError | undefined)?.status, 500, String(status))
    t.is((errors[0] as HttpError | undefined)?.expose, false, String(status))
  }
})

test('errors: a wrapper\'s stat() size that is not a byte count is a clean 502 on GET, HEAD and Range (no Content-Length: -1 or Content-Range …/Infinity); a lastModified that is not a Date is left out, not a 500', async t => {
  for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, '10' as unknown as number]) {
    const { url } = await appFor(t, new ScriptedFile(async () => ({ size })))
    for (const [method, headers] of [['GET', {}], ['HEAD', {}], ['GET', { range: 'bytes=1-2' }]] as const) {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        get(url + '/', { method, headers }, resolve).on('error', reject)
      })
      res.resume()
      t.is(res.statusCode, 502, `${String(size)} ${method} ${JSON.stringify(headers)}`)
      t.is(res.headers['content-range'], undefined)
    }
  }
  for (const lastModified of [1_700_000_000_000, '2026-01-01', {}] as unknown as Date[]) {
    const { url } = await appFor(t, new ScriptedFile(async () => ({ size: 9, lastModified })))
    const res = await fetchBytes(url, '/')
    t.is(res.status, 200, String(lastModified))
    t.is(res.headers['last-modified'], undefined)
    t.is((res.body as Buffer).toString(), '%PDF-1.4\n')
  }
})
