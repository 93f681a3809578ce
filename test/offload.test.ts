import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Router from '@koa/router'
import test from 'ava'
import Koa from 'koa'
import request from 'supertest'
import { apache } from '../source/backends/apache.ts'
import { caddy } from '../source/backends/caddy.ts'
import { internalRedirect } from '../source/backends/internal-redirect.ts'
import { lighttpd } from '../source/backends/lighttpd.ts'
import { negotiated } from '../source/backends/negotiated.ts'
import { nginx } from '../source/backends/nginx.ts'
import { download } from '../source/download.ts'
import { downloads } from '../source/downloads.ts'
import { offload } from '../source/offload.ts'
import { PathFile } from '../source/path-file.ts'
import { serve } from '../source/serve.ts'
import type { DownloadFile, StatOptions } from '../source/types.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import { downloadApp, fixtureRoot } from './helpers/koa.ts'

const offloadHeaders = ['x-accel-redirect', 'x-sendfile', 'x-accel-charset', 'x-accel-buffering', 'x-accel-limit-rate', 'x-accel-expires']
const protectedNginx = nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })

function noOffloadHeaders (headers: Record<string, unknown>): string[] {
  return offloadHeaders.filter((name) => name in headers)
}

/** A file known only by its URL (storage object, remote file). */
function urlFile (url: string, name = 'object.bin'): DownloadFile {
  return {
    name,
    url,
    stat: async () => ({ size: 3 }),
    open: async () => { throw new Error('an offloaded file is never opened') }
  }
}

test('nginx: offloaded response is 200 with an empty body, Content-Length 0 and X-Accel-Redirect', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/digits.txt`) }, { rules: [protectedNginx] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '0')
  t.is(res.text, '')
  t.is(res.headers['x-accel-redirect'], '/protected/digits.txt')
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(res.headers['content-disposition'], 'attachment; filename="digits.txt"')
  t.is(res.headers['x-accel-charset'], undefined, 'the Content-Type carries its charset itself')
  t.is(res.headers.etag, undefined, 'nginx computes its own validators')
  t.is(res.headers['last-modified'], undefined)
  t.is(res.headers['accept-ranges'], undefined)
})

test('nginx: Content-Type and Content-Disposition come from the real name, never from the encoded value', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/snow ☃/nested.txt`, { name: 'résumé 100%.txt' }) }, { rules: [protectedNginx] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/protected/snow%20%E2%98%83/nested.txt')
  t.is(res.headers['content-disposition'], 'attachment; filename="resume 100_.txt"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9%20100%25.txt')
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
})

test('nginx: download() options (inline, filename, contentType, cacheControl) shape the offloaded response', async (t) => {
  const app = downloadApp((ctx) => {
    ctx.body = download(new PathFile(`${fixtureRoot}/report.pdf`), { attachment: false, filename: 'Q3 report.pdf', cacheControl: 'private, max-age=60' })
  }, { rules: [protectedNginx] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/protected/report.pdf')
  t.is(res.headers['content-type'], 'application/pdf')
  t.is(res.headers['content-disposition'], 'inline; filename="Q3 report.pdf"')
  t.is(res.headers['cache-control'], 'private, max-age=60')
  t.is(res.headers['x-accel-charset'], undefined, 'no charset known → no X-Accel-Charset (never "None")')
})

test('offload keeps the headers the app set (Cache-Control, Set-Cookie, custom) and replaces a stale Content-Length', async (t) => {
  const app = downloadApp((ctx) => {
    ctx.set('Cache-Control', 'no-store')
    ctx.set('X-App', 'kept')
    ctx.cookies.set('seen', '1')
    ctx.set('Content-Length', '9999')
    ctx.body = new PathFile(`${fixtureRoot}/hello.txt`)
  }, { rules: [protectedNginx] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 200)
  t.is(res.headers['cache-control'], 'no-store')
  t.is(res.headers['x-app'], 'kept')
  t.regex(String(res.headers['set-cookie']), /^seen=1/)
  t.is(res.headers['content-length'], '0')
  t.is(res.headers['x-accel-redirect'], '/protected/hello.txt')
})

test('HEAD is offloaded with the same headers and no body', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/ünïcödé.txt`) }, { rules: [protectedNginx] })
  const res = await request(app.callback()).head('/')
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '0')
  t.is(res.headers['x-accel-redirect'], '/protected/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt')
  t.falsy(res.text)
  t.regex(res.headers['content-disposition'] ?? '', /^attachment; filename=/)
})

test('no rule covers the file → streamed by serve(), no offload header', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }, { rules: [nginx({ sourceDir: `${fixtureRoot}/subdir`, destinationUrl: '/p/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 200)
  t.is(res.text, await readFile(`${fixtureRoot}/hello.txt`, 'utf8'))
  t.deepEqual(noOffloadHeaders(res.headers), [])
})

test('segment boundary: sourceDir /x/sub does not cover /x/subdir/file.txt', async (t) => {
  const rule = nginx({ sourceDir: `${fixtureRoot}/sub`, destinationUrl: '/p/' })
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/subdir/file.txt`) }, { rules: [rule] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 200)
  t.is(res.headers['x-accel-redirect'], undefined)
  t.not(res.headers['content-length'], '0')
})

test('memory and generated files are never offloaded, even by a rule for /', async (t) => {
  const rules = [nginx({ sourceDir: '/', sourceUrl: 'http://127.0.0.1/', destinationUrl: '/p/' })]
  const app = downloadApp((ctx) => {
    ctx.body = ctx.path === '/gen'
      ? new VirtualFile((async function * () { yield 'gen' })(), { name: 'g.txt' })
      : new VirtualFile('in memory', { name: 'm.txt' })
  }, { rules })
  const memory = await request(app.callback()).get('/')
  t.is(memory.text, 'in memory')
  t.deepEqual(noOffloadHeaders(memory.headers), [])
  const generated = await request(app.callback()).get('/gen')
  t.is(generated.text, 'gen')
  t.deepEqual(noOffloadHeaders(generated.headers), [])
})

test('a path refused by PathFile (outside its root) is never offloaded', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile('../secret.txt', { root: fixtureRoot }) }, { rules: [nginx({ sourceDir: '/', destinationUrl: '/p/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 404)
  t.deepEqual(noOffloadHeaders(res.headers), [])
})

test('methods other than GET and HEAD are not offloaded', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }, { rules: [protectedNginx] })
  for (const method of ['post', 'put', 'delete'] as const) {
    const res = await request(app.callback())[method]('/')
    t.is(res.headers['x-accel-redirect'], undefined, method)
  }
})

