// A file shown inline (sendfile()'s default, or download() with attachment: false) whose type runs
// script when a browser renders it — HTML, SVG, XML — gets Content-Security-Policy: sandbox, so an
// upload cannot run script in the app's origin (stored XSS); every download says nosniff. Proven
// with HTTP and in a real Chromium, which renders these pages and would run their script.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { ImplementationFn } from 'ava'
import Koa from 'koa'
import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'
import request from 'supertest'
import { download, downloads, PathFile, sendfile, VirtualFile } from '../../source/index.ts'

const executablePath = '/usr/bin/chromium'
const absent = !existsSync(executablePath) || (process.env.KD_SIMULATE_MISSING ?? '').split(',').includes('chromium')
if (absent && process.env.REQUIRE_PROXIES === '1') throw new Error(`browser tests: ${executablePath} not found and REQUIRE_PROXIES=1`)

function browserTest (title: string, impl: ImplementationFn<[]>): void {
  if (absent) test.skip(`${title} [skipped: ${executablePath} not found]`, impl)
  else test.serial(title, impl)
}

const payload = 'fetch("/pwned?via=" + encodeURIComponent(location.pathname) + "&cookie=" + encodeURIComponent(document.cookie))'
const pages: Record<string, string> = {
  'page.html': `<!doctype html><p>hi</p><script>${payload}</script>`,
  'image.svg': `<svg xmlns="http://www.w3.org/2000/svg"><script><![CDATA[${payload}]]></script></svg>`,
  'doc.xml': `<html xmlns="http://www.w3.org/1999/xhtml"><body><script><![CDATA[${payload}]]></script></body></html>`,
  'doc.xhtml': `<html xmlns="http://www.w3.org/1999/xhtml"><body><script><![CDATA[${payload}]]></script></body></html>`,
  'notes.txt': `<!doctype html><script>${payload}</script>`,
  // an upload stored by id, shown under the name its uploader chose
  'upload-1': `<svg xmlns="http://www.w3.org/2000/svg"><script><![CDATA[${payload}]]></script></svg>`
}

