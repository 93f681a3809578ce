import test from 'ava'
import type { ExecutionContext } from 'ava'
import { HttpError } from 'http-errors'
import Koa from 'koa'
import type { Context } from 'koa'
import { join } from 'node:path'
import { nginx } from '../source/backends/nginx.ts'
import { Download } from '../source/download.ts'
import { downloads } from '../source/downloads.ts'
import { PathFile } from '../source/path-file.ts'
import { sendfile } from '../source/sendfile.ts'
import type { SendfileOptions } from '../source/sendfile.ts'
import { assertErrorResponse } from './helpers/error-response.ts'
import { decoySecret, downloadApp, fixtureRoot } from './helpers/koa.ts'
import { fetchBytes, listen } from './helpers/listen.ts'

/** A Koa app WITHOUT downloads(): the handler calls sendfile() and nothing else serves the body. */
async function bareApp (t: ExecutionContext, handler: (ctx: Context) => Promise<void>): Promise<string> {
  const app = new Koa()
  app.silent = true
  app.use(handler)
  return await listen(t, app)
}

/** sendfile(ctx, ?p, options) in an app without downloads(). */
async function sendfileApp (t: ExecutionContext, options?: SendfileOptions): Promise<string> {
  return await bareApp(t, async (ctx) => { await sendfile(ctx, String(ctx.query.p), options) })
}

const q = (path: string): string => `/?p=${encodeURIComponent(path)}`

test('sendfile: inline by default, with the filename, the type, the validators and the bytes', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot })
  const res = await fetchBytes(url, q('hello.txt'))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
  t.is(res.headers['content-disposition'], 'inline; filename="hello.txt"')
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(res.headers['content-length'], '14')
  t.is(res.headers['accept-ranges'], 'bytes')
  t.regex(String(res.headers.etag), /^"[0-9a-f]+-e"$/)
  t.truthy(res.headers['last-modified'])
})

test('sendfile: attachment: undefined is the default, inline — streamed and offloaded', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot, attachment: undefined })
  const res = await fetchBytes(url, q('hello.txt'))
  t.is(res.status, 200)
  t.is(res.headers['content-disposition'], 'inline; filename="hello.txt"')
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
  const offloaded = await listen(t, downloadApp(async (ctx) => {
    await sendfile(ctx, 'hello.txt', { root: fixtureRoot, attachment: undefined })
  }, { rules: [nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] }))
  const viaRule = await fetchBytes(offloaded, '/')
  t.is(viaRule.headers['x-accel-redirect'], '/protected/hello.txt')
  t.is(viaRule.headers['content-disposition'], 'inline; filename="hello.txt"')
})

test('sendfile: attachment: true → attachment with the filename', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot, attachment: true })
  const res = await fetchBytes(url, q('ünïcödé.txt'))
  t.is(res.status, 200)
  t.is(res.headers['content-disposition'], "attachment; filename=\"unicode.txt\"; filename*=UTF-8''%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt")
  t.is((res.body as Buffer).toString(), 'unicode name\n')
})

test('sendfile: the filename option names the download and decides its looked-up type', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot, filename: 'numbers.csv' })
  const res = await fetchBytes(url, q('digits.txt'))
  t.is(res.status, 200)
  t.is(res.headers['content-disposition'], 'inline; filename="numbers.csv"')
  t.is(res.headers['content-type'], 'text/csv; charset=utf-8')
  t.is(res.headers['content-length'], '1000')
})

test('sendfile: an explicit contentType is sent verbatim', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot, contentType: 'application/x-report' })
  const res = await fetchBytes(url, q('report.pdf'))
  t.is(res.status, 200)
  t.is(res.headers['content-type'], 'application/x-report')
  t.is(res.headers['content-disposition'], 'inline; filename="report.pdf"')
  t.is((res.body as Buffer).toString(), '%PDF-1.4\n% tiny\n')
})

test('sendfile: cacheControl is sent with the file', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot, cacheControl: 'private, max-age=60' })
  const res = await fetchBytes(url, q('hello.txt'))
  t.is(res.headers['cache-control'], 'private, max-age=60')
})

test('sendfile: without root, an absolute path is served', async t => {
  const url = await sendfileApp(t)
  const res = await fetchBytes(url, q(join(fixtureRoot, 'snow ☃', 'nested.txt')))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'snowman\n')
  t.is(res.headers['content-disposition'], 'inline; filename="nested.txt"')
})