test('a status other than 200 set by the route is left to serve()', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`); ctx.status = 203 }, { rules: [protectedNginx] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], undefined)
})

test('first matching rule wins, across backends', async (t) => {
  const sub = apache({ sourceDir: `${fixtureRoot}/subdir`, destinationDir: '/srv/sub' })
  const all = nginx({ sourceDir: fixtureRoot, destinationUrl: '/all/' })
  const handler = (ctx: Koa.Context): void => { ctx.body = new PathFile(`${fixtureRoot}${ctx.path}`) }
  const specificFirst = downloadApp(handler, { rules: [sub, all] })
  const a = await request(specificFirst.callback()).get('/subdir/file.txt')
  t.is(a.headers['x-sendfile'], '/srv/sub/file.txt')
  t.is(a.headers['x-accel-redirect'], undefined)
  const b = await request(specificFirst.callback()).get('/hello.txt')
  t.is(b.headers['x-accel-redirect'], '/all/hello.txt')
  t.is(b.headers['x-sendfile'], undefined)
  const generalFirst = downloadApp(handler, { rules: [all, sub] })
  const c = await request(generalFirst.callback()).get('/subdir/file.txt')
  t.is(c.headers['x-accel-redirect'], '/all/subdir/file.txt')
  t.is(c.headers['x-sendfile'], undefined)
})

test('per route: router.get(path, downloads({ rules }), handler) offloads only that route', async (t) => {
  const app = new Koa()
  const router = new Router()
  const handler = (ctx: Koa.Context): void => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }
  router.get('/offloaded', downloads({ rules: [protectedNginx] }), handler)
  router.get('/lighttpd', downloads({ rules: lighttpd({ sourceDir: fixtureRoot, destinationDir: '/srv/www' }) }), handler)
  router.get('/streamed', downloads(), handler)
  app.use(router.routes())
  const a = await request(app.callback()).get('/offloaded')
  t.is(a.headers['x-accel-redirect'], '/protected/hello.txt')
  const b = await request(app.callback()).get('/lighttpd')
  t.is(b.headers['x-sendfile'], '/srv/www/hello.txt')
  const c = await request(app.callback()).get('/streamed')
  t.is(c.text, 'Hello, world!\n')
  t.deepEqual(noOffloadHeaders(c.headers), [])
})

test('app-wide: app.use(downloads({ rules })) in front of a router', async (t) => {
  const app = new Koa()
  const router = new Router()
  router.get('/f/:name', (ctx) => { ctx.body = new PathFile(ctx.params.name ?? '', { root: fixtureRoot }) })
  app.use(downloads({ rules: [protectedNginx] }))
  app.use(router.routes())
  const res = await request(app.callback()).get('/f/some%20thing.txt')
  t.is(res.headers['x-accel-redirect'], '/protected/some%20thing.txt')
  t.is(res.headers['content-disposition'], 'attachment; filename="some thing.txt"')
})

test('nested: a route\'s own downloads({ rules }) answers its downloads itself; the app-wide rules do not apply on that route', async (t) => {
  const app = new Koa()
  const router = new Router()
  const handler = (ctx: Koa.Context): void => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }
  // The app-wide rule covers the file, the route's rule does not: the route's serve() streams it.
  app.use(downloads({ rules: [protectedNginx] }))
  router.get('/own', downloads({ rules: lighttpd({ sourceDir: '/srv/elsewhere', destinationDir: '/srv/elsewhere' }) }), handler)
  router.get('/both', downloads({ rules: [lighttpd({ sourceDir: '/srv/elsewhere', destinationDir: '/srv/elsewhere' }), protectedNginx] }), handler)
  router.get('/app', handler)
  app.use(router.routes())
  const own = await request(app.callback()).get('/own')
  t.is(own.status, 200)
  t.is(own.text, 'Hello, world!\n')
  t.deepEqual(noOffloadHeaders(own.headers), [])
  // Listing the app-wide rule in the route's rules too gives it back.
  t.is((await request(app.callback()).get('/both')).headers['x-accel-redirect'], '/protected/hello.txt')
  t.is((await request(app.callback()).get('/app')).headers['x-accel-redirect'], '/protected/hello.txt')
})

test('serve options shape streamed responses only: with ranges: false and maxRanges: 1, a Range request is still offloaded as it is (the proxy answers the Range)', async (t) => {
  const app = new Koa()
  app.use(downloads({ ranges: false, maxRanges: 1, rules: [protectedNginx] }))
  app.use((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) })
  const res = await request(app.callback()).get('/').set('Range', 'bytes=0-1,3-4')
  t.is(res.status, 200)
  t.is(res.headers['x-accel-redirect'], '/protected/hello.txt')
  t.is(res.headers['content-length'], '0')
  t.is(res.headers['accept-ranges'], undefined)
})

test('offload() alone in front of a route works with a bare file wrapper too', async (t) => {
  const app = new Koa()
  app.use(offload(protectedNginx))
  app.use((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/protected/hello.txt')
  t.is(res.headers['content-length'], '0')
})

test('offload() and downloads(): rules whose destinations coincide or nest on one proxy → TypeError at setup; duplicates are fine', (t) => {
  // The proxy would serve B's x.txt as A's x.txt (same location), or A/sub/x.txt for C's x.txt (nested).
  const same = [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }), nginx({ sourceDir: '/srv/b', destinationUrl: '/p/' })]
  const nested = [caddy({ sourceDir: '/srv/a', destinationUrl: '/p/' }), caddy({ sourceDir: '/srv/c', destinationUrl: '/p/sub/' })]
  const redirects = [internalRedirect({ sourceDir: '/srv/a', destinationUrl: '/private/sub/' }), internalRedirect({ sourceDir: '/srv/c', destinationUrl: '/private/' })]
  t.throws(() => offload(same), { instanceOf: TypeError, message: /^offload\(\): rules\[0\] \(sourceDir \/srv\/a → \/p\/\) and rules\[1\] \(sourceDir \/srv\/b → \/p\/\) have the same destinationUrl on the same proxy/ })
  t.throws(() => downloads({ rules: nested }), { instanceOf: TypeError, message: /^downloads\(\): rules\[0\] .* and rules\[1\] .* have nested destinationUrls .*give each source its own destinationUrl/ })
  t.throws(() => downloads({ rules: redirects }), { instanceOf: TypeError, message: /nested destinationUrls/ })
  t.throws(() => offload([nginx({ remote: true, destinationUrl: '/_remote/' }), nginx({ sourceUrl: 'https://h/a/', destinationUrl: '/_remote/a/' })]), { instanceOf: TypeError, message: /nested/ })
  t.notThrows(() => downloads({ rules: [same[0]!, same[0]!, nginx({ sourceDir: '/srv/a', sourceUrl: 'https://h/a/', destinationUrl: '/p/' })] }))
  t.notThrows(() => offload([same[0]!, caddy({ sourceDir: '/srv/b', destinationUrl: '/p/', header: 'X-Caddy-File' }), internalRedirect({ sourceDir: '/srv/c', destinationUrl: '/p/' }), apache({ sourceDir: '/srv/d', destinationDir: '/p' })]),
    'different headers: X-Accel-Redirect, Caddy matchers on another header, the Location space')
  // nginx() and caddy() both send X-Accel-Redirect: the proxy in front dispatches both rules' values.
  t.throws(() => offload([same[0]!, caddy({ sourceDir: '/srv/b', destinationUrl: '/p/' })]), { instanceOf: TypeError, message: /same destinationUrl on the same proxy/ })
})

test('offload() and downloads(): nginx rules sharing a location with different charsets → TypeError at setup; other settings may differ', (t) => {
  // The location knows one charset (`source_charset`), from the first rule that sets one: another
  // rule's X-Accel-Charset would be unknown to nginx, dropped with an error logged on each request.
  const utf8 = nginx({ sourceDir: '/srv/a', destinationUrl: '/p/', charset: 'utf-8' })
  const latin = nginx({ sourceDir: '/srv/a', sourceUrl: 'https://h/a/', destinationUrl: '/p/', charset: 'iso-8859-1' })
  t.throws(() => offload([utf8, latin]), {
    instanceOf: TypeError,
    message: 'offload(): rules[0] (charset "utf-8") and rules[1] (charset "iso-8859-1") share the nginx location /p/, which has a single `source_charset` line, ' +
      'so one rule\'s X-Accel-Charset would be ignored: give them the same charset, or each its own destinationUrl'
  })
  t.throws(() => downloads({ rules: [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/', charset: 'utf-8' }), nginx({ sourceDir: '/srv/a', destinationUrl: '/p', charset: 'koi8-r' })] }),
    { instanceOf: TypeError, message: /rules\[0\] \(charset "utf-8"\) and rules\[1\] \(charset "koi8-r"\) share the nginx location \/p\// })
  // Names are case-insensitive; a rule without a charset (or false) sends none and shares a location
  // with any; buffering, limitRate and expires are headers each rule sends with its own responses.
  t.notThrows(() => offload([utf8, nginx({ sourceDir: '/srv/a', destinationUrl: '/p/', charset: 'UTF-8', limitRate: 1024, buffering: false, expires: 60 })]))
  t.notThrows(() => offload([nginx({ sourceDir: '/srv/a', destinationUrl: '/p/', charset: false }), latin, nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' })]))
  t.notThrows(() => offload([utf8, nginx({ sourceDir: '/srv/b', destinationUrl: '/q/', charset: 'koi8-r' }), caddy({ sourceDir: '/srv/a', destinationUrl: '/p/', header: 'X-Caddy-File' })]), 'other locations and proxies')
})

test('offload() and downloads(): a negotiated() mapping on another rule\'s nginx location → TypeError at setup (nginx would serve the other directory\'s file)', (t) => {
  const secret = nginx({ sourceDir: '/srv/secret', destinationUrl: '/p/' })
  const publicReports = negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/public-reports': '/p/' } })
  t.throws(() => downloads({ rules: [secret, publicReports] }), {
    instanceOf: TypeError,
    message: /^downloads\(\): rules\[0\] \(sourceDir \/srv\/secret → \/p\/\) and rules\[1\] mapping \(sourceDir \/srv\/public-reports → \/p\/\) have the same destinationUrl on the same proxy/
  })
  t.throws(() => offload([negotiated({ allow: ['X-Accel-Redirect', 'X-Sendfile'], mapping: { '/srv/public-reports': '/p/sub/' } }), caddy({ sourceDir: '/srv/secret', destinationUrl: '/p/' })]),
    { instanceOf: TypeError, message: /^offload\(\): rules\[0\] mapping .* and rules\[1\] .* have nested destinationUrls/ })
  t.notThrows(() => downloads({ rules: [secret, negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/secret': '/p/', '/srv/public-reports': '/r/' } })] }))
})

test('offload(): anything but rules → TypeError at setup', (t) => {
  t.throws(() => offload([{} as never]), { instanceOf: TypeError, message: /^offload\(\): rules\[0\] must be an offload rule/ })
  t.throws(() => offload(null as never), { instanceOf: TypeError, message: /^offload\(\): rules\[0\]/ })
  // downloads({ rules }) names itself, the function the user called
  t.throws(() => downloads({ rules: [{} as never] }), { instanceOf: TypeError, message: /^downloads\(\): rules\[0\] must be an offload rule/ })
})

test('apache: X-Sendfile with the raw path, plus the file\'s ETag and Last-Modified', async (t) => {
  const file = new PathFile(`${fixtureRoot}/hello.txt`)
  const stat = await file.stat()
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }, { rules: [apache({ sourceDir: fixtureRoot, destinationDir: '/srv/files' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '0')
  t.is(res.headers['x-sendfile'], '/srv/files/hello.txt')
  t.is(res.headers.etag, stat.etag)
  t.is(res.headers['last-modified'], stat.lastModified?.toUTCString())
})

test('apache and lighttpd under downloads({ etag: false }) or ({ lastModified: false }), or serve() and offload() mounted apart: the app evaluates the preconditions with serve()\'s validators — a revalidation with the one serve() ignores is offloaded (the proxy answers it), never left to serve() to stream the whole file', async (t) => {
  const stat = await new PathFile(`${fixtureRoot}/hello.txt`).stat()
  const etag = stat.etag ?? ''
  const date = stat.lastModified?.toUTCString() ?? ''
  for (const rule of [apache({ sourceDir: fixtureRoot, destinationDir: '/srv/files' }), lighttpd({ sourceDir: fixtureRoot, destinationDir: '/srv/files' })]) {
    for (const [options, apart] of [[{ etag: false }, false], [{ lastModified: false }, false], [{ etag: false }, true], [{ lastModified: false }, true]] as const) {
      const label = `${rule.backend} ${JSON.stringify(options)}${apart ? ' serve() + offload()' : ''}`
      const handler = (ctx: Koa.Context): void => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }
      const app = apart ? new Koa().use(serve(options)).use(offload(rule)).use(handler) : downloadApp(handler, { rules: [rule], ...options })
      const plain = await request(app.callback()).get('/')
      t.is(plain.headers['x-sendfile'], '/srv/files/hello.txt', label)
      // Both validators still go to the proxy (without an ETag, Apache sends ETag: "0" for every file).
      t.is(plain.headers.etag, etag, label)
      t.is(plain.headers['last-modified'], date, label)
      // The validator serve() ignores: the request passes, and the proxy answers it with that validator.
      const ignored = await request(app.callback()).get('/').set(options.etag === false ? 'If-None-Match' : 'If-Modified-Since', options.etag === false ? etag : date)
      t.is(ignored.status, 200, label)
      t.is(ignored.text, '', label)
      t.is(ignored.headers['x-sendfile'], '/srv/files/hello.txt', label)
      // The one it sends: 304 from the app.
      const kept = await request(app.callback()).get('/').set(options.etag === false ? 'If-Modified-Since' : 'If-None-Match', options.etag === false ? date : etag)
      t.is(kept.status, 304, label)
      t.is(kept.headers['x-sendfile'], undefined, label)
    }
  }
})

test('apache and lighttpd: a file dated in the future is offloaded with Last-Modified no later than now (RFC 9110 §8.8.2.1)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-future-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'ahead.txt'), 'ahead')
  const ahead = new Date(Date.now() + 365 * 86400_000)
  await utimes(join(dir, 'ahead.txt'), ahead, ahead)
  for (const rule of [apache({ sourceDir: dir, destinationDir: '/srv' }), lighttpd({ sourceDir: dir, destinationDir: '/srv' })]) {
    const app = downloadApp((ctx) => { ctx.body = new PathFile(join(dir, 'ahead.txt')) }, { rules: [rule] })
    const before = Math.floor(Date.now() / 1000) * 1000
    const res = await request(app.callback()).get('/')
    const after = Date.now()
    t.is(res.status, 200, rule.backend)
    t.is(res.headers['x-sendfile'], '/srv/ahead.txt')
    const sent = Date.parse(res.headers['last-modified'] ?? '')
    t.true(sent >= before && sent <= after, `${rule.backend}: Last-Modified ${res.headers['last-modified']}`)
  }
})

test('apache and lighttpd: a Range whose If-Range is a Last-Modified of the current second (weak: RFC 9110 §13.1.5) is answered by serve() with the whole file (lighttpd would send the range); the same date a second later is offloaded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-if-range-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const bytes = 'VERSION-1 aaaaaaaaaaaaaaaaaaaa\n'
  await writeFile(join(dir, 'v.txt'), bytes)
  for (const rule of [apache({ sourceDir: dir, destinationDir: '/srv' }), lighttpd({ sourceDir: dir, destinationDir: '/srv' })]) {
    const app = downloadApp((ctx) => { ctx.body = new PathFile(join(dir, 'v.txt')) }, { rules: [rule] })
    // Dated now, early in a second, so that both requests fall within it (again, on a machine so
    // busy that they did not).
    let now = new Date()
    let resumed
    for (let attempt = 1; ; attempt++) {
      while (Date.now() % 1000 > 300) await new Promise((resolve) => setTimeout(resolve, 20))
      now = new Date()
      await utimes(join(dir, 'v.txt'), now, now)
      const first = await request(app.callback()).get('/')
      const lastModified = first.headers['last-modified'] ?? ''
      t.is(Date.parse(lastModified), Math.floor(now.getTime() / 1000) * 1000)
      resumed = await request(app.callback()).get('/').set('Range', 'bytes=10-').set('If-Range', lastModified)
      if (Date.now() - Math.floor(now.getTime() / 1000) * 1000 < 1000 || attempt === 5) break
    }
    t.true(Date.now() - Math.floor(now.getTime() / 1000) * 1000 < 1000, 'still within the second')
    t.is(resumed.status, 200, rule.backend)
    t.is(resumed.headers['x-sendfile'], undefined, rule.backend)
    t.is(resumed.text, bytes, rule.backend)
    // A date of a second that is over is a strong validator: the proxy answers the range.
    const old = new Date(now.getTime() - 5000)
    await utimes(join(dir, 'v.txt'), old, old)
    const settled = await request(app.callback()).get('/').set('Range', 'bytes=10-').set('If-Range', old.toUTCString())
    t.is(settled.status, 200, rule.backend)
    t.is(settled.headers['x-sendfile'], '/srv/v.txt', rule.backend)
    t.is(settled.headers['content-length'], '0', rule.backend)
  }
})

test('apache and lighttpd: a missing file → 404 with no offload header and no Content-Disposition', async (t) => {
  for (const rule of [apache({ sourceDir: fixtureRoot, destinationDir: '/srv' }), lighttpd({ sourceDir: fixtureRoot, destinationDir: '/srv' })]) {
    const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/missing.txt`) }, { rules: [rule] })
    const res = await request(app.callback()).get('/')
    t.is(res.status, 404, rule.backend)
    t.deepEqual(noOffloadHeaders(res.headers), [])
    t.is(res.headers['content-disposition'], undefined)
    t.is(res.headers.etag, undefined)
  }
})

