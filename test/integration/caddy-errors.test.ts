import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import type { Server } from 'node:http'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import test from 'ava'

// copy_response_headers writes the app's Content-Type, Content-Disposition and Cache-Control before
// file_server or the origin answers. A 404 that Caddy gives afterwards — the file gone since the
// app decided to offload, a refused encoded Location, an origin's own error — must not carry the
// download's headers: a browser would save the error as "report.pdf". Proven with the generated
// Caddyfile and the real Caddy. So must a value naming a directory (file_server's defaults served
// its index.html or redirected). Also here, on the same Caddy: the Range units file_server would
// refuse with 416, and the If-Range divergence the block cannot avoid.
const { available, test: caddyTest } = proxyTest('caddy')

let state: { root: string, origin: Origin, server: Server, proxy: RunningProxy, appSent: Map<string, Record<string, unknown>> } | undefined
const ctx = (): NonNullable<typeof state> => {
  if (state === undefined) throw new Error('caddy did not start (see test.before)')
  return state
}

if (available) {
  test.before(async () => {
    const root = await mkdtemp(join(tmpdir(), 'kd-caddy-errors-'))
    await mkdir(join(root, 'protected'))
    await writeFile(join(root, 'protected', 'here.txt'), 'here\n')
    // Directories a PathFile may name: file_server's defaults served index.html or redirected.
    await mkdir(join(root, 'protected', 'with-index'))
    await writeFile(join(root, 'protected', 'with-index', 'index.html'), '<p>index</p>\n')
    await mkdir(join(root, 'protected', 'bare'))
    await mkdir(join(root, 'other', 'with-index'), { recursive: true })
    await writeFile(join(root, 'other', 'with-index', 'index.html'), '<p>index</p>\n')
    await writeFile(join(root, 'other', 'a b.txt'), 'a b\n')
    makeWorldReadable(root)
    const origin = await startOrigin()
    // The origin's base paths have percent-escapes of their own (an encoded space, an encoded "%").
    origin.put('/my%20bucket/obj%20one.txt', { bytes: 'object one\n', contentType: 'application/x-origin' })
    origin.put('/100%25/k.txt', { bytes: 'percent base\n' })
    origin.put('/my%20bucket/short.txt', { bytes: 'short\n' })
    const rules = [
      caddy({ sourceDir: join(root, 'protected'), destinationUrl: '/protected/' }),
      internalRedirect({ sourceDir: join(root, 'other'), destinationUrl: '/ir/' }),
      caddy({ sourceUrl: `${origin.url}/my%20bucket/`, destinationUrl: '/_o1/' }),
      caddy({ sourceUrl: `${origin.url}/100%25/`, destinationUrl: '/_o2/' })
    ]
    const appSent = new Map<string, Record<string, unknown>>()
    const app = new Koa()
    app.use(async (c, next) => {
      await next()
      appSent.set(c.url, { ...c.response.headers })
    })
    app.use(downloads({ rules }))
    app.use((c) => {
      const options = { cacheControl: 'private, max-age=60' }
      // A PathFile without root costs the app no I/O: a file that is gone is Caddy's to find.
      if (c.path.startsWith('/local/')) c.body = download(new PathFile(join(root, 'protected', decodeURIComponent(c.path.slice(7)))), options)
      else if (c.path.startsWith('/ir/')) c.body = download(new PathFile(decodeURIComponent(c.path.slice(4)), { root: join(root, 'other') }), options)
      else if (c.path.startsWith('/remote/')) c.body = download(new HttpFile(origin.url + c.path.slice(7)), options)
    })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const proxy = await startProxy('caddy', { rules, appPort: (server.address() as AddressInfo).port })
    state = { root, origin, server, proxy, appSent }
  })
  test.afterEach.always((t) => { logProxiesIfFailed(t, state === undefined ? [] : [state.proxy]) })
  test.after.always(async () => {
    await state?.proxy.stop()
    state?.server.closeAllConnections()
    state?.server.close()
    await state?.origin.stop()
    if (state !== undefined) await rm(state.root, { recursive: true, force: true })
  })
}

const downloadHeaders = (response: Response): Array<string | null> =>
  ['content-disposition', 'content-type', 'cache-control'].map((name) => response.headers.get(name))

caddyTest('caddy: a file gone by the time Caddy serves it is a 404 without the download\'s Content-Disposition, Content-Type or Cache-Control', async (t) => {
  const { proxy, appSent } = ctx()
  const here = await fetch(proxy.url + '/local/here.txt')
  t.is(here.status, 200)
  t.is(await here.text(), 'here\n')
  t.deepEqual(downloadHeaders(here), ['attachment; filename="here.txt"', 'text/plain; charset=utf-8', 'private, max-age=60'])
  const gone = await fetch(proxy.url + '/local/gone.txt')
  t.is(await gone.text(), '')
  t.is(gone.status, 404)
  t.is(appSent.get('/local/gone.txt')?.['x-accel-redirect'], '/protected/gone.txt', 'the app offloaded it: Caddy answered the 404')
  t.deepEqual(downloadHeaders(gone), [null, null, null])
})