test('sendfile: without downloads(), Range, HEAD and 304 work (full HTTP semantics)', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot })
  const ranged = await fetchBytes(url, q('digits.txt')).set('Range', 'bytes=10-14')
  t.is(ranged.status, 206)
  t.is(ranged.headers['content-range'], 'bytes 10-14/1000')
  t.is((ranged.body as Buffer).toString(), '01234')

  const head = await fetchBytes(url, q('digits.txt'), 'head')
  t.is(head.status, 200)
  t.is(head.headers['content-length'], '1000')
  t.is(head.headers['content-disposition'], 'inline; filename="digits.txt"')

  const cached = await fetchBytes(url, q('digits.txt')).set('If-None-Match', String(head.headers.etag))
  t.is(cached.status, 304)
  t.is(cached.headers['content-disposition'], undefined)
})

test('sendfile: without downloads(), the body is the bytes as soon as the call returns (not a Download)', async t => {
  let body: unknown
  const url = await bareApp(t, async (ctx) => {
    await sendfile(ctx, 'hello.txt', { root: fixtureRoot })
    body = ctx.body
    ctx.set('X-After', 'yes')
  })
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
  t.is(res.headers['x-after'], 'yes')
  t.false(body instanceof Download)
  t.true(Buffer.isBuffer(body) || (typeof body === 'object' && body !== null && 'pipe' in body))
})

test('sendfile: without downloads(), a missing file rejects with a 404 HttpError the handler can catch', async t => {
  let caught: unknown
  const url = await bareApp(t, async (ctx) => {
    try {
      await sendfile(ctx, 'missing.txt', { root: fixtureRoot })
    } catch (error) {
      caught = error
      ctx.status = 404
      ctx.body = 'no such report'
    }
  })
  const res = await fetchBytes(url, '/')
  t.is(res.status, 404)
  t.is((res.body as Buffer).toString(), 'no such report')
  t.true(caught instanceof HttpError)
  t.is((caught as HttpError).status, 404)
})

const outside: Array<[string, string]> = [
  ['a parent traversal', '../secret.txt'],
  ['a traversal through a subdirectory', 'a/../../secret.txt'],
  ['the absolute path of the decoy', decoySecret],
  ['a literal %2e%2e name', '%2e%2e/secret.txt'],
  ['a literal ..%2f name', '..%2fsecret.txt'],
  ['a backslash traversal', '..\\secret.txt'],
  ['a NUL byte', 'hello.txt\0.pdf'],
  ['a symlink that resolves outside the root', 'escape-link.txt'],
  ['a missing file', 'missing.txt'],
  ['a directory', 'subdir'],
  ['a 5000-character name', 'y'.repeat(5000)]
]

for (const [title, path] of outside) {
  test(`sendfile confinement: ${title} → 404 without file headers, the decoy never sent`, async t => {
    const url = await sendfileApp(t, { root: fixtureRoot })
    const res = await fetchBytes(url, q(path))
    assertErrorResponse(t, res, 404)
    t.false((res.body as Buffer).toString('latin1').includes('TOP SECRET'))
  })
}

test('sendfile confinement: a symlink inside the root is served', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot })
  const res = await fetchBytes(url, q('inside-link.txt'))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
})

test('sendfile followSymlinks: passed on to the PathFile — a symlink out of the root is followed, ".." still refused', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot, followSymlinks: true })
  const followed = await fetchBytes(url, q('escape-link.txt'))
  t.is(followed.status, 200)
  t.is((followed.body as Buffer).toString(), 'TOP SECRET\n')
  assertErrorResponse(t, await fetchBytes(url, q('../secret.txt')), 404)
})