test('apache and lighttpd: a missing file under an error handler that renders its own page → the page\'s type, not the download\'s binary type', async (t) => {
  for (const rule of [apache({ sourceDir: fixtureRoot, destinationDir: '/srv' }), lighttpd({ sourceDir: fixtureRoot, destinationDir: '/srv' })]) {
    const app = downloadApp((ctx) => { ctx.body = download(new PathFile(`${fixtureRoot}/missing.txt`)) }, { rules: [rule] })
    app.middleware.unshift(async (ctx, next) => {
      try {
        await next()
      } catch (error) {
        ctx.status = (error as { status: number }).status
        ctx.body = '<p>not here</p>'
      }
    })
    const res = await request(app.callback()).get('/')
    t.is(res.status, 404, rule.backend)
    t.is(res.headers['content-type'], 'text/html; charset=utf-8', rule.backend)
    t.is(res.text, '<p>not here</p>')
  }
})

test('lighttpd: X-Sendfile percent-encoded, with validators', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/%41.txt`) }, { rules: [lighttpd({ sourceDir: fixtureRoot, destinationDir: '/srv/my files' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-sendfile'], '/srv/my%20files/%2541.txt')
  t.regex(res.headers.etag ?? '', /^"/)
  t.truthy(res.headers['last-modified'])
})

test('caddy: the matcher header with the raw path, no validators', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/say "hi".txt`) }, { rules: [caddy({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/protected/say "hi".txt')
  t.is(res.headers.etag, undefined)
  t.is(res.headers['content-length'], '0')
  const custom = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }, { rules: [caddy({ sourceDir: fixtureRoot, destinationUrl: '/p/', header: 'X-Caddy-File' })] })
  const res2 = await request(custom.callback()).get('/')
  t.is(res2.headers['x-caddy-file'], '/p/hello.txt')
  t.is(res2.headers['x-accel-redirect'], undefined)
})

