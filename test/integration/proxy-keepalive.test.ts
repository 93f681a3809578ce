// The app closes an idle keep-alive connection after its server.keepAliveTimeout (Node: 5 s by
// default). A proxy that sends a request on that connection just as the app closes it loses the
// request, unless it sends it again: found by a random seed of test/hardening/fuzz-rules.test.ts,
// where Apache answered 502 ("AH01102: error reading status line from remote server …
// Connection reset by peer") for requests the app never saw, and reproduced by sending requests
// through Apache just as the app's timer fired (2 of 60 lost). Each generated configuration must
// keep such a loss from reaching a client: nginx, lighttpd and Apache (ProxyPass …
// disablereuse=On) open a connection per request, and Caddy sends a GET that a reused connection
// lost again, on a new one.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ServerName } from '../../source/server-config.ts'
import { firstOnEachConnection } from '../helpers/drop-reused.ts'
import { dirRuleFor, logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

interface CountingApp {
  port: number
  /** TCP connections the proxy has opened to the app so far. */
  connections: () => number
  /** Requests the app dropped unanswered. */
  dropped: () => number
  close: () => Promise<void>
}

/**
 * A plain app that answers `ok 1` to the first request on a connection and counts the proxy's
 * connections. Any later request on a connection finds it closed under it, unanswered: what a
 * request sent as the app's keep-alive timer fires meets.
 */
async function countingApp (): Promise<CountingApp> {
  let connections = 0
  const { handle, dropped } = firstOnEachConnection((_req, res) => {
    res.setHeader('Content-Type', 'text/plain')
    res.end('ok 1\n')
  })
  const server = createServer(handle)
  // Long enough that the app itself never closes an idle connection during a test.
  server.keepAliveTimeout = 60_000
  server.on('connection', () => { connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    dropped,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}

async function withProxy (server: ServerName, run: (proxy: RunningProxy, app: CountingApp) => Promise<void>, t: { passed: boolean, log: (...values: unknown[]) => void }): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-keepalive-'))
  await writeFile(join(dir, 'a.txt'), 'a\n')
  makeWorldReadable(dir)
  const app = await countingApp()
  let proxy: RunningProxy | undefined
  try {
    proxy = await startProxy(server, { rules: [dirRuleFor[server](dir)], appPort: app.port })
    await run(proxy, app)
  } finally {
    if (proxy !== undefined) {
      logProxiesIfFailed(t, [proxy])
      await proxy.stop()
    }
    await app.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/** GET through the proxy: the status and body, or the client-side error (a closed connection). */
async function get (proxy: RunningProxy): Promise<string> {
  try {
    const response = await fetch(proxy.url + '/page')
    return `${response.status} ${await response.text()}`
  } catch (error) {
    return `failed: ${String((error as Error).cause ?? error)}`
  }
}

for (const server of ['nginx', 'lighttpd', 'apache', 'caddy'] as const) {
  const { test: proxied } = proxyTest(server)
  proxied(`${server}: with an app that drops every request made on a reused connection, each request still gets the app's answer (a connection per request, or the lost one sent again)`, async (t) => {
    await withProxy(server, async (proxy, app) => {
      if (server === 'apache') t.true(proxy.config.includes(`  ProxyPass / http://127.0.0.1:${app.port}/ disablereuse=On\n`), 'the generated ProxyPass line')
      const answers: string[] = []
      for (let i = 0; i < 4; i++) answers.push(await get(proxy))
      // nginx, lighttpd and Apache open a connection per request (the app answers each as its
      // first); Caddy reuses connections and sends a lost GET again on a new one.
      t.deepEqual(answers, ['200 ok 1\n', '200 ok 1\n', '200 ok 1\n', '200 ok 1\n'])
      if (server === 'caddy') {
        t.is(app.dropped(), 3, 'requests 2 to 4 went out on the previous connection first')
      } else {
        t.is(app.dropped(), 0)
      }
      t.is(app.connections(), 4)
    }, t)
  })
}