test('sendfile: with downloads() mounted, the body is left to the middleware as a Download', async t => {
  let body: unknown
  const url = await listen(t, downloadApp(async (ctx) => {
    await sendfile(ctx, 'hello.txt', { root: fixtureRoot, filename: 'hi.txt' })
    body = ctx.body
  }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'Hello, world!\n')
  t.is(res.headers['content-disposition'], 'inline; filename="hi.txt"')
  t.true(body instanceof Download)
  t.is((body as Download).options.attachment, false)
  t.is((body as Download).options.filename, 'hi.txt')
})

test('sendfile: with downloads({ rules }) mounted, the file is offloaded (X-Accel-Redirect, empty body, inline)', async t => {
  const url = await listen(t, downloadApp(async (ctx) => {
    await sendfile(ctx, String(ctx.query.p), { root: fixtureRoot })
  }, { rules: [nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] }))
  const res = await fetchBytes(url, q('snow ☃/nested.txt'))
  t.is(res.status, 200)
  t.is(res.headers['x-accel-redirect'], '/protected/snow%20%E2%98%83/nested.txt')
  t.is(res.headers['content-disposition'], 'inline; filename="nested.txt"')
  t.is(res.headers['content-length'], '0')
  t.is((res.body as Buffer).length, 0)

  const escaped = await fetchBytes(url, q('../secret.txt'))
  assertErrorResponse(t, escaped, 404)
  t.is(escaped.headers['x-accel-redirect'], undefined)
})

test('sendfile: with downloads() mounted, a fallback checks the file with PathFile.stat() first (the README\'s pattern): the fallback for a missing or escaping name, the file itself otherwise', async t => {
  const url = await listen(t, downloadApp(async (ctx) => {
    const name = String(ctx.query.p)
    try {
      await new PathFile(name, { root: fixtureRoot }).stat()
    } catch (error) {
      if ((error as { status?: number }).status !== 404) throw error
      await sendfile(ctx, 'hello.txt', { root: fixtureRoot, filename: 'fallback.txt' })
      return
    }
    await sendfile(ctx, name, { root: fixtureRoot })
  }, { rules: [nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] }))
  for (const missing of ['no-such-file.txt', '../secret.txt', 'snow ☃']) {
    const res = await fetchBytes(url, q(missing))
    t.is(res.status, 200, missing)
    t.is(res.headers['x-accel-redirect'], '/protected/hello.txt', missing)
    t.is(res.headers['content-disposition'], 'inline; filename="fallback.txt"', missing)
  }
  const found = await fetchBytes(url, q('snow ☃/nested.txt'))
  t.is(found.headers['x-accel-redirect'], '/protected/snow%20%E2%98%83/nested.txt')
  t.is(found.headers['content-disposition'], 'inline; filename="nested.txt"')
})

test('sendfile: bad options are TypeErrors naming the option', async t => {
  const ctx = {} as Context
  await t.throwsAsync(sendfile(ctx, 'x', { attachment: 'yes' } as unknown as SendfileOptions), { instanceOf: TypeError, message: /sendfile\(\): attachment must be a boolean/ })
  await t.throwsAsync(sendfile(ctx, 'x', { filename: 1 } as unknown as SendfileOptions), { instanceOf: TypeError, message: /sendfile\(\): filename must be a string/ })
  await t.throwsAsync(sendfile(ctx, 'x', { contentType: 'text/plain\r\nX-Evil: 1' }), { instanceOf: TypeError, message: /sendfile\(\): contentType/ })
  await t.throwsAsync(sendfile(ctx, 'x', { roots: '/srv' } as unknown as SendfileOptions), { instanceOf: TypeError, message: /sendfile\(\): unknown option "roots"/ })
  await t.throwsAsync(sendfile(ctx, 'x', { root: '' }), { instanceOf: TypeError, message: /root must be a non-empty string/ })
  await t.throwsAsync(sendfile(ctx, 'x', null as unknown as SendfileOptions), { instanceOf: TypeError, message: /sendfile\(\): options must be an object/ })
})

test('sendfile: an absolute path inside root is served as is (django-sendfile style)', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot })
  const res = await fetchBytes(url, q(join(fixtureRoot, 'subdir', 'file.txt')))
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'sub\n')
  t.is(res.headers['content-disposition'], 'inline; filename="file.txt"')
})

test('sendfile: an absolute path inside root cannot climb out with dot segments', async t => {
  const url = await sendfileApp(t, { root: fixtureRoot })
  const res = await fetchBytes(url, q(`${fixtureRoot}/subdir/../../secret.txt`))
  assertErrorResponse(t, res, 404)
  t.false((res.body as Buffer).toString().includes('TOP SECRET'))
})