test('internalRedirect: 200 + Location with the percent-encoded path and an empty body', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/some thing.txt`) }, { rules: [internalRedirect({ sourceDir: fixtureRoot, destinationUrl: '/private/' })] })
  const res = await request(app.callback()).get('/').redirects(0)
  t.is(res.status, 200)
  t.is(res.headers.location, '/private/some%20thing.txt')
  t.is(res.headers['content-length'], '0')
  t.is(res.text, '')
})

test('sourceUrl: a URL file is offloaded to a fixed origin location, query dropped unless forwarded', async (t) => {
  const url = 'https://cdn.example/media/a%20b/%C3%A9.bin?sig=abc'
  const plain = downloadApp((ctx) => { ctx.body = urlFile(url, 'é.bin') }, { rules: [nginx({ sourceUrl: 'https://cdn.example/media/', destinationUrl: '/_origin/' })] })
  const a = await request(plain.callback()).get('/')
  t.is(a.headers['x-accel-redirect'], '/_origin/a%20b/%C3%A9.bin')
  t.regex(a.headers['content-disposition'] ?? '', /filename\*=UTF-8''%C3%A9\.bin$/)
  const forwarded = downloadApp((ctx) => { ctx.body = urlFile(url) }, { rules: [nginx({ sourceUrl: 'https://cdn.example/media/', destinationUrl: '/_origin/', forwardQuery: true })] })
  const b = await request(forwarded.callback()).get('/')
  t.is(b.headers['x-accel-redirect'], '/_origin/a%20b/%C3%A9.bin?sig=abc')
})

/**
 * One local file behind each backend, and a file known by both path and url, matched by its url
 * (the origin answers, with its own validators): whether the server shows the app's validators,
 * so that the app may stream a request in its place with the same ETag (Go's, in Caddy, are not).
 */
function validatorCases (): Array<[label: string, options: Parameters<typeof downloads>[0], file: DownloadFile, sharesValidators: boolean]> {
  const local = new PathFile(`${fixtureRoot}/digits.txt`)
  const both: DownloadFile = { ...urlFile('https://cdn.example/media/digits.txt', 'digits.txt'), path: `${fixtureRoot}/digits.txt` }
  return [
    ['nginx, local file', { rules: [protectedNginx] }, local, true],
    ['negotiated X-Accel-Redirect', { rules: [negotiated({ allow: ['X-Accel-Redirect'], mapping: { [fixtureRoot]: '/protected/' } })] }, local, true],
    ['apache', { rules: [apache({ sourceDir: fixtureRoot, destinationDir: fixtureRoot })] }, local, true],
    ['lighttpd', { rules: [lighttpd({ sourceDir: fixtureRoot, destinationDir: fixtureRoot })] }, local, true],
    ['caddy', { rules: [caddy({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] }, local, false],
    ['nginx, a file matched by its url', { rules: [nginx({ sourceUrl: 'https://cdn.example/media/', destinationUrl: '/_origin/' })] }, both, false]
  ]
}

test('a malformed If-Modified-Since / If-Unmodified-Since / If-Match / If-None-Match, or If-Range next to a GET\'s Range, is streamed where the server shows the app\'s validators (nginx local files, negotiated X-Accel-Redirect, Apache, lighttpd), and offloaded elsewhere', async (t) => {
  const date = 'Sun, 10 Mar 2024 12:30:15 GMT'
  const malformed: Array<Record<string, string | string[]>> = [
    { 'If-Modified-Since': `${date}, ${date}` },
    // two lines of a date field: Node keeps the first, a server may read either; the app ignores both
    { 'If-Modified-Since': [date, 'Sun, 06 Nov 1994 08:49:37 GMT'] },
    { 'If-Unmodified-Since': ['Sun, 06 Nov 1994 08:49:37 GMT', 'Friday, 31-Dec-49 23:59:59 GMT'] },
    { 'If-Unmodified-Since': `${date}x` },
    { Range: 'bytes=0-0', 'If-Range': `${date}, ${date}` },
    { Range: 'bytes=0-0', 'If-Range': '"a", "a"' },
    // Apache reads an If-None-Match that starts with `*` as `*` (304); the app ignores it (fuzz-offload)
    { 'If-None-Match': '*\x80' },
    { 'If-None-Match': '"a" x' },
    { 'If-None-Match': 'a' },
    { 'If-Match': 'x, *' },
    { 'If-Match': 'W/"a"x' }
  ]
  // well-formed ones, and an If-Range without a Range (ignored), are offloaded as usual
  const wellFormed: Array<Record<string, string>> = [
    { 'If-Modified-Since': 'Sun, 06 Nov 1994 08:49:37 GMT' },
    // (a date after the file's: the precondition passes, so Apache and lighttpd offload it too)
    { 'If-Unmodified-Since': 'Friday, 31-Dec-49 23:59:59 GMT' },
    { Range: 'bytes=0-0', 'If-Range': 'Sun Nov  6 08:49:37 1994' },
    { Range: 'bytes=0-0', 'If-Range': '"a"' },
    { 'If-Range': `${date}, ${date}` },
    { 'If-None-Match': ' "a" , , W/"b",' },
    { 'If-Match': ' * ' }
  ]
  for (const [label, options, file, streams] of validatorCases()) {
    const app = downloadApp((ctx) => { ctx.body = file }, options)
    for (const headers of malformed) {
      const res = await request(app.callback()).get('/').set('X-Sendfile-Type', 'X-Accel-Redirect').set(headers as Record<string, string>)
      const offloaded = res.headers['x-accel-redirect'] !== undefined || res.headers['x-sendfile'] !== undefined
      t.is(offloaded, !streams, `${label}: ${JSON.stringify(headers)}`)
      if (streams) {
        // streamed as the RFC says: the field is ignored, so the whole file
        t.is(res.status, 200, `${label}: ${JSON.stringify(headers)}`)
        t.is(res.headers['content-length'], '1000')
      }
    }
    for (const headers of wellFormed) {
      const res = await request(app.callback()).get('/').set('X-Sendfile-Type', 'X-Accel-Redirect').set(headers)
      t.is(res.status, 200, `${label}: ${JSON.stringify(headers)}`)
      t.is(res.text, '', `${label}: ${JSON.stringify(headers)}`)
      t.true(res.headers['x-accel-redirect'] !== undefined || res.headers['x-sendfile'] !== undefined, `${label}: ${JSON.stringify(headers)}`)
    }
  }
})

test('a GET whose Range has a number past 64 bits (a client\'s "to the end") is streamed where the server shows the app\'s validators, as the satisfiable range; a HEAD, 18 digits or leading zeros, and the other servers are offloaded', async (t) => {
  const huge: Array<[string, string]> = [
    ['bytes=990-18446744073709551615', 'bytes 990-999/1000'],
    ['bytes=990-9223372036854775807', 'bytes 990-999/1000'],
    ['bytes=-99999999999999999999', 'bytes 0-999/1000'],
    ['bytes=0-0,990-1000000000000000000', 'bytes 0-0/1000']
  ]
  const offloadedAlways = ['bytes=990-999999999999999999', 'bytes=000000000000000000000990-999']
  for (const [label, options, file, streams] of validatorCases()) {
    const app = downloadApp((ctx) => { ctx.body = file }, options)
    for (const [range, contentRange] of huge) {
      // (several ranges of a file at an origin are streamed anyway: the origin's multipart body)
      if (file.url !== undefined && range.includes(',')) continue
      const res = await request(app.callback()).get('/').set('X-Sendfile-Type', 'X-Accel-Redirect').set('Range', range)
      const offloaded = res.headers['x-accel-redirect'] !== undefined || res.headers['x-sendfile'] !== undefined
      t.is(offloaded, !streams, `${label}: ${range}`)
      if (streams && !range.includes(',')) {
        t.is(res.status, 206, `${label}: ${range}`)
        t.is(res.headers['content-range'], contentRange, `${label}: ${range}`)
      }
      if (streams && range.includes(',')) t.is(res.status, 206, `${label}: ${range} (multipart)`)
      const head = await request(app.callback()).head('/').set('X-Sendfile-Type', 'X-Accel-Redirect').set('Range', range)
      t.true(head.headers['x-accel-redirect'] !== undefined || head.headers['x-sendfile'] !== undefined, `${label}: HEAD ${range}`)
    }
    for (const range of offloadedAlways) {
      const res = await request(app.callback()).get('/').set('X-Sendfile-Type', 'X-Accel-Redirect').set('Range', range)
      t.true(res.headers['x-accel-redirect'] !== undefined || res.headers['x-sendfile'] !== undefined, `${label}: ${range}`)
    }
  }
})

test('nginx remote: any http(s) URL through /_remote/, signed query kept, % doubled', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = urlFile('http://127.0.0.1:9000/bucket/k%20x.bin?X-Amz-Signature=a%2Fb') }, { rules: [nginx({ remote: true, destinationUrl: '/_remote/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/_remote/http/127.0.0.1:9000/bucket/k%2520x.bin?X-Amz-Signature=a%2Fb')
  t.is(res.headers['content-type'], 'application/octet-stream')
})

test('nginx controls: X-Accel-Buffering, -Limit-Rate, -Expires and -Charset values', async (t) => {
  const cases: Array<[Omit<Parameters<typeof nginx>[0], 'destinationUrl'>, Record<string, string | undefined>]> = [
    [{ buffering: false, limitRate: 0, expires: false }, { 'x-accel-buffering': 'no', 'x-accel-limit-rate': '0', 'x-accel-expires': '0', 'x-accel-charset': undefined }],
    [{ buffering: true, limitRate: 524288, expires: 3600 }, { 'x-accel-buffering': 'yes', 'x-accel-limit-rate': '524288', 'x-accel-expires': '3600' }],
    [{ expires: new Date(Date.UTC(2030, 0, 1)) }, { 'x-accel-expires': '@1893456000', 'x-accel-buffering': undefined, 'x-accel-limit-rate': undefined }],
    [{ charset: 'iso-8859-1' }, { 'x-accel-charset': 'iso-8859-1' }],
    [{ charset: false }, { 'x-accel-charset': undefined }]
  ]
  for (const [options, expected] of cases) {
    const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }, { rules: [nginx({ ...options, sourceDir: fixtureRoot, destinationUrl: '/p/' })] })
    const res = await request(app.callback()).get('/')
    for (const [name, value] of Object.entries(expected)) t.is(res.headers[name], value, `${JSON.stringify(options)} ${name}`)
  }
})

test('the request cannot switch offload on or choose a mapping: X-Sendfile-Type / X-Accel-Mapping are ignored by the rules', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }, { rules: [nginx({ sourceDir: `${fixtureRoot}/subdir`, destinationUrl: '/p/' })] })
  const res = await request(app.callback()).get('/')
    .set('X-Sendfile-Type', 'X-Accel-Redirect')
    .set('X-Accel-Mapping', `${fixtureRoot}/=/internal-admin/`)
  t.is(res.text, 'Hello, world!\n')
  t.deepEqual(noOffloadHeaders(res.headers), [])
  const sendfile = await request(downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/hello.txt`) }).callback()).get('/').set('X-Sendfile-Type', 'X-Sendfile')
  t.is(sendfile.text, 'Hello, world!\n')
  t.deepEqual(noOffloadHeaders(sendfile.headers), [])
})

