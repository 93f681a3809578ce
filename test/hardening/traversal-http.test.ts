import test from 'ava'
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Router from '@koa/router'
import Koa from 'koa'
import type { Context, Middleware } from 'koa'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { PathFile } from '../../source/path-file.ts'
import { sendfile } from '../../source/sendfile.ts'
import { fill, label, loadCorpus } from './corpus.ts'
import { makeDecoyTree } from './decoy-tree.ts'
import type { DecoyTree } from './decoy-tree.ts'
import { readOffloadValue, resolvesOutside } from './offload-check.ts'
import { pool, rawRequest, toRawUtf8Target, toTarget } from './raw-http.ts'
import type { RawResponse } from './raw-http.ts'

const offloadHeaders = ['x-accel-redirect', 'x-sendfile', 'location']

let tree: DecoyTree
let server: Server
let port = 0
let targets: string[] = []
const routes: Array<{ prefix: string, backend: string | undefined, destination: string }> = []

/** The app as an application would write it: the tail of the URL, raw or decoded, handed to sendfile() with a root. */
function makeApp (root: string): Koa {
  const app = new Koa()
  app.silent = true
  const nginxRule = nginx({ sourceDir: root, destinationUrl: '/protected/' })
  const rules: Record<string, { rule: OffloadRule, destination: string }> = {
    nginx: { rule: nginxRule, destination: '/protected/' },
    apache: { rule: apache({ sourceDir: root, destinationDir: root }), destination: root },
    lighttpd: { rule: lighttpd({ sourceDir: root, destinationDir: root }), destination: root },
    caddy: { rule: caddy({ sourceDir: root, destinationUrl: '/protected/' }), destination: '/protected/' },
    'internal-redirect': { rule: internalRedirect({ sourceDir: root, destinationUrl: '/private/' }), destination: '/private/' }
  }
  const tail = (ctx: Context, prefix: string, decode: boolean): string => {
    const raw = ctx.path.slice(prefix.length)
    if (!decode) return raw
    try {
      return decodeURIComponent(raw)
    } catch {
      return ctx.throw(400)
    }
  }
  const handlers = new Map<string, Middleware>()
  for (const decode of [false, true]) {
    const form = decode ? 'decoded' : 'raw'
    const prefix = `/standalone/${form}/`
    handlers.set(prefix, async (ctx) => { await sendfile(ctx, tail(ctx, prefix, decode), { root }) })
    routes.push({ prefix, backend: undefined, destination: '' })
    for (const [backend, { rule, destination }] of Object.entries(rules)) {
      // The raw tail under every backend adds little over nginx's: the rules see the same resolved path.
      if (!decode && backend !== 'nginx') continue
      const prefix = `/${backend}/${form}/`
      const mw = downloads({ rules: [rule] })
      handlers.set(prefix, async (ctx, next) => { await mw(ctx, async () => { await sendfile(ctx, tail(ctx, prefix, decode), { root }) }); await next() })
      routes.push({ prefix, backend, destination })
    }
  }
  const router = new Router()
  router.get('/router/{*path}', downloads({ rules: [nginxRule] }), (ctx) => {
    ctx.body = download(new PathFile(String(ctx.params.path), { root }))
  })
  routes.push({ prefix: '/router/', backend: 'nginx', destination: '/protected/' })
  app.use(async (ctx, next) => {
    for (const [prefix, handler] of handlers) {
      if (ctx.path.startsWith(prefix)) {
        await handler(ctx, async () => {})
        return
      }
    }
    await next()
  })
  app.use(router.routes())
  return app
}

test.before(async () => {
  tree = await makeDecoyTree()
  server = makeApp(tree.root).listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
  const set = new Set<string>()
  for (const { payload } of loadCorpus()) {
    const filled = fill(payload, tree)
    set.add(toTarget(filled))
    set.add(toRawUtf8Target(filled))
  }
  targets = [...set]
})

test.after.always(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => { if (server === undefined) resolve(); else server.close(() => { resolve() }) })
  await tree?.remove()
})

interface Tally { offloaded: number, streamed: number, refused: number, badRequest: number }

