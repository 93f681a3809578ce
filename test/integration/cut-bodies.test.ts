// A download the app streams (a generated export, an upstream without a length) can fail after its
// headers. The client must then see a cut transfer, never a complete-looking file: what reaches it
// through each proxy, with the configuration `koa-downloads config` generates, and for nginx also
// behind the plainest hand-written `location / { proxy_pass …; }`, which speaks HTTP/1.0 to the app.
// There a body without a length has no chunked framing and ends with the connection: the app resets
// that connection (RST) on a failure, since a normal close would read as the end of the file.
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { VirtualFile } from '../../source/virtual-file.ts'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { ServerName } from '../../source/server-config.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { dirRuleFor, logProxiesIfFailed, makeWorldReadable, nginxConfig, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy, StartProxyOptions } from '../helpers/proxies.ts'

const FIRST = 100_000

/**
 * The app: /fails streams FIRST bytes of unknown length, then fails; /ends sends them and 'end';
 * /fails-sized is /fails with its size given (Content-Length: FIRST + 3).
 */
async function exportApp (): Promise<{ server: Server, port: number, failures: () => number }> {
  let failures = 0
  const app = new Koa()
  app.on('error', () => { failures++ })
  app.use(downloads())
  app.use((ctx) => {
    const fails = ctx.path.startsWith('/fails')
    ctx.body = download(new VirtualFile((async function * () {
      yield Buffer.alloc(FIRST, 0x61)
      await new Promise((resolve) => setTimeout(resolve, 50))
      if (fails) throw new Error('the export failed')
      yield Buffer.from('end')
    })(), { name: 'export.csv', size: ctx.path === '/fails-sized' ? FIRST + 3 : undefined }))
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as AddressInfo).port, failures: () => failures }
}

interface Outcome { status: number, complete: boolean, bytes: number }

/** GET through the proxy, as a client would take it: whether the response ended as complete. */
async function fetchOutcome (url: string): Promise<Outcome> {
  const { status, complete, body } = await rawRequest(url)
  return { status, complete, bytes: body.length }
}

async function throughProxy (server: ServerName, t: { passed: boolean, log: (...values: unknown[]) => void }, configFor?: StartProxyOptions['configFor']): Promise<{ fails: Outcome, ends: Outcome, sized: Outcome, failures: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-cut-'))
  await writeFile(join(dir, 'a.txt'), 'a\n')
  makeWorldReadable(dir)
  const app = await exportApp()
  let proxy: RunningProxy | undefined
  try {
    proxy = await startProxy(server, { rules: [dirRuleFor[server](dir)], appPort: app.port, configFor })
    const fails = await fetchOutcome(`${proxy.url}/fails`)
    const ends = await fetchOutcome(`${proxy.url}/ends`)
    const sized = await fetchOutcome(`${proxy.url}/fails-sized`)
    return { fails, ends, sized, failures: app.failures() }
  } finally {
    if (proxy !== undefined) {
      logProxiesIfFailed(t, [proxy])
      await proxy.stop()
    }
    app.server.closeAllConnections()
    app.server.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const whole: Outcome = { status: 200, complete: true, bytes: FIRST + 3 }

for (const server of ['nginx', 'apache', 'lighttpd'] as const) {
  const { test } = proxyTest(server)
  test(`${server} (generated configuration): a streamed download that fails mid-body reaches the client cut, not complete; one that ends arrives whole`, async (t) => {
    const { fails, ends, sized, failures } = await throughProxy(server, t)
    t.is(fails.status, 200)
    t.false(fails.complete, `${fails.bytes} bytes, ended as complete`)
    t.true(fails.bytes <= FIRST)
    t.deepEqual(ends, whole)
    t.false(sized.complete, `sized: ${sized.bytes} bytes, ended as complete`)
    t.is(failures, 2, 'the app reported both failures')
  })
}

{
  const { test } = proxyTest('caddy')
  test('caddy 2.6 (generated configuration): a failing body of unknown length reaches the client as complete — Caddy\'s reverse_proxy ends the response normally; with its size given, the client sees the cut', async (t) => {
    const { fails, ends, sized, failures } = await throughProxy('caddy', t)
    // Caddy logs "aborting with incomplete response" and then finishes the chunked response to the
    // client as if the body were whole (caddyserver/caddy#7845 and its fixes, after 2.6). Nothing
    // in the Caddyfile changes it: docs/deployment/caddy.md says to give such downloads a size.
    t.deepEqual(fails, { status: 200, complete: true, bytes: FIRST })
    t.deepEqual(ends, whole)
    t.is(sized.status, 200)
    t.false(sized.complete, `sized: ${sized.bytes} bytes, ended as complete`)
    t.is(failures, 2)
  })
}

{
  const { test } = proxyTest('nginx')
  test('nginx behind a hand-written `location / { proxy_pass …; }` (HTTP/1.0 to the app): the app resets the connection of a failing body of unknown length, and nginx passes the cut on', async (t) => {
    let sent = ''
    const { fails, ends, sized, failures } = await throughProxy('nginx', t, ({ port, prefix, appPort }) => {
      sent = nginxConfig(prefix, [`  server { listen 127.0.0.1:${port}; location / { proxy_pass http://127.0.0.1:${appPort}; } }`])
      return sent
    })
    t.notRegex(sent, /proxy_http_version/)
    t.is(fails.status, 200)
    t.false(fails.complete, `${fails.bytes} bytes, ended as complete`)
    t.deepEqual(ends, whole)
    t.false(sized.complete, `sized: ${sized.bytes} bytes, ended as complete`)
    t.is(failures, 2, 'the app reported both failures, the reset one included')
  })
}

{
  const { test } = proxyTest('nginx')
  test('nginx (generated configuration): a file at an origin (sourceUrl) whose body of unknown length is cut reaches the client cut, not complete (the origin location speaks HTTP/1.1: chunked framing, not the end of the connection)', async (t) => {
    const origin = await startOrigin()
    origin.put('/media/export.csv', { bytes: Buffer.alloc(FIRST, 0x62), chunked: true })
    origin.put('/media/whole.csv', { bytes: Buffer.alloc(FIRST, 0x62), chunked: true })
    const app = new Koa()
    app.use(downloads({ rules: [nginx({ sourceUrl: `${origin.url}/media/`, destinationUrl: '/_origin/' })] }))
    app.use((ctx) => { ctx.body = download(new HttpFile(`${origin.url}/media${ctx.path}`)) })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    let proxy: RunningProxy | undefined
    try {
      proxy = await startProxy('nginx', { rules: [nginx({ sourceUrl: `${origin.url}/media/`, destinationUrl: '/_origin/' })], appPort: (server.address() as AddressInfo).port })
      t.deepEqual(await fetchOutcome(`${proxy.url}/whole.csv`), { status: 200, complete: true, bytes: FIRST })
      origin.log.fault = 'drop'
      const cut = await fetchOutcome(`${proxy.url}/export.csv`)
      t.is(cut.status, 200)
      t.false(cut.complete, `${cut.bytes} bytes, ended as complete`)
      t.true(cut.bytes < FIRST)
      const fetched = origin.log.matching('/media/export.csv').filter((e) => e.method === 'GET')
      t.is(fetched.length, 1, 'the proxy fetched it, the app did not')
    } finally {
      if (proxy !== undefined) {
        logProxiesIfFailed(t, [proxy])
        await proxy.stop()
      }
      server.closeAllConnections()
      server.close()
      await origin.stop()
    }
  })
}