/** What `script` (an ES module run by a child process with NODE_DEBUG=koa-downloads) writes to stderr. */
async function debugOutput (script: string): Promise<string> {
  const { execFile } = await import('node:child_process')
  return await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_DEBUG: 'koa-downloads' } }, (error, _out, err) => {
      if (error) reject(error); else resolve(err)
    })
  })
}

test('debug: NODE_DEBUG=koa-downloads names the matching rule, and why others did not match, names JSON-escaped', async (t) => {
  const here = new URL('.', import.meta.url).href
  const script = `
    const { nginx } = await import(${JSON.stringify(new URL('../source/backends/nginx.ts', here).href)})
    const { apache } = await import(${JSON.stringify(new URL('../source/backends/apache.ts', here).href)})
    const { offload } = await import(${JSON.stringify(new URL('../source/offload.ts', here).href)})
    const { PathFile } = await import(${JSON.stringify(new URL('../source/path-file.ts', here).href)})
    const mw = offload([nginx({ sourceDir: '/srv/other', destinationUrl: '/o/' }), apache({ sourceDir: '/srv/files', destinationDir: '/srv/files' })])
    for (const path of ['/srv/files/ok.txt', '/srv/files/evil\\nname.txt', '/elsewhere/x.txt']) {
      const file = new PathFile(path)
      file.stat = async () => ({ etag: '"1"' })
      const ctx = { method: 'GET', status: 200, body: file, request: { method: 'GET', headers: {} }, res: { setHeader () {}, hasHeader () { return false } } }
      await mw(ctx, async () => {})
    }
    const refused = new PathFile('../secret.txt', { root: '/srv/files' })
    await mw({ method: 'GET', status: 200, body: refused, request: { method: 'GET', headers: {} }, res: { setHeader () {}, hasHeader () { return false } } }, async () => {})
  `
  const stderr = await debugOutput(script)
  t.regex(stderr, /offload: "secret\.txt" not offloaded: its path was refused \(NUL byte, empty, ending with "\/", or outside the root\), which serve\(\) answers with 404/)
  t.false(stderr.includes('neither path nor url'), 'a refused path is not called memory or generated')
  t.regex(stderr, /offload: nginx\(\/srv\/other → \/o\/\) does not cover "\/srv\/files\/ok\.txt": path is not below sourceDir \/srv\/other/)
  t.regex(stderr, /offload: "\/srv\/files\/ok\.txt" → apache X-Sendfile: "\/srv\/files\/ok\.txt"/)
  t.regex(stderr, /offload: apache\(\/srv\/files → \/srv\/files\) does not cover "\/srv\/files\/evil\\nname\.txt": NUL, CR or LF in the path/)
  t.regex(stderr, /offload: "\/elsewhere\/x\.txt" streamed: no rule covers it/)
  t.false(stderr.includes('evil\nname'), 'a raw newline never reaches the log')
})