caddyTest('caddy: an internalRedirect Location refused for its "%" is a 404 without the download\'s headers', async (t) => {
  const { proxy, appSent } = ctx()
  const response = await fetch(proxy.url + '/ir/a%20b.txt')
  t.is(await response.text(), '')
  t.is(response.status, 404)
  t.is(appSent.get('/ir/a%20b.txt')?.location, '/ir/a%20b.txt', 'the app offloaded it: Caddy refused the encoded Location')
  t.deepEqual(downloadHeaders(response), [null, null, null])
})

caddyTest('caddy sourceUrl: the origin\'s 404 becomes Caddy\'s own (handle_errors: no body, none of the download\'s headers); its 416 keeps Content-Range', async (t) => {
  const { proxy, appSent } = ctx()
  const missing = await fetch(proxy.url + '/remote/my%20bucket/missing.txt')
  t.is(await missing.text(), '', 'not the origin\'s body')
  t.is(missing.status, 404)
  t.is(appSent.get('/remote/my%20bucket/missing.txt')?.['x-accel-redirect'], '/_o1/missing.txt')
  t.is(missing.headers.get('content-disposition'), null)
  t.is(missing.headers.get('cache-control'), null)
  t.is(missing.headers.get('content-type'), null)
  const unsatisfiable = await fetch(proxy.url + '/remote/my%20bucket/short.txt', { headers: { Range: 'bytes=500-' } })
  await unsatisfiable.arrayBuffer()
  t.is(unsatisfiable.status, 416)
  t.is(unsatisfiable.headers.get('content-range'), 'bytes */6')
  t.is(unsatisfiable.headers.get('content-disposition'), null)
})

caddyTest('caddy sourceUrl: a base path with percent-escapes (%20, %25) fetches the file from that exact upstream path', async (t) => {
  const { proxy, origin, appSent } = ctx()
  const one = await fetch(proxy.url + '/remote/my%20bucket/obj%20one.txt')
  t.is(await one.text(), 'object one\n')
  t.is(one.status, 200)
  t.is(appSent.get('/remote/my%20bucket/obj%20one.txt')?.['x-accel-redirect'], '/_o1/obj one.txt')
  t.is(one.headers.get('content-disposition'), 'attachment; filename="obj one.txt"')
  t.is(one.headers.get('content-type'), 'text/plain; charset=utf-8', 'the app\'s type, not the origin\'s')
  const range = await fetch(proxy.url + '/remote/my%20bucket/obj%20one.txt', { headers: { Range: 'bytes=0-5' } })
  t.is(await range.text(), 'object')
  t.is(range.status, 206)
  const percent = await fetch(proxy.url + '/remote/100%25/k.txt')
  t.is(await percent.text(), 'percent base\n')
  t.is(percent.status, 200)
  t.deepEqual(origin.log.entries.map((e) => e.url).filter((url) => /obj|k\.txt/.test(url)), ['/my%20bucket/obj%20one.txt', '/my%20bucket/obj%20one.txt', '/100%25/k.txt'])
})

caddyTest('caddy: a PathFile naming a directory, with an index.html or without, is a 404 without the download\'s headers (not the index.html, not a redirect adding "/")', async (t) => {
  const { proxy, appSent } = ctx()
  for (const [url, offloadedAs] of [['/local/with-index', '/protected/with-index'], ['/local/bare', '/protected/bare']] as const) {
    const response = await fetch(proxy.url + url, { redirect: 'manual' })
    t.is(await response.text(), '', url)
    t.is(response.status, 404, url)
    t.is(appSent.get(url)?.['x-accel-redirect'], offloadedAs, `${url}: the app offloaded it: Caddy answered the 404`)
    t.deepEqual(downloadHeaders(response), [null, null, null], url)
    t.is(response.headers.get('location'), null, url)
    // a HEAD and a Range are no way around it
    const head = await fetch(proxy.url + url, { method: 'HEAD', redirect: 'manual' })
    t.is(head.status, 404, `HEAD ${url}`)
    t.is(head.headers.get('content-disposition'), null, `HEAD ${url}`)
    const range = await fetch(proxy.url + url, { headers: { Range: 'bytes=0-3' }, redirect: 'manual' })
    t.is(await range.text(), '', `Range ${url}`)
    t.is(range.status, 404, `Range ${url}`)
  }
})

