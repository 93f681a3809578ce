import test from 'ava'
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { sendfile } from '../../source/sendfile.ts'
import type { ServerName } from '../../source/server-config.ts'
import { makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import { fill, label, loadCorpus } from './corpus.ts'
import { makeDecoyTree } from './decoy-tree.ts'
import { pool, rawRequest, toTarget } from './raw-http.ts'

/**
 * The traversal corpus through each real proxy, in front of an app that offloads with that proxy's
 * rule and the configuration `koa-downloads config` generates for it. The decoys are readable by
 * the proxy's workers, so any value that pointed outside the root would be served: none may be.
 */
const servers: Array<[ServerName, (root: string) => OffloadRule]> = [
  ['nginx', (root) => nginx({ sourceDir: root, destinationUrl: '/protected/' })],
  ['apache', (root) => apache({ sourceDir: root, destinationDir: root })],
  ['lighttpd', (root) => lighttpd({ sourceDir: root, destinationDir: root })],
  ['caddy', (root) => caddy({ sourceDir: root, destinationUrl: '/protected/' })]
]

for (const [name, ruleFor] of servers) {
  const { test: proxied } = proxyTest(name)
  proxied(`traversal through ${name}: no payload of the corpus, raw or decoded by the app, gets a decoy byte out of the proxy; in-root files and symlinks are offloaded, escaping symlinks are 404`, async t => {
    t.timeout(180_000)
    const tree = await makeDecoyTree()
    t.teardown(tree.remove)
    makeWorldReadable(tree.base)
    const rule = ruleFor(tree.root)
    const app = new Koa()
    app.silent = true
    app.use(downloads({ rules: [rule] }))
    app.use(async (ctx) => {
      const raw = ctx.path.startsWith('/raw/')
      if (!raw && !ctx.path.startsWith('/files/')) return
      let path = ctx.path.slice(raw ? 5 : 7)
      if (!raw) {
        try { path = decodeURIComponent(path) } catch { ctx.throw(400) }
      }
      await sendfile(ctx, path, { root: tree.root })
    })
    const server: Server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    })
    const proxy = await startProxy(name, { rules: [rule], appPort: (server.address() as AddressInfo).port })
    t.teardown(proxy.stop)

    // Controls: an in-root file and an in-root symlink arrive through the proxy; escaping symlinks do not.
    const hello = tree.allowed.get('hello.txt')
    for (const path of ['/files/hello.txt', '/files/link-in']) {
      const res = await rawRequest(proxy.port, 'GET', path)
      t.is(res.status, 200, `${path}\n${proxy.logs()}`)
      t.true(hello !== undefined && res.body.equals(hello), path)
    }
    for (const path of ['/files/link-out', '/files/dir-out/secret.txt', '/files/abs-link', '/files/chain1', '/files/sub/link-up/secret.txt']) {
      const res = await rawRequest(proxy.port, 'GET', path)
      t.is(res.status, 404, path)
      t.false(res.body.includes(tree.marker), path)
    }

    const targets = new Set<string>()
    for (const { payload } of loadCorpus()) targets.add(toTarget(fill(payload, tree)))
    const problems: string[] = []
    const statuses = new Map<number, number>()
    await pool([...targets].flatMap((target) => ['/files/' + target, '/raw/' + target]), 8, async (path) => {
      let wire: string
      let status: number
      try {
        const res = await rawRequest(proxy.port, 'GET', path)
        status = res.status
        wire = res.head + res.body.toString('latin1')
      } catch (error) {
        problems.push(`${label(path)}: ${(error as Error).message}`)
        return
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      if (wire.includes(tree.marker)) problems.push(`${label(path)}: THE DECOY WAS SENT (${status})`)
    })
    t.log(`${targets.size * 2} requests through ${name}: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}`)
    t.deepEqual(problems, [], proxy.logs().slice(-2000))
  })
}