test('debug: NODE_DEBUG=koa-downloads logs the status the client gets: the route\'s own (a 404 page), not the 200 of the plan', async (t) => {
  const here = new URL('.', import.meta.url).href
  const script = `
    const { default: Koa } = await import('koa')
    const { downloads } = await import(${JSON.stringify(new URL('../source/downloads.ts', here).href)})
    const { VirtualFile } = await import(${JSON.stringify(new URL('../source/virtual-file.ts', here).href)})
    const app = new Koa()
    app.use(downloads())
    app.use((ctx) => {
      ctx.body = new VirtualFile('<h1>not here</h1>', { name: 'missing.html' })
      if (ctx.path === '/own') ctx.status = 404
    })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    for (const path of ['/own', '/plain']) {
      const res = await fetch('http://127.0.0.1:' + server.address().port + path)
      await res.arrayBuffer()
      console.error('client got', path, res.status)
    }
    server.close()
  `
  const stderr = await debugOutput(script)
  t.regex(stderr, /client got \/own 404/)
  t.regex(stderr, /GET \/own: 404, the route's own status, with the whole file/)
  t.notRegex(stderr, /GET \/own: 200/)
  t.regex(stderr, /GET \/plain: 200, the whole file/)
})

test('debug: NODE_DEBUG=koa-downloads never prints a presigned URL\'s query (its signature), for offloaded and unmatched URLs', async (t) => {
  const here = new URL('.', import.meta.url).href
  const script = `
    const { nginx } = await import(${JSON.stringify(new URL('../source/backends/nginx.ts', here).href)})
    const { offload } = await import(${JSON.stringify(new URL('../source/offload.ts', here).href)})
    const mw = offload([nginx({ sourceUrl: 'https://media.example/files/', destinationUrl: '/_media/', forwardQuery: true }), nginx({ remote: true, destinationUrl: '/_remote/' })])
    for (const url of ['https://bucket.example/k.pdf?X-Amz-Signature=SECRETSIG1', 'https://media.example/files/a.pdf?sig=SECRETSIG2', 'ftp://elsewhere.example/x?SECRETSIG3']) {
      const file = { name: 'k.pdf', url, stat: async () => ({}), open: async () => { throw new Error('never') } }
      const ctx = { method: 'GET', status: 200, body: file, request: { method: 'GET', headers: {} }, res: { setHeader () {}, hasHeader () { return false } } }
      await mw(ctx, async () => {})
    }
  `
  const stderr = await debugOutput(script)
  t.regex(stderr, /offload: "https:\/\/bucket\.example\/k\.pdf\?…" → nginx X-Accel-Redirect: "\/_remote\/https\/bucket\.example\/k\.pdf\?…"/)
  t.regex(stderr, /offload: "https:\/\/media\.example\/files\/a\.pdf\?…" → nginx X-Accel-Redirect: "\/_media\/a\.pdf\?…"/)
  t.regex(stderr, /"ftp:\/\/elsewhere\.example\/x\?…" streamed: no rule covers it/)
  t.false(stderr.includes('SECRETSIG'), stderr)
})

test('offload I/O: a PathFile without root is offloaded by name alone (no stat: the proxy answers a missing file)', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = new PathFile(`${fixtureRoot}/no-such-file.txt`) }, { rules: [protectedNginx] })
  const res = await request(app.callback()).get('/')
  t.is(res.status, 200)
  t.is(res.headers['x-accel-redirect'], '/protected/no-such-file.txt')
})

