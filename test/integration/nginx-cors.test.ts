// A cross-origin fetch() of an offloaded download needs the app's CORS headers on what the client
// gets. nginx keeps six of the app's headers on an X-Accel-Redirect and drops the CORS ones
// (measured with Chromium and @koa/cors: "Failed to fetch" where the streamed file worked);
// deployment/nginx.md §4 gives the lines that add them back, which this test runs as written.
// Apache and lighttpd keep the app's headers on an X-Sendfile response.
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import type { Middleware } from 'koa'
import { HttpFile } from '../../adapters/http/index.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { dirRuleFor, logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

const guide = await readFile(new URL('../../docs/deployment/nginx.md', import.meta.url), 'utf8')
const block = /<!-- nginx-cors -->\s*```nginx\n([\s\S]*?)```/.exec(guide)?.[1]
if (block === undefined) throw new Error('docs/deployment/nginx.md: the <!-- nginx-cors --> block is missing')
const corsLines = block.split('\n').map((line) => line.trim()).filter((line) => line !== '')

const { test: nginxTest } = proxyTest('nginx')
const bytes = Buffer.from('id,total\n42,9.99\n')
const site = 'https://spa.example'

/** @koa/cors's answer for a credentialed cross-origin request: the Origin reflected, the name exposed. */
const cors: Middleware = async (ctx, next) => {
  ctx.vary('Origin')
  const origin = ctx.get('Origin')
  if (origin !== '') {
    ctx.set('Access-Control-Allow-Origin', origin)
    ctx.set('Access-Control-Allow-Credentials', 'true')
    ctx.set('Access-Control-Expose-Headers', 'Content-Disposition')
  }
  await next()
}

async function appFor (rules: OffloadRule[], dir: string, originUrl: string): Promise<{ port: number, offloads: string[], close: () => void }> {
  const app = new Koa()
  const offloads: string[] = []
  app.use(async (ctx, next) => { await next(); const target = ctx.response.get('X-Accel-Redirect') || ctx.response.get('X-Sendfile'); if (target !== '') offloads.push(target) })
  app.use(cors)
  app.use(downloads({ rules }))
  app.use((ctx) => {
    ctx.body = ctx.path === '/remote.csv'
      ? download(new HttpFile(`${originUrl}/media/report.csv`, { name: 'report.csv' }))
      : download(new PathFile('report.csv', { root: dir }))
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, offloads, close: () => { server.closeAllConnections(); server.close() } }
}

async function get (url: string, headers: Record<string, string>): Promise<{ status: number, headers: Headers, body: Buffer }> {
  const response = await fetch(url, { headers })
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) }
}