let root = ''
let base = ''
let server: ReturnType<Koa['listen']> | undefined
const pwned: string[] = []
/** `<path> <status>` of each answer to a request that carried If-None-Match. */
const revalidated: string[] = []

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-active-'))
  const past = new Date(Date.now() - 3_600_000)
  for (const [name, text] of Object.entries(pages)) {
    await writeFile(join(root, name), text)
    await utimes(join(root, name), past, past)
  }
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    if (ctx.path === '/pwned') {
      pwned.push(`${String(ctx.query.via)} ${String(ctx.query.cookie)}`)
      ctx.body = 'ok'
    } else if (ctx.path === '/') {
      ctx.cookies.set('session', 'SECRET', { httpOnly: false })
      ctx.body = 'home'
    } else {
      await next()
      if (ctx.get('If-None-Match') !== '') revalidated.push(`${ctx.path} ${ctx.status}`)
    }
  })
  app.use(downloads())
  app.use(async (ctx) => {
    const [, kind = '', rest = ''] = /^\/([a-z-]+)\/(.*)$/.exec(ctx.path) ?? []
    const name = decodeURIComponent(rest)
    if (kind === 'media') await sendfile(ctx, name, { root })
    else if (kind === 'preview') ctx.body = download(new PathFile('upload-1', { root }), { filename: name, attachment: false })
    else if (kind === 'attached') ctx.body = download(new PathFile(name, { root }))
    else if (kind === 'own-policy') {
      // An app-wide policy (koa-helmet's, say) stays, and the sandbox goes beside it.
      ctx.set('Content-Security-Policy', "default-src 'self'")
      ctx.body = download(new PathFile(name, { root }), { attachment: false })
    } else if (kind === 'framed-policy') {
      // A site policy that restricts no script: only the sandbox keeps the page's script from running.
      ctx.set('Content-Security-Policy', "frame-ancestors 'self'")
      ctx.body = download(new PathFile(name, { root }), { attachment: false })
    } else if (kind === 'memory') ctx.body = download(new VirtualFile(pages['page.html'] ?? '', { name: 'report.html' }), { attachment: false })
    // A type the uploader declared (a database column, storage metadata), shown inline.
    else if (kind === 'typed') ctx.body = download(new VirtualFile(pages['page.html'] ?? '', { name: 'upload', contentType: String(ctx.query.type) }), { attachment: false })
    // The app's own page served as a file (an SPA's index.html): its scripts must run.
    else if (kind === 'own-page') await sendfile(ctx, name, { root, sandbox: false })
  })
  server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server?.once('listening', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

test.after.always(async () => {
  server?.close()
  if (root !== '') await rm(root, { recursive: true, force: true })
})

test.serial('active content: an HTML, SVG or XML file shown inline gets Content-Security-Policy: sandbox and nosniff, on GET, HEAD and a range; other types and attachments get nosniff only; a 304 keeps the sandbox (not nosniff)', async (t) => {
  const cases: Array<[string, string, string | undefined]> = [
    ['/media/page.html', 'text/html; charset=utf-8', 'sandbox'],
    ['/media/image.svg', 'image/svg+xml', 'sandbox'],
    ['/media/doc.xml', 'application/xml', 'sandbox'],
    ['/media/doc.xhtml', 'application/xhtml+xml', 'sandbox'],
    ['/preview/cat.svg', 'image/svg+xml', 'sandbox'],
    ['/preview/cat.html', 'text/html; charset=utf-8', 'sandbox'],
    ['/memory/report.html', 'text/html; charset=utf-8', 'sandbox'],
    ['/media/notes.txt', 'text/plain; charset=utf-8', undefined],
    ['/preview/cat.png', 'image/png', undefined],
    ['/attached/page.html', 'text/html; charset=utf-8', undefined],
    ['/attached/image.svg', 'image/svg+xml', undefined],
    ['/own-policy/page.html', 'text/html; charset=utf-8', "default-src 'self', sandbox"],
    ['/own-page/page.html', 'text/html; charset=utf-8', undefined],
    // read as browsers read them: the last valid type of a list, an unknown type they would sniff
    ['/typed/x?type=text%2Fplain%2C%20text%2Fhtml', 'text/plain, text/html', 'sandbox'],
    ['/typed/x?type=text%2Fhtml%2C%20text%2Fplain', 'text/html, text/plain', 'sandbox'],
    ['/typed/x?type=unknown%2Funknown', 'unknown/unknown', 'sandbox'],
    // lists and shapes whose members Chromium may end elsewhere than a parser would: never passive
    [`/typed/x?type=${encodeURIComponent('text/plain;a=1, text/html;b="')}`, 'text/plain;a=1, text/html;b="', 'sandbox'],
    [`/typed/x?type=${encodeURIComponent('text/plain, text/html x')}`, 'text/plain, text/html x', 'sandbox'],
    [`/typed/x?type=${encodeURIComponent('text/csv, text/html(x)')}`, 'text/csv, text/html(x)', 'sandbox'],
    [`/typed/x?type=${encodeURIComponent('text/html x')}`, 'text/html x', 'sandbox'],
    [`/typed/x?type=${encodeURIComponent('text/plain; charset=utf-8')}`, 'text/plain; charset=utf-8', undefined],
    ['/typed/x?type=foo', 'foo', 'sandbox'],
    ['/typed/x?type=application%2Fpdf', 'application/pdf', undefined],
    ['/typed/x?type=image%2Fpng', 'image/png', undefined],
    ['/typed/x?type=video%2Fmp4', 'video/mp4', undefined]
  ]
  for (const [path, type, policy] of cases) {
    for (const send of [() => request(base).get(path), () => request(base).head(path), () => request(base).get(path).set('Range', 'bytes=0-4')]) {
      const res = await send()
      t.true(res.status === 200 || res.status === 206, `${path}: ${res.status}`)
      t.is(res.headers['content-type'], type, path)
      t.is(res.headers['content-security-policy'], policy, path)
      t.is(res.headers['x-content-type-options'], 'nosniff', path)
    }
    const etag = (await request(base).head(path)).headers.etag as string
    const notModified = await request(base).get(path).set('If-None-Match', etag)
    t.is(notModified.status, 304, path)
    // The sandbox too: a cache takes the 304's policy for the stored one (RFC 9111 §3.2), and the
    // app's own policy alone would lift the sandbox from the stored page.
    t.is(notModified.headers['content-security-policy'], policy, path)
    t.is(notModified.headers['x-content-type-options'], undefined, path)
  }
})

let browser: Browser | undefined
test.after.always(async () => { await browser?.close() })

browserTest('active content in Chromium: inline HTML, SVG and XML render but run no script (no request with the session cookie); as attachments they are downloaded, not rendered', async (t) => {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  browser = await chromium.launch({ executablePath, args })
  const context = await browser.newContext({ acceptDownloads: true })
  try {
    const page = await context.newPage()
    await page.goto(base + '/')
    // The probe itself: the same page served by the app as its own HTML (no download) runs it.
    await page.evaluate(payload)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.deepEqual(pwned.splice(0), ['/ session=SECRET'], 'a script run in the origin is seen')
    for (const path of ['/media/page.html', '/media/image.svg', '/media/doc.xml', '/media/doc.xhtml', '/preview/cat.svg', '/preview/cat.html', '/memory/report.html',
      '/typed/x?type=text%2Fplain%2C%20text%2Fhtml', '/typed/x?type=unknown%2Funknown', '/typed/x?type=foo', '/own-policy/page.html',
      `/typed/x?type=${encodeURIComponent('text/plain;a=1, text/html;b="')}`, `/typed/x?type=${encodeURIComponent('text/plain, text/html x')}`,
      `/typed/x?type=${encodeURIComponent('text/csv, text/html(x)')}`]) {
      // Chromium renders most of them; a type it does not know it may save instead (no script either).
      const response = await page.goto(base + path).catch((error: Error) => {
        if (!/Download is starting/.test(error.message)) throw error
        return null
      })
      if (response !== null) {
        t.is(response.status(), 200, path)
        t.regex(await response.headerValue('content-security-policy') ?? '', /(^|, )sandbox$/, path)
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    for (const path of ['/attached/page.html', '/attached/image.svg']) {
      const waiting = page.waitForEvent('download')
      await page.goto(base + path).catch(() => {})
      t.is((await waiting).suggestedFilename(), path.slice('/attached/'.length))
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.deepEqual(pwned, [], 'no script ran in the app\'s origin')
    // Revalidated: the browser takes the 304's policy for the stored page's (RFC 9111 §3.2), so the
    // 304 must carry the sandbox beside the app's own policy, or the reloaded page runs its script.
    await page.goto(base + '/framed-policy/page.html')
    await page.reload()
    await page.reload()
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.true(revalidated.includes('/framed-policy/page.html 304'), revalidated.join('; '))
    t.deepEqual(pwned, [], 'no script ran in the app\'s origin after a revalidation')
    // The app's own page, served with sandbox: false, runs its script.
    await page.goto(base + '/own-page/page.html')
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.deepEqual(pwned.splice(0), ['/own-page/page.html session=SECRET'])
  } finally {
    await context.close()
  }
})