test('offload I/O: a PathFile under a root is confined first (realpath) — missing → the app\'s 404, a symlink out of the root → 404, no offload header', async (t) => {
  for (const name of ['no-such-file.txt', 'escape-link.txt']) {
    const app = downloadApp((ctx) => { ctx.body = new PathFile(name, { root: fixtureRoot }) }, { rules: [protectedNginx] })
    const res = await request(app.callback()).get('/')
    t.is(res.status, 404, name)
    t.deepEqual(noOffloadHeaders(res.headers), [], name)
  }
  const ok = downloadApp((ctx) => { ctx.body = new PathFile('inside-link.txt', { root: fixtureRoot }) }, { rules: [protectedNginx] })
  t.is((await request(ok.callback()).get('/')).headers['x-accel-redirect'], '/protected/inside-link.txt')
})

test('offload I/O: with followSymlinks, a PathFile under a root costs no I/O either (lexical check only: a missing file is the proxy\'s 404)', async (t) => {
  for (const name of ['no-such-file.txt', 'escape-link.txt', 'hello.txt']) {
    const app = downloadApp((ctx) => { ctx.body = new PathFile(name, { root: fixtureRoot, followSymlinks: true }) }, { rules: [protectedNginx] })
    const res = await request(app.callback()).get('/')
    t.is(res.status, 200, name)
    t.is(res.headers['x-accel-redirect'], `/protected/${name}`, name)
  }
  const outside = downloadApp((ctx) => { ctx.body = new PathFile('../secret.txt', { root: fixtureRoot, followSymlinks: true }) }, { rules: [protectedNginx] })
  const refused = await request(outside.callback()).get('/')
  t.is(refused.status, 404)
  t.deepEqual(noOffloadHeaders(refused.headers), [])
})

/** A PathFile that counts the calls offload() makes to it. */
class CountingPathFile extends PathFile {
  confined = 0
  stats = 0
  override async confine (): ReturnType<PathFile['confine']> {
    this.confined++
    return await super.confine()
  }

  override async stat (options?: StatOptions): ReturnType<PathFile['stat']> {
    this.stats++
    return await super.stat(options)
  }
}

test('offload I/O: under nginx({ proxyRefusesSymlinks: true }), a rooted PathFile is handed over without realpath (nginx refuses symlinks itself); ".." is still the app\'s 404', async (t) => {
  const refusing = nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/', proxyRefusesSymlinks: true })
  for (const name of ['no-such-file.txt', 'escape-link.txt', 'hello.txt']) {
    const file = new CountingPathFile(name, { root: fixtureRoot })
    const res = await request(downloadApp((ctx) => { ctx.body = file }, { rules: [refusing] }).callback()).get('/')
    t.is(res.status, 200, name)
    t.is(res.headers['x-accel-redirect'], `/protected/${name}`, name)
    t.is(file.confined, 0, name)
    t.is(file.stats, 0, `${name}: no stat() either (it would realpath too)`)
  }
  // The same file under a rule without the option is confined (and the escaping link refused).
  const checked = new CountingPathFile('escape-link.txt', { root: fixtureRoot })
  const res = await request(downloadApp((ctx) => { ctx.body = checked }, { rules: [protectedNginx] }).callback()).get('/')
  t.is(res.status, 404)
  t.is(checked.confined, 1)
  const outside = downloadApp((ctx) => { ctx.body = new PathFile('../secret.txt', { root: fixtureRoot }) }, { rules: [refusing] })
  const refused = await request(outside.callback()).get('/')
  t.is(refused.status, 404)
  t.deepEqual(noOffloadHeaders(refused.headers), [])
})

