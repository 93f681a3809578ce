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
// RFC 3986 does not make `p%2Bq.txt` and `p+q.txt` the same path, and some origins do not either
// (a "+" read as a space, a ";" starting a path parameter): the origin here holds another object
// at the proxy's spelling, and the app streams those names. Every other sub-delimiter names the same
// object escaped or not at common origins (S3, GCS, nginx, Apache decode them), as it does here:
// names like "report (1).pdf" stay offloaded through both proxies.
const servers = { nginx: proxyTest('nginx'), caddy: proxyTest('caddy') }

let origin: Origin | undefined
// Each name as a file URL may write it, and as nginx and Caddy re-spell it: one object at the origin.
const sameObject: Record<string, string[]> = {
  "it's (1).txt": ["/bucket/it's%20(1).txt", '/bucket/it%27s%20%281%29.txt'],
  'a&b,c=d:e@f!.txt': ['/bucket/a%26b%2Cc%3Dd%3Ae%40f%21.txt', '/bucket/a&b,c=d:e@f!.txt', '/bucket/a&b,c=d:e@f%21.txt']
}
const running: Partial<Record<'nginx' | 'caddy', { server: Server, proxy: RunningProxy, sent: Map<string, string | undefined> }>> = {}

test.before(async () => {
  origin = await startOrigin()
  // "+" and ";": two objects, one per spelling
  for (const path of ['/bucket/p%2Bq.txt', '/bucket/p+q.txt', '/bucket/a%3Bb.txt', '/bucket/a;b.txt']) origin.put(path, { bytes: `the object ${path}\n` })
  // the others: one object, whichever spelling reaches the origin
  for (const [name, spellings] of Object.entries(sameObject)) {
    for (const path of spellings) origin.put(path, { bytes: `the object ${name}\n` })
  }
  // the same for a "+" or ";" in the sourceUrl's own path, which the proxy sends as the config writes it
  for (const path of ['/p+q/x.txt', '/p%2Bq/x.txt', '/a;b/x.txt', '/a%3Bb/x.txt']) origin.put(path, { bytes: `the object ${path}\n` })
  const base = `${origin.url}/bucket/`
  const rules: Record<'nginx' | 'caddy', OffloadRule[]> = { nginx: [], caddy: [] }
  for (const [name, make] of [['nginx', nginx], ['caddy', caddy]] as const) {
    rules[name].push(
      make({ sourceUrl: base, destinationUrl: '/_origin/' }),
      make({ sourceUrl: `${origin.url}/p+q/`, destinationUrl: '/_plus/' }),
      make({ sourceUrl: `${origin.url}/a%3Bb/`, destinationUrl: '/_semi/' })
    )
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

for (const name of ['nginx', 'caddy'] as const) {
  servers[name].test(`${name} sourceUrl: the client gets the object the file URL names; names whose URL escapes "+" or ";" are streamed, other sub-delimiters are offloaded`, async (t) => {
    const where = running[name]
    if (where === undefined) throw new Error(`${name} did not start`)
    const get = async (path: string): Promise<{ status: number, body: string, offloaded: boolean }> => {
      const response = await fetch(where.proxy.url + '/download', { headers: { 'x-object': path } })
      return { status: response.status, body: await response.text(), offloaded: where.sent.get(path) !== undefined }
    }
    for (const [path, offloaded] of [['/bucket/p%2Bq.txt', false], ['/bucket/p+q.txt', true], ['/bucket/a%3Bb.txt', false], ['/bucket/a;b.txt', true]] as const) {
      t.deepEqual(await get(path), { status: 200, body: `the object ${path}\n`, offloaded }, path)
    }
    for (const [objectName, spellings] of Object.entries(sameObject)) {
      for (const path of spellings) t.deepEqual(await get(path), { status: 200, body: `the object ${objectName}\n`, offloaded: true }, path)
    }
  })
}

for (const name of ['nginx', 'caddy'] as const) {
  servers[name].test(`${name} sourceUrl with "+" or ";" in its own path: the proxy asks for it as the sourceUrl writes it; a file URL writing it the other way is streamed`, async (t) => {
    const where = running[name]
    if (where === undefined) throw new Error(`${name} did not start`)
    for (const [path, value] of [['/p+q/x.txt', '/_plus/x.txt'], ['/p%2Bq/x.txt', undefined], ['/a%3Bb/x.txt', '/_semi/x.txt'], ['/a;b/x.txt', undefined]] as const) {
      const response = await fetch(where.proxy.url + '/download', { headers: { 'x-object': path } })
      t.deepEqual({ status: response.status, body: await response.text(), offload: where.sent.get(path) }, { status: 200, body: `the object ${path}\n`, offload: value }, path)
    }
  })
}