test('sendfile: called by a middleware above downloads(), after it has run (an SPA fallback for 404s), it streams the file itself', async t => {
  const app = new Koa()
  app.silent = true
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(async (ctx, next) => {
    await next()
    if (ctx.status === 404) await sendfile(ctx, 'hello.txt', { root: fixtureRoot })
  })
  app.use(downloads())
  app.use((ctx) => { if (ctx.path === '/report') ctx.body = new PathFile('digits.txt', { root: fixtureRoot }) })
  const url = await listen(t, app)
  const fallback = await fetchBytes(url, '/some/client/route')
  t.is(fallback.status, 200)
  t.is((fallback.body as Buffer).toString(), 'Hello, world!\n')
  t.is(fallback.headers['content-disposition'], 'inline; filename="hello.txt"')
  // The route's own download is still served by downloads().
  const report = await fetchBytes(url, '/report')
  t.is(report.status, 200)
  t.is((report.body as Buffer).length, 1000)
  t.deepEqual(errors, [])
})

test('sendfile: the koa-static pattern — try the file, let a 404 stand — answers 404 for a missing file (GET and HEAD) and the file when it exists', async t => {
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(async (ctx, next) => {
    await next()
    if (ctx.body != null || ctx.status !== 404) return
    try {
      // ctx.path is not percent-decoded: `/some%20thing.txt` names "some thing.txt" once decoded.
      await sendfile(ctx, decodeURIComponent(ctx.path), { root: fixtureRoot })
    } catch (error) {
      if ((error as HttpError).status !== 404) throw error
    }
  })
  app.use(() => {})
  const url = await listen(t, app)
  const missing = await fetchBytes(url, '/no-such-file.txt')
  t.is(missing.status, 404)
  t.is((missing.body as Buffer).toString(), 'Not Found')
  t.is(missing.headers['content-disposition'], undefined)
  t.is((await fetchBytes(url, '/no-such-file.txt', 'head')).status, 404)
  const found = await fetchBytes(url, '/hello.txt')
  t.is(found.status, 200)
  t.is((found.body as Buffer).toString(), 'Hello, world!\n')
  const encoded = await fetchBytes(url, '/some%20thing.txt')
  t.is(encoded.status, 200)
  t.is((encoded.body as Buffer).toString(), 'some thing\n')
  t.deepEqual(errors, [])
})

test('sendfile: a misspelt option is named among all of sendfile()\'s (root included); a call after the headers were sent, or a second file for one response, is refused; a fallback after a 404 works', async t => {
  const thrown: string[] = []
  const app = new Koa()
  app.silent = true
  app.use(async (ctx) => {
    try {
      if (ctx.path === '/misspelt') await sendfile(ctx, 'hello.txt', { rot: fixtureRoot } as SendfileOptions)
      else if (ctx.path === '/late') {
        ctx.res.writeHead(200, { 'Content-Type': 'text/plain' })
        ctx.res.write('EARLY-')
        await sendfile(ctx, 'hello.txt', { root: fixtureRoot })
      } else if (ctx.path === '/twice') {
        await sendfile(ctx, 'hello.txt', { root: fixtureRoot })
        await sendfile(ctx, 'empty.txt', { root: fixtureRoot })
      } else {
        try {
          await sendfile(ctx, 'no-such-file.txt', { root: fixtureRoot })
        } catch (error) {
          if ((error as HttpError).status !== 404) throw error
          await sendfile(ctx, 'hello.txt', { root: fixtureRoot })
        }
      }
    } catch (error) {
      thrown.push((error as Error).message)
      if (ctx.res.headersSent) ctx.res.end()
      else throw error
    }
  })
  const url = await listen(t, app)
  t.is((await fetchBytes(url, '/misspelt')).status, 500)
  t.is(thrown.shift(), 'sendfile(): unknown option "rot" (allowed: root, followSymlinks, statCache, attachment, filename, contentType, cacheControl, sandbox)')
  const late = await fetch(url + '/late')
  t.is(await late.text(), 'EARLY-')
  t.is(thrown.shift(), 'sendfile(): the response headers were already sent')
  t.is((await fetchBytes(url, '/twice')).status, 500)
  t.is(thrown.shift(), 'sendfile(): this response already has a file (sendfile() was called twice)')
  const fallback = await fetchBytes(url, '/fallback', 'get')
  t.is(fallback.status, 200)
  t.is((fallback.body as Buffer).toString(), 'Hello, world!\n')
  t.is(fallback.headers['content-type'], 'text/plain; charset=utf-8')
  t.deepEqual(thrown, [])
})