async function check (res: RawResponse, route: typeof routes[number], what: string, problems: string[], tally: Tally): Promise<void> {
  const wire = res.head + res.body.toString('latin1')
  if (wire.includes(tree.marker)) problems.push(`${what}: THE DECOY WAS SENT`)
  if (res.status >= 500) problems.push(`${what}: status ${res.status}`)
  const sent = offloadHeaders.filter((name) => res.headers[name] !== undefined)
  if (res.status !== 200) {
    if (![400, 403, 404, 414, 431].includes(res.status)) problems.push(`${what}: unexpected status ${res.status}`)
    if (sent.length > 0) problems.push(`${what}: ${sent.join(', ')} on a ${res.status}`)
    if (res.status === 400) tally.badRequest++
    else tally.refused++
    return
  }
  if (sent.length === 0) {
    tally.streamed++
    if (![...tree.allowed.values()].some((bytes) => bytes.equals(res.body))) problems.push(`${what}: streamed bytes that are not a file of the root`)
    return
  }
  tally.offloaded++
  if (route.backend === undefined) {
    problems.push(`${what}: an offload header without a rule`)
    return
  }
  if (sent.length !== 1) problems.push(`${what}: several offload headers ${sent.join(', ')}`)
  const name = sent[0] as string
  const value = res.headers[name] as string
  if (res.body.length !== 0 || res.headers['content-length'] !== '0') problems.push(`${what}: an offload response with a body`)
  const segments = readOffloadValue(route.backend, value, route.destination)
  if (typeof segments === 'string') {
    problems.push(`${what}: ${name} ${label(value)}: ${segments}`)
    return
  }
  const outside = await resolvesOutside(tree.root, segments)
  if (outside !== undefined) problems.push(`${what}: ${name} ${label(value)}: ${outside}`)
}

test('traversal over HTTP: sendfile() with a root, given the raw or the decoded URL path, standalone, under every offload backend and behind @koa/router — no decoy byte, no offload header outside the destination, no 5xx', async t => {
  t.timeout(120_000, 'about 5000 requests over fresh sockets')
  const problems: string[] = []
  const tally: Tally = { offloaded: 0, streamed: 0, refused: 0, badRequest: 0 }
  const jobs = routes.flatMap((route) => targets.map((target) => ({ route, target })))
  await pool(jobs, 16, async ({ route, target }) => {
    const what = `${route.prefix}${label(target)}`
    let res: RawResponse
    try {
      res = await rawRequest(port, 'GET', route.prefix + target)
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`)
      return
    }
    await check(res, route, what, problems, tally)
  })
  t.log(`${jobs.length} requests (${targets.length} targets × ${routes.length} routes): ${tally.refused} refused (403/404/414/431), ${tally.badRequest} bad requests (400: undecodable or rejected by Node's parser), ${tally.streamed} streamed from the root, ${tally.offloaded} offloaded inside the destination`)
  t.deepEqual(problems.slice(0, 40), [], `${problems.length} problems`)
  t.true(tally.streamed > 0 && tally.offloaded > 0, 'legitimate paths are served and offloaded (the checks can see both)')
})

test('traversal over HTTP: HEAD and Range requests on escaping paths are refused the same way', async t => {
  const problems: string[] = []
  const tally: Tally = { offloaded: 0, streamed: 0, refused: 0, badRequest: 0 }
  const escaping = ['../secret.txt', '..%2fsecret.txt', 'link-out', 'dir-out/secret.txt', '%252e%252e%252fsecret.txt', 'chain1']
  for (const route of routes.filter((r) => r.prefix.includes('decoded') || r.prefix === '/router/')) {
    for (const target of escaping) {
      for (const [method, headers] of [['HEAD', {}], ['GET', { Range: 'bytes=0-3' }], ['GET', { Range: 'bytes=0-1,3-4' }]] as const) {
        const res = await rawRequest(port, method, route.prefix + target, headers)
        await check(res, route, `${method} ${JSON.stringify(headers)} ${route.prefix}${target}`, problems, tally)
      }
    }
  }
  t.deepEqual(problems, [])
})
