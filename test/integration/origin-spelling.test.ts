import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { logProxiesIfFailed, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

// A fixed-origin rule hands the proxy the decoded path, and the proxy escapes it again its own way:
// nginx writes "!$&'()*+,;=:@" unescaped, Caddy (Go) "$&+,;=:@" unescaped and "!'()*" escaped.
// RFC 3986 does not make `p%2Bq.txt` and `p+q.txt` the same path (an origin may decode a "+" in a path as a
// space), so the proxy fetched another object than the file URL names. The origin here tells the
// two spellings apart: the right one has the file, the other a decoy.
const servers = { nginx: proxyTest('nginx'), caddy: proxyTest('caddy') }

let origin: Origin | undefined
const running: Partial<Record<'nginx' | 'caddy', { server: Server, proxy: RunningProxy, sent: Map<string, string | undefined> }>> = {}

test.before(async () => {
  origin = await startOrigin()
  const objects: Array<[right: string, decoy: string]> = [
    ['/bucket/p%2Bq.txt', '/bucket/p+q.txt'],
    ['/bucket/a%3Ab%40c%3B.txt', '/bucket/a:b@c;.txt'],
    ['/bucket/it\'s(1).txt', '/bucket/it%27s%281%29.txt'],
    ['/bucket/it%27s%281%29.txt', '/bucket/it\'s(1).txt']
  ]
  for (const [right] of objects) origin.put(right, { bytes: `the file at ${right}\n` })
  for (const [right, decoy] of objects) if (!objects.some(([r]) => r === decoy)) origin.put(decoy, { bytes: `DECOY for ${right}\n` })
  const base = `${origin.url}/bucket/`
  const rules: Record<'nginx' | 'caddy', OffloadRule[]> = {
    nginx: [nginx({ sourceUrl: base, destinationUrl: '/_origin/' })],
    caddy: [caddy({ sourceUrl: base, destinationUrl: '/_origin/' })]
  }
  for (const name of ['nginx', 'caddy'] as const) {
    if (!servers[name].available) continue
    const sent = new Map<string, string | undefined>()
    const app = new Koa()
    app.use(async (c, next) => {
      await next()
      sent.set(c.get('x-object'), c.response.get('x-accel-redirect') || undefined)
    })
    app.use(downloads({ rules: rules[name] }))
    // the object's URL path as written comes in a header: the proxy in front would re-encode a path
    app.use((c) => { c.body = download(new HttpFile(origin?.url + c.get('x-object'))) })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const proxy = await startProxy(name, { rules: rules[name], appPort: (server.address() as AddressInfo).port })
    running[name] = { server, proxy, sent }
  }
})
test.afterEach.always((t) => { logProxiesIfFailed(t, Object.values(running).map((r) => r.proxy)) })
test.after.always(async () => {
  for (const r of Object.values(running)) {
    await r.proxy.stop()
    r.server.closeAllConnections()
    r.server.close()
  }
  await origin?.stop()
})

const cases = {
  // nginx sends these unescaped; the file URL escapes them → streamed
  nginx: { streamed: ['/bucket/p%2Bq.txt', '/bucket/a%3Ab%40c%3B.txt', '/bucket/it%27s%281%29.txt'], offloaded: ['/bucket/it\'s(1).txt'] },
  // Go escapes "'()" and leaves "+:@;" as they are
  caddy: { streamed: ['/bucket/p%2Bq.txt', '/bucket/a%3Ab%40c%3B.txt', '/bucket/it\'s(1).txt'], offloaded: ['/bucket/it%27s%281%29.txt'] }
}

for (const name of ['nginx', 'caddy'] as const) {
  servers[name].test(`${name} sourceUrl: the client gets the object the file URL names, whatever its spelling of sub-delimiters (streamed when the proxy would respell it)`, async (t) => {
    const where = running[name]
    if (where === undefined) throw new Error(`${name} did not start`)
    for (const path of [...cases[name].streamed, ...cases[name].offloaded]) {
      const response = await fetch(where.proxy.url + '/download', { headers: { 'x-object': path } })
      t.is(await response.text(), `the file at ${path}\n`, path)
      t.is(response.status, 200, path)
      t.is(where.sent.get(path) === undefined, cases[name].streamed.includes(path), `${path}: ${cases[name].streamed.includes(path) ? 'streamed' : 'offloaded'}`)
    }
  })
}
