// createDemo(): the demo application and everything it runs on — a flydrive fs disk in a temp dir,
// an SQLite table, a local remote origin and, if it starts in time, an in-process S3 server.
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Router from '@koa/router'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import Koa from 'koa'
import { download, downloads, PathFile, sendfile } from '../source/index.ts'
import { renderServerConfig, serverNames } from '../source/server-config.ts'
import type { ServerName } from '../source/server-config.ts'
import { presignedRedirect, recordFile, storage } from '../adapters/flydrive/index.ts'
import { deliveries, findDelivery, rulesFor } from './deliveries.ts'
import type { DeliveryId } from './deliveries.ts'
import { explainPage } from './explain.ts'
import { indexPage } from './index-page.ts'
import { startOrigin } from './origin.ts'
import { openRecords, seedUploads } from './records.ts'
import { s3Help, startS3 } from './s3.ts'
import type { DemoS3 } from './s3.ts'
import { findSource, s3Body, s3Key, sources, storageKey } from './sources.ts'
import type { DemoEnv } from './sources.ts'

export const filesDir = fileURLToPath(new URL('./files', import.meta.url))

export interface DemoOptions {
  /** The proxy that runs in front (demo:nginx): its column then links to real downloads. */
  proxy?: ServerName | undefined
  /** Start (or connect to) an S3 server. @default true */
  s3?: boolean | undefined
  /** How long the S3 server may take to start, in ms. @default 5000 */
  s3Timeout?: number | undefined
}

export interface Demo {
  app: Koa
  env: DemoEnv
  /** Listens on `port` (0 = ephemeral) and `host`; resolves with the port. */
  listen: (port: number, host?: string) => Promise<number>
  stop: () => Promise<void>
}

export async function createDemo (options: DemoOptions = {}): Promise<Demo> {
  const storageDir = await mkdtemp(join(tmpdir(), 'kd-demo-storage-'))
  await mkdir(join(storageDir, dirname(storageKey)), { recursive: true })
  await copyFile(join(filesDir, 'say "hi" 100%.txt'), join(storageDir, storageKey))
  for (const row of seedUploads) {
    if (row.bytes === '') continue
    await mkdir(join(storageDir, dirname(row.file_key)), { recursive: true })
    await writeFile(join(storageDir, row.file_key), row.bytes)
  }
  const media = storage(new Disk(new FSDriver({ location: storageDir, visibility: 'private' })))
  const records = openRecords()
  const origin = await startOrigin(filesDir)

  let s3: DemoS3 | undefined
  let s3Problem: string | undefined
  if (options.s3 === false) {
    s3Problem = 'switched off'
  } else {
    try {
      s3 = await startS3(options.s3Timeout)
      await s3.put(s3Key, s3Body, 'application/json')
    } catch (error) {
      s3Problem = (error as Error).message
      console.warn(`koa-downloads demo: no S3 (${s3Problem}).\n${s3Help}`)
      await s3?.stop()
      s3 = undefined
    }
  }

  const env: DemoEnv = {
    filesDir,
    storageDir,
    media,
    records,
    originUrl: origin.url,
    s3: s3 === undefined ? undefined : { storage: storage(s3.disk), endpoint: s3.endpoint, bucket: s3.bucket },
    s3Problem
  }
  const live = new Set<DeliveryId>(['node', 'presigned', ...deliveries.filter((d) => d.server !== undefined && d.server === options.proxy).map((d) => d.id)])
  const app = buildApp(env, live, options.proxy)
  const servers: Server[] = []

  return {
    app,
    env,
    listen: async (port, host) => {
      const server: Server = await new Promise((resolve, reject) => {
        const s = app.listen(port, host, () => { resolve(s) })
        s.once('error', reject)
      })
      servers.push(server)
      return (server.address() as AddressInfo).port
    },
    stop: async () => {
      for (const server of servers) {
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => { resolve() }))
      }
      await origin.stop()
      await s3?.stop()
      records.close()
      await rm(storageDir, { recursive: true, force: true })
    }
  }
}

function buildApp (env: DemoEnv, live: ReadonlySet<DeliveryId>, proxy: ServerName | undefined): Koa {
  const app = new Koa()
  const router = new Router()

  router.get('/', async (ctx) => {
    ctx.type = 'html'
    ctx.body = await indexPage(env, live, proxy)
  })

  // One route per delivery; each carries its own offload rules (downloads() works per route).
  for (const delivery of deliveries) {
    // The presigned column: presignedRedirect() (inside downloads()) turns a GET of an S3 object
    // into a 302 to a signed URL; everything else passes through to serve().
    const middleware = delivery.id === 'presigned' ? [downloads(), presignedRedirect({ expiresIn: 300 })] : [downloads({ rules: delivery.rules(env) })]
    router.get(`/get/${delivery.id}/:source`, ...middleware, async (ctx) => {
      const source = findSource(ctx.params.source)
      if (source === undefined) return
      const file = await source.file(env)
      if (file === undefined) return unavailable(ctx, env)
      ctx.body = download(file)
    })
  }

  // What a route answers, as the proxy would receive it: the demo fetches its own route over
  // loopback with no client header, so nothing the client sends can switch offload on.
  router.get('/explain/:delivery/:source', async (ctx) => {
    const delivery = findDelivery(ctx.params.delivery)
    const source = findSource(ctx.params.source)
    if (delivery === undefined || source === undefined) return
    const port = ctx.req.socket.localPort
    const response = await fetch(`http://127.0.0.1:${port ?? 0}/get/${delivery.id}/${source.id}`, { redirect: 'manual' })
    ctx.type = 'html'
    ctx.body = await explainPage(env, delivery, source, response, `127.0.0.1:${port ?? 3000}`)
  })

  // The configuration each server needs for its column: `koa-downloads config <server>` output.
  router.get('/config/:server', (ctx) => {
    const server = serverNames.find((name) => name === ctx.params.server)
    if (server === undefined) return
    ctx.type = 'text/plain; charset=utf-8'
    ctx.body = renderServerConfig(server, rulesFor(server, env), { upstream: `127.0.0.1:${ctx.req.socket.localPort ?? 3000}` })
  })

  // The text pages (/config/…) carry no <link rel="icon">: the browser's own favicon request gets
  // an empty answer instead of a 404 in its console.
  router.get('/favicon.ico', (ctx) => { ctx.status = 204 })

  // django-sendfile style: one call, inline by default (the browser displays text and PDF).
  router.get('/inline/:name', downloads(), async (ctx) => {
    await sendfile(ctx, ctx.params.name ?? '', { root: env.filesDir })
  })

  // Any demo file by name, as an attachment; `../` or a symlink out of demo/files is a 404.
  router.get('/files/:name', downloads(), (ctx) => {
    ctx.body = download(new PathFile(ctx.params.name ?? '', { root: env.filesDir }))
  })

  // A record by id: no such row, or a row whose upload is missing → 404.
  router.get('/records/:id', downloads(), (ctx) => {
    const row = env.records.find(Number(ctx.params.id))
    ctx.body = download(recordFile(row, { storage: env.media, keyField: 'file_key', nameField: 'original_name', typeField: 'content_type' }))
  })

  app.use(router.routes())
  app.use(router.allowedMethods())
  return app
}

function unavailable (ctx: Koa.Context, env: DemoEnv): void {
  ctx.status = 503
  ctx.body = `S3 is not running (${env.s3Problem ?? 'not configured'}).\n${s3Help}\n`
}

export { sources }
