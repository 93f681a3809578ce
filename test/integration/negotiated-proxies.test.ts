// negotiated() with its default value forms behind each real proxy that may ask for its header:
// nginx and Caddy (X-Accel-Redirect), Apache and lighttpd (X-Sendfile). The rule cannot tell which
// one asked, so every name it offloads must be read as the same file by both; names one of them
// would read as another file ("a%20b.txt" is "a b.txt" to nginx and lighttpd) are streamed. Each
// directory also holds those other files, so a value read the wrong way serves a wrong body.
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { negotiated } from '../../source/backends/negotiated.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import type { ServerName } from '../../source/server-config.ts'
import { listen } from '../helpers/listen.ts'
import { makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'

const names = ['a b.txt', 'ü.txt', 'h#x.txt', 'o"; x=.txt', 'a+b;c=d.txt', 'a%20b.txt', '100%.txt', 'q?x.txt']
// The X-Sendfile-Type each proxy sends, written into the generated configuration by hand (the
// guides' line for a negotiated() rule).
const asks: Record<ServerName, { type: string, config: (text: string) => string }> = {
  nginx: { type: 'X-Accel-Redirect', config: (text) => text.replace(/(proxy_pass http:\/\/127\.0\.0\.1:\d+;)/, '$1\n      proxy_set_header X-Sendfile-Type X-Accel-Redirect;') },
  caddy: { type: 'X-Accel-Redirect', config: (text) => text.replace(/(reverse_proxy 127\.0\.0\.1:\d+ \{\n)/, '$1\t\theader_up X-Sendfile-Type X-Accel-Redirect\n') },
  apache: { type: 'X-Sendfile', config: (text) => text.replace(/(ProxyPass \/ )/, 'RequestHeader set X-Sendfile-Type X-Sendfile\n  $1').replace(/^(LoadModule proxy_module .*)$/m, '$1\nLoadModule headers_module /usr/lib/apache2/modules/mod_headers.so') },
  lighttpd: { type: 'X-Sendfile', config: (text) => text + 'setenv.set-request-header = ( "X-Sendfile-Type" => "X-Sendfile" )\n' }
}

for (const server of ['nginx', 'caddy', 'apache', 'lighttpd'] as const) {
  const { test } = proxyTest(server)
  test(`negotiated() behind ${server}: every name gets its own bytes — offloaded when both servers of its header read the value alike, streamed otherwise`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), `kd-negotiated-${server}-`))
    t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
    const past = new Date(Date.now() - 3_600_000)
    for (const name of names) {
      await writeFile(join(dir, name), `the file ${name}\n`)
      await utimes(join(dir, name), past, past)
    }
    makeWorldReadable(dir)
    const app = new Koa()
    app.silent = true
    app.use(downloads({ rules: [negotiated({ allow: ['X-Accel-Redirect', 'X-Sendfile'], mapping: { [dir]: '/protected/' } })] }))
    app.use((ctx) => { ctx.body = new PathFile(decodeURIComponent(ctx.path.slice(1)), { root: dir }) })
    const appUrl = await listen(t, app)
    // The proxy's own side of the offload: the block its rule would generate for this directory.
    const rule = server === 'nginx'
      ? nginx({ sourceDir: dir, destinationUrl: '/protected/' })
      : server === 'caddy' ? caddy({ sourceDir: dir, destinationUrl: '/protected/' }) : server === 'apache' ? apache({ sourceDir: dir, destinationDir: dir }) : lighttpd({ sourceDir: dir, destinationDir: dir })
    const proxy = await startProxy(server, {
      rules: [rule],
      appPort: Number(new URL(appUrl).port),
      configFor: ({ port, prefix, appPort }) => asks[server].config(renderServerConfig(server, [rule], { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } }))
    })
    t.teardown(proxy.stop)
    const offloaded: string[] = []
    for (const name of names) {
      const path = '/' + encodeURIComponent(name)
      const direct = await fetch(appUrl + path, { headers: { 'X-Sendfile-Type': asks[server].type } })
      await direct.arrayBuffer()
      if (direct.headers.has(asks[server].type)) offloaded.push(name)
      const res = await fetch(proxy.url + path)
      t.is(res.status, 200, `${name}: ${proxy.logs()}`)
      t.is(await res.text(), `the file ${name}\n`, name)
    }
    // "%" (and "?" for X-Accel-Redirect) are read differently by the two servers: streamed.
    t.deepEqual(offloaded, names.filter((name) => !name.includes('%') && !(asks[server].type === 'X-Accel-Redirect' && name.includes('?'))))
  })
}