test('offload I/O: a file known by URL is neither stat\'ed nor opened for nginx (the app fetches nothing)', async (t) => {
  let stats = 0
  const file: DownloadFile = { ...urlFile('https://cdn.example/media/a.bin'), stat: async () => { stats++; return { size: 3 } } }
  const app = downloadApp((ctx) => { ctx.body = file }, { rules: [nginx({ sourceUrl: 'https://cdn.example/media/', destinationUrl: '/_origin/' })] })
  const res = await request(app.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/_origin/a.bin')
  t.is(stats, 0)
})

test('offload I/O: confining a PathFile under a root costs a realpath, not a stat, for nginx; Apache still gets the stat for its validators', async (t) => {
  const forNginx = new CountingPathFile('hello.txt', { root: fixtureRoot })
  const viaNginx = await request(downloadApp((ctx) => { ctx.body = forNginx }, { rules: [protectedNginx] }).callback()).get('/')
  t.is(viaNginx.headers['x-accel-redirect'], '/protected/hello.txt')
  t.is(forNginx.stats, 0)
  const forApache = new CountingPathFile('hello.txt', { root: fixtureRoot })
  const viaApache = await request(downloadApp((ctx) => { ctx.body = forApache }, { rules: [apache({ sourceDir: fixtureRoot, destinationDir: '/srv/files' })] }).callback()).get('/')
  t.is(viaApache.headers['x-sendfile'], '/srv/files/hello.txt')
  t.regex(viaApache.headers.etag ?? '', /^"[0-9a-f]+-e"$/)
  t.is(forApache.stats, 1)
})

test('offload: an inline download that may run script (HTML, an unknown type) is streamed with its sandbox under an nginx rule (nginx drops the header), offloaded with it under Apache; passive types are offloaded; a route\'s own policy keeps its line beside the sandbox', async (t) => {
  const rulesFor = { nginx: [protectedNginx], apache: [apache({ sourceDir: fixtureRoot, destinationDir: fixtureRoot })] }
  for (const [backend, rules] of Object.entries(rulesFor)) {
    const app = downloadApp((ctx) => {
      if (ctx.query.policy !== undefined) ctx.set('Content-Security-Policy', "default-src 'self'")
      ctx.body = download(new PathFile('digits.txt', { root: fixtureRoot }), { attachment: false, contentType: String(ctx.query.type) })
    }, { rules })
    for (const type of ['text/html', 'unknown/unknown', 'text/plain, text/html']) {
      const res = await request(app.callback()).get(`/?type=${encodeURIComponent(type)}`)
      t.is(res.status, 200, `${backend} ${type}`)
      t.is(res.headers['content-security-policy'], 'sandbox', `${backend} ${type}`)
      t.is(res.headers['x-content-type-options'], 'nosniff', `${backend} ${type}`)
      if (backend === 'nginx') {
        t.deepEqual(noOffloadHeaders(res.headers), [], `${backend} ${type}: streamed`)
        t.is(res.headers['content-length'], String((await readFile(join(fixtureRoot, 'digits.txt'))).length))
      } else t.truthy(res.headers['x-sendfile'], `${backend} ${type}: offloaded`)
    }
    for (const type of ['application/pdf', 'image/png', 'text/plain']) {
      const res = await request(app.callback()).get(`/?type=${encodeURIComponent(type)}`)
      t.is(res.headers['content-security-policy'], undefined, `${backend} ${type}`)
      t.truthy(res.headers[backend === 'nginx' ? 'x-accel-redirect' : 'x-sendfile'], `${backend} ${type}: offloaded`)
    }
    const own = await request(app.callback()).get('/?type=text%2Fhtml&policy=1')
    t.is(own.headers['content-security-policy'], "default-src 'self', sandbox", backend)
  }
})

test('offload: an inline internalRedirect() of a stored name a gateway types as script-running (page.html offered as notes.txt or as text/plain) carries the sandbox: Apache mod_proxy_scgi serves the Location with its own mod_mime type', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-offload-gateway-'))
  try {
    await writeFile(join(dir, 'page.html'), '<script>document.title = 1</script>')
    await writeFile(join(dir, 'page.html.notes'), '<script>document.title = 1</script>')
    await writeFile(join(dir, 'photo.png'), 'png')
    const app = downloadApp((ctx) => {
      const name = String(ctx.query.name)
      const options = ctx.query.as === 'type' ? { contentType: 'text/plain' } : { filename: 'notes.txt' }
      ctx.body = download(new PathFile(name, { root: dir }), { attachment: ctx.query.attachment !== undefined, sandbox: ctx.query.nosandbox === undefined, ...options })
    }, { rules: [internalRedirect({ sourceDir: dir, destinationUrl: '/private/' })] })
    for (const query of ['name=page.html&as=name', 'name=page.html&as=type', 'name=page.html.notes&as=type']) {
      const res = await request(app.callback()).get(`/?${query}`)
      t.truthy(res.headers.location, query)
      t.is(res.headers['content-security-policy'], 'sandbox', query)
    }
    for (const query of ['name=photo.png&as=type', 'name=page.html&as=type&attachment=1', 'name=page.html&as=type&nosandbox=1']) {
      const res = await request(app.callback()).get(`/?${query}`)
      t.truthy(res.headers.location, query)
      t.is(res.headers['content-security-policy'], undefined, query)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('offload: the metadata call a client refusing gzip costs (sendsStoredCoding) decides the coding only: an uncoded object is offloaded with the same headers every client gets (the offload response carries no Vary)', async (t) => {
  const app = downloadApp((ctx) => {
    const file: DownloadFile = {
      name: 'notes.txt',
      url: 'https://bucket.example/notes.txt',
      sendsStoredCoding: true,
      // an upload whose stored type is not its name's
      stat: async () => ({ size: 18, contentType: 'text/html' }),
      open: async () => { throw new Error('an offloaded file is never opened') }
    }
    ctx.body = download(file, { attachment: ctx.query.inline === undefined })
  }, { rules: [nginx({ sourceUrl: 'https://bucket.example/', destinationUrl: '/_s3/' })] })
  for (const query of ['', '?inline=1']) {
    const accepting = await request(app.callback()).get('/' + query).set('Accept-Encoding', 'gzip, deflate, br')
    const refusing = await request(app.callback()).get('/' + query).set('Accept-Encoding', 'identity')
    t.is(accepting.headers['x-accel-redirect'], '/_s3/notes.txt', query)
    t.is(refusing.headers['x-accel-redirect'], '/_s3/notes.txt', query)
    t.is(refusing.headers['content-type'], accepting.headers['content-type'], query)
    t.is(refusing.headers['content-security-policy'], accepting.headers['content-security-policy'], query)
  }
})

test.serial('offload(): a request under an nginx rule\'s destinationUrl that reaches the app and gets 404 (nginx had no location for the X-Accel-Redirect, or the proxy was bypassed) is said once, as a process warning; other 404s and served requests say nothing', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { if ((warning as { code?: string }).code === 'KD_DESTINATION_REACHED_APP') warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const app = new Koa()
  app.use(downloads({ rules: [apache({ sourceDir: '/srv/other', destinationDir: '/srv/other' }), nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected-typo/' })] }))
  app.use((ctx) => { if (ctx.path === '/files/digits.txt') ctx.body = download(new PathFile('digits.txt', { root: fixtureRoot })) })
  t.is((await request(app.callback()).get('/files/digits.txt')).headers['x-accel-redirect'], '/protected-typo/digits.txt')
  t.is((await request(app.callback()).get('/elsewhere/digits.txt')).status, 404)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 0)
  for (let i = 0; i < 2; i++) t.is((await request(app.callback()).get('/protected-typo/digits.txt')).status, 404)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 1)
  t.is(warnings[0]?.name, 'KoaDownloadsWarning')
  t.is(warnings[0]?.message, 'GET "/protected-typo/digits.txt" reached the app (404), under the destinationUrl /protected-typo/ of an X-Accel-Redirect rule, which nginx serves from an internal location: nginx has no location for it (its X-Accel-Redirect fell through to the app: regenerate the config with koa-downloads config nginx), or a client reached the app without nginx (SECURITY.md)')
  // A negotiated() mapping's location, when it may answer with X-Accel-Redirect, alike.
  const mapped = new Koa()
  mapped.use(downloads({ rules: [negotiated({ allow: ['X-Accel-Redirect'], mapping: { [fixtureRoot]: '/mapped' } })] }))
  mapped.use(() => {})
  t.is((await request(mapped.callback()).get('/mapped/digits.txt')).status, 404)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 2)
  t.regex(warnings[1]?.message ?? '', /^GET "\/mapped\/digits\.txt" reached the app \(404\), under the destinationUrl \/mapped\//)
})

test.serial('offload(): mounted outside serve() it cannot offload (serve() answered first): the file is streamed and one process warning says how to mount it; mounted inside, no warning', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { if ((warning as { code?: string }).code === 'KD_OFFLOAD_ORDER') warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const rules = [nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })]
  const misordered = new Koa()
  misordered.use(offload(rules))
  misordered.use(serve())
  misordered.use((ctx) => { ctx.body = download(new PathFile('digits.txt', { root: fixtureRoot })) })
  for (let i = 0; i < 2; i++) {
    const res = await request(misordered.callback()).get('/')
    t.is(res.status, 200)
    t.is(res.headers['x-accel-redirect'], undefined)
    t.is(res.headers['content-length'], '1000')
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 1)
  t.is(warnings[0]?.name, 'KoaDownloadsWarning')
  t.regex(warnings[0]?.message ?? '', /mount serve\(\) first, app\.use\(serve\(\)\); app\.use\(offload\(rules\)\)/)
  const ordered = new Koa()
  ordered.use(serve())
  ordered.use(offload(rules))
  ordered.use((ctx) => { ctx.body = download(new PathFile('digits.txt', { root: fixtureRoot })) })
  const res = await request(ordered.callback()).get('/')
  t.is(res.headers['x-accel-redirect'], '/protected/digits.txt')
  // A request with no download says nothing of the order.
  const plain = new Koa()
  plain.use(offload(rules))
  plain.use(serve())
  plain.use((ctx) => { ctx.body = 'ok' })
  await request(plain.callback()).get('/')
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 1)
})
