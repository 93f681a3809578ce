import test from 'ava'
import { once } from 'node:events'
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { PathFile } from '../../source/path-file.ts'
import type { ServerName } from '../../source/server-config.ts'
import { makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import { rawRequest } from '../hardening/raw-http.ts'

// Regressions found by test/hardening/fuzz-rules.test.ts (random rule sets through the real proxies).

/** Listening before the app exists: a fixed-origin rule needs the app's own URL. */
async function listen (): Promise<{ server: Server, port: number, close: () => Promise<void> }> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

/** A tree `<base>/files/{a.txt, sub/b.txt}`, an app offloading `/f/<path>` (rooted PathFile) and `/u/<path>` (HttpFile of `/o/<path>`, streamed). */
async function setUp (server: ServerName, rulesFor: (dir: string, originUrl: string) => OffloadRule[]): Promise<{ proxy: RunningProxy, sent: string[], stop: () => Promise<void> }> {
  const base = await realpath(await mkdtemp(join(tmpdir(), 'kd-side-by-side-')))
  const dir = join(base, 'files')
  await mkdir(join(dir, 'sub'), { recursive: true })
  await writeFile(join(dir, 'a.txt'), 'file a\n')
  await writeFile(join(dir, 'sub', 'b.txt'), 'file b\n')
  makeWorldReadable(base)
  const sent: string[] = []
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    await next()
    for (const name of ['x-accel-redirect', 'x-offload']) {
      const value: unknown = ctx.response.get(name)
      if (typeof value === 'string' && value !== '') sent.push(`${name}: ${value}`)
    }
  })
  const appServer = await listen()
  const originUrl = `http://127.0.0.1:${appServer.port}/o/`
  const rules = rulesFor(dir, originUrl)
  app.use(downloads({ rules }))
  app.use((ctx) => {
    const rest = decodeURIComponent(ctx.path.slice(3))
    if (ctx.path.startsWith('/f/')) ctx.body = new PathFile(rest, { root: dir })
    else if (ctx.path.startsWith('/o/')) ctx.body = new PathFile(rest, { root: dir })
    else if (ctx.path.startsWith('/u/')) ctx.body = new HttpFile(originUrl + ctx.path.slice(3))
  })
  appServer.server.on('request', app.callback())
  let proxy: RunningProxy
  try {
    proxy = await startProxy(server, { rules, appPort: appServer.port })
  } catch (error) {
    await appServer.close()
    await rm(base, { recursive: true, force: true })
    throw error
  }
  return {
    proxy,
    sent,
    stop: async () => {
      await proxy.stop()
      await appServer.close()
      await rm(base, { recursive: true, force: true })
    }
  }
}

const nginxTest = proxyTest('nginx').test
nginxTest('nginx: a directory handed to an offload rule is a 404, as when Node streams it — not a 301 to the internal location + "/" (with and without proxyRefusesSymlinks)', async (t) => {
  for (const proxyRefusesSymlinks of [false, true]) {
    const { proxy, sent, stop } = await setUp('nginx', (dir) => [nginx({ sourceDir: dir, destinationUrl: '/protected/', proxyRefusesSymlinks })])
    t.teardown(stop)
    const res = await rawRequest(proxy.port, 'GET', '/f/sub')
    t.deepEqual(sent, ['x-accel-redirect: /protected/sub'], 'the app offloads the directory: it checks no file type')
    t.is(res.status, 404, `proxyRefusesSymlinks: ${String(proxyRefusesSymlinks)}\n${res.head}`)
    t.is(res.headers.location, undefined)
    const file = await rawRequest(proxy.port, 'GET', '/f/sub/b.txt')
    t.is(file.status, 200)
    t.is(file.body.toString(), 'file b\n')
  }
})

const caddyTest = proxyTest('caddy').test
caddyTest('caddy: a rule whose header name is not written canonically (x-accel-redirect, x-OFFLOAD) is served — Caddy\'s {rp.header.*} placeholder is case-sensitive', async (t) => {
  const { proxy, sent, stop } = await setUp('caddy', (dir, originUrl) => [
    caddy({ sourceDir: join(dir, 'sub'), destinationUrl: '/protected/', header: 'x-accel-redirect' }),
    caddy({ sourceUrl: originUrl, destinationUrl: '/_origin/', header: 'x-OFFLOAD' })
  ])
  t.teardown(stop)
  const local = await rawRequest(proxy.port, 'GET', '/f/sub/b.txt')
  t.is(local.status, 200, local.head)
  t.is(local.body.toString(), 'file b\n')
  const remote = await rawRequest(proxy.port, 'GET', '/u/a.txt')
  t.is(remote.status, 200, remote.head)
  t.is(remote.body.toString(), 'file a\n')
  t.deepEqual(sent, ['x-accel-redirect: /protected/b.txt', 'x-offload: /_origin/a.txt'])
})

caddyTest('caddy: a sourceUrl rule whose destinationUrl has a character Go escapes in paths (\' ( ) ! *) reaches the origin at the rule\'s path — `uri replace` searches the escaped path', async (t) => {
  const { proxy, sent, stop } = await setUp('caddy', (_dir, originUrl) => [
    caddy({ sourceUrl: originUrl + 'sub/', destinationUrl: '/(x)!*/' }),
    caddy({ sourceUrl: originUrl, destinationUrl: "/it's/" })
  ])
  t.teardown(stop)
  const res = await rawRequest(proxy.port, 'GET', '/u/a.txt')
  t.is(res.status, 200, res.head)
  t.is(res.body.toString(), 'file a\n')
  const nested = await rawRequest(proxy.port, 'GET', '/u/sub/b.txt')
  t.is(nested.status, 200, nested.head)
  t.is(nested.body.toString(), 'file b\n')
  // unreplaced, the origin (this app) was asked for /it%27s/a.txt: another path, here a 404
  t.deepEqual(sent, ["x-accel-redirect: /it's/a.txt", 'x-accel-redirect: /(x)!*/b.txt'])
})