caddyTest('caddy internalRedirect: a Location naming a directory with an index.html is a 404 without the download\'s headers', async (t) => {
  const { proxy, appSent } = ctx()
  const response = await fetch(proxy.url + '/ir/with-index', { redirect: 'manual' })
  t.is(await response.text(), '')
  t.is(response.status, 404)
  t.is(appSent.get('/ir/with-index')?.location, '/ir/with-index', 'the app offloaded it: Caddy answered the 404')
  t.deepEqual(downloadHeaders(response), [null, null, null])
})

// Go's ServeContent answers 416 to a Range that does not start with `bytes=` exactly; RFC 9110
// honours an other-case unit or lets it be ignored (§14.1: units are case-insensitive), and ignores
// an unknown unit (§14.2): the block drops such a Range, and file_server sends the whole file.
caddyTest('caddy: a Range of another case (BYTES=, Bytes=) or of an unknown unit (items=) gets the whole file, not 416; bytes= still gets the range', async (t) => {
  const { proxy, appSent } = ctx()
  for (const range of ['BYTES=0-2', 'Bytes=0-2', 'items=0-2', 'bYtEs=5000-']) {
    const response = await fetch(proxy.url + '/local/here.txt', { headers: { Range: range } })
    t.is(await response.text(), 'here\n', range)
    t.is(response.status, 200, range)
    t.is(response.headers.get('content-range'), null, range)
    t.is(response.headers.get('content-length'), '5', range)
    t.is(response.headers.get('content-disposition'), 'attachment; filename="here.txt"', range)
  }
  t.is(appSent.get('/local/here.txt')?.['x-accel-redirect'], '/protected/here.txt', 'the app offloaded it: Caddy answered')
  const exact = await fetch(proxy.url + '/local/here.txt', { headers: { Range: 'bytes=0-2' } })
  t.is(await exact.text(), 'her')
  t.is(exact.status, 206)
  t.is(exact.headers.get('content-range'), 'bytes 0-2/5')
  const unsatisfiable = await fetch(proxy.url + '/local/here.txt', { headers: { Range: 'bytes=5000-' } })
  await unsatisfiable.arrayBuffer()
  t.is(unsatisfiable.status, 416, 'an unsatisfiable bytes= range is still refused')
  // Several Range fields: Go reads the first; one of another unit drops them all.
  const fields = new Headers([['Range', 'items=1'], ['Range', 'bytes=0-2']])
  const two = await fetch(proxy.url + '/local/here.txt', { headers: fields })
  t.is(await two.text(), 'here\n')
  t.is(two.status, 200)
})

// A Last-Modified that is not at least a second before the response's Date is weak (RFC 9110
// §8.8.2.2), so an If-Range naming it sends the whole file; Go compares the dates only, and no
// Caddyfile line can compare dates in 2.6.2. The app stats the file for such a request and streams
// it. A file dated in the future makes the case deterministic (Caddy's Last-Modified is the future
// date; the app's own is clamped to now); one written within the second is offload-suite's case.
caddyTest('caddy: an If-Range naming a Last-Modified in the future (weak) gets the whole file: the app streams it (Caddy would send the range)', async (t) => {
  const { proxy, root } = ctx()
  const path = join(root, 'protected', 'fresh.txt')
  await writeFile(path, 'fresh file\n')
  const future = Math.floor(Date.now() / 1000) + 3600
  await utimes(path, future, future)
  const plain = await fetch(proxy.url + '/local/fresh.txt')
  await plain.arrayBuffer()
  const lastModified = plain.headers.get('last-modified') ?? ''
  t.is(Date.parse(lastModified), future * 1000)
  const response = await fetch(proxy.url + '/local/fresh.txt', { headers: { Range: 'bytes=0-4', 'If-Range': lastModified } })
  t.is(await response.text(), 'fresh file\n')
  t.is(response.status, 200, 'the whole file, as the RFC says')
})

// Go's ServeContent reads the first line of a repeated If-None-Match, and `*x` as `*`; header_regexp
// matched when any line was valid, so `*x` beside `"nope"` kept the field: a 304 (audit). The block
// judges the lines joined, as one field (RFC 9110 §5.3).
caddyTest('caddy: a malformed If-None-Match is dropped also when it comes in two lines beside a valid one (200, not Go\'s 304); valid lists still revalidate', async (t) => {
  const { proxy } = ctx()
  const port = Number(new URL(proxy.url).port)
  const get = async (headers: string[]): Promise<number> => await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/local/here.txt', headers: ['Host', `127.0.0.1:${port}`, ...headers], agent: false }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.on('error', reject)
    req.end()
  })
  t.is(await get(['If-None-Match', '*x', 'If-None-Match', '"nope"']), 200)
  t.is(await get(['If-None-Match', '*x, "nope"']), 200)
  const etag = (await fetch(proxy.url + '/local/here.txt')).headers.get('etag') ?? ''
  t.is(await get(['If-None-Match', `"nope", ${etag}`]), 304)
  t.is(await get(['If-None-Match', '*']), 304)
})