async function withOrigin (fn: (originUrl: string) => Promise<void>): Promise<void> {
  // An origin that answers with a CORS grant of its own: the client must get the app's, not this one.
  const origin = createServer((req, res) => {
    const headers = { 'Content-Type': 'text/csv', 'Accept-Ranges': 'bytes', 'Access-Control-Allow-Origin': '*', Vary: 'Accept-Encoding' }
    // The one range the test asks for, answered as an origin does.
    const part = req.headers.range === 'bytes=0-1' ? bytes.subarray(0, 2) : bytes
    if (part !== bytes) res.writeHead(206, { ...headers, 'Content-Range': `bytes 0-1/${bytes.length}`, 'Content-Length': part.length })
    else res.writeHead(200, { ...headers, 'Content-Length': bytes.length })
    res.end(req.method === 'HEAD' ? undefined : part)
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  try {
    await fn(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`)
  } finally {
    origin.closeAllConnections()
    origin.close()
  }
}

nginxTest('nginx: the guide\'s lines give an offloaded download (a local file, a file at an origin; 200 and 206) the app\'s CORS headers; without them nginx drops them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-cors-'))
  await writeFile(join(dir, 'report.csv'), bytes)
  makeWorldReadable(dir)
  await withOrigin(async (originUrl) => {
    const rules = [
      nginx({ sourceDir: dir, destinationUrl: '/protected/' }),
      nginx({ sourceUrl: `${originUrl}/media/`, destinationUrl: '/_origin/' })
    ]
    const app = await appFor(rules, dir, originUrl)
    const proxies: RunningProxy[] = []
    try {
      for (const withLines of [true, false]) {
        const proxy = await startProxy('nginx', {
          rules,
          appPort: app.port,
          configFor: ({ port, prefix, appPort }) => {
            const config = renderServerConfig('nginx', rules, { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
            return withLines ? config.replace(/^(\s*)internal;$/gm, (line, indent: string) => [line, ...corsLines.map((added) => indent + added)].join('\n')) : config
          }
        })
        proxies.push(proxy)
        for (const path of ['/local.csv', '/remote.csv']) {
          for (const range of [undefined, 'bytes=0-1']) {
            const what = `${withLines ? 'with' : 'without'} the lines, ${path}, ${range ?? 'whole'}`
            const before = app.offloads.length
            const res = await get(proxy.url + path, { Origin: site, ...(range === undefined ? {} : { Range: range }) })
            t.is(app.offloads.length, before + 1, `${what}: offloaded`)
            t.is(res.status, range === undefined ? 200 : 206, what)
            t.deepEqual(res.body, range === undefined ? bytes : bytes.subarray(0, 2), what)
            t.is(res.headers.get('content-disposition'), 'attachment; filename="report.csv"', what)
            if (withLines) {
              t.is(res.headers.get('access-control-allow-origin'), site, what)
              t.is(res.headers.get('access-control-allow-credentials'), 'true', what)
              t.is(res.headers.get('access-control-expose-headers'), 'Content-Disposition', what)
              t.regex(res.headers.get('vary') ?? '', /\bOrigin\b/, what)
            } else {
              t.is(res.headers.get('access-control-allow-origin'), null, what)
              t.is(res.headers.get('access-control-expose-headers'), null, what)
            }
          }
        }
        // A same-origin request: the app sends no grant, and the lines add none (an empty value adds no header).
        const plain = await get(proxy.url + '/local.csv', {})
        t.is(plain.status, 200)
        t.is(plain.headers.get('access-control-allow-origin'), null)
        t.deepEqual(plain.body, bytes)
      }
    } finally {
      logProxiesIfFailed(t, proxies)
      for (const proxy of proxies) await proxy.stop()
      app.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

for (const server of ['apache', 'lighttpd'] as const) {
  proxyTest(server).test(`${server}: an offloaded download keeps the app's CORS headers (200 and 206)`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kd-cors-'))
    await writeFile(join(dir, 'report.csv'), bytes)
    makeWorldReadable(dir)
    const rules = [dirRuleFor[server](dir)]
    const app = await appFor(rules, dir, 'http://127.0.0.1:9')
    let proxy: RunningProxy | undefined
    try {
      proxy = await startProxy(server, { rules, appPort: app.port })
      for (const range of [undefined, 'bytes=0-1']) {
        const before = app.offloads.length
        const res = await get(proxy.url + '/local.csv', { Origin: site, ...(range === undefined ? {} : { Range: range }) })
        t.is(app.offloads.length, before + 1, 'offloaded')
        t.is(res.status, range === undefined ? 200 : 206)
        t.deepEqual(res.body, range === undefined ? bytes : bytes.subarray(0, 2))
        t.is(res.headers.get('access-control-allow-origin'), site)
        t.is(res.headers.get('access-control-allow-credentials'), 'true')
        t.is(res.headers.get('access-control-expose-headers'), 'Content-Disposition')
        t.regex(res.headers.get('vary') ?? '', /\bOrigin\b/)
      }
    } finally {
      if (proxy !== undefined) logProxiesIfFailed(t, [proxy])
      await proxy?.stop()
      app.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
}
