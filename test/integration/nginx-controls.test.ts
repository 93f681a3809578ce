// The nginx rule's controls, as they act through the real nginx with the generated configuration.
// X-Accel-Buffering acts only on the response that carries it, the app's, which the
// X-Accel-Redirect ends: the internal location's proxy_pass to an origin is a request of its own.
// So `buffering: false` is written into that location (`proxy_buffering off`): measured here by how
// much of a large body the origin could send while the client read nothing. X-Accel-Limit-Rate acts
// on the client's request, across the redirect, and on the responses the app streams itself when
// it hands a request back (a malformed conditional, several ranges of a file at an origin).
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

const { test } = proxyTest('nginx')

const MiB = 1024 * 1024
const SIZE = 64 * MiB

/** An origin sending SIZE bytes (chunked, no length) with backpressure, counting what it could write per path. */
async function countingOrigin (): Promise<{ server: Server, url: string, written: Map<string, number> }> {
  const written = new Map<string, number>()
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  const server = createServer((req, res) => {
    const path = req.url ?? ''
    written.set(path, 0)
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' })
    const pump = (): void => {
      while ((written.get(path) ?? 0) < SIZE) {
        written.set(path, (written.get(path) ?? 0) + chunk.length)
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      res.end()
    }
    res.on('close', () => { written.set(path, written.get(path) ?? 0) })
    pump()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, written }
}

test('nginx: buffering: false reaches a location that fetches from an origin (proxy_buffering off): the origin sends no more than the paused client takes; the default buffers the whole body', async (t) => {
  const origin = await countingOrigin()
  const rules = [
    nginx({ sourceUrl: `${origin.url}/unbuffered/`, destinationUrl: '/_unbuffered/', buffering: false }),
    nginx({ sourceUrl: `${origin.url}/buffered/`, destinationUrl: '/_buffered/' })
  ]
  const app = new Koa()
  app.use(downloads({ rules }))
  app.use((ctx) => { ctx.body = download(new HttpFile(`${origin.url}${ctx.path}`)) })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let proxy: RunningProxy | undefined
  const sockets: Array<ReturnType<typeof connect>> = []
  try {
    proxy = await startProxy('nginx', { rules, appPort: (server.address() as AddressInfo).port })
    const port = new URL(proxy.url).port
    for (const dir of ['unbuffered', 'buffered']) {
      // A client that sends its request and reads nothing.
      const socket = connect(Number(port), '127.0.0.1')
      sockets.push(socket)
      socket.pause()
      socket.write(`GET /${dir}/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n`)
    }
    // The buffered one: nginx takes the whole body into its temp file while the client reads nothing.
    // (A wide bound: under load, nginx took over 20 s to write 64 MiB to its temp file once.)
    const deadline = Date.now() + 50_000
    while ((origin.written.get('/buffered/big.bin') ?? 0) < SIZE && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    t.is(origin.written.get('/buffered/big.bin'), SIZE, 'the default buffers the whole body')
    // By then the unbuffered one has long filled the socket buffers between origin, nginx and client.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const unbuffered = origin.written.get('/unbuffered/big.bin') ?? 0
    t.true(unbuffered > 0, 'the origin was asked')
    t.true(unbuffered < SIZE / 2, `buffering: false: the origin could send ${(unbuffered / MiB).toFixed(1)} MiB to a client that read nothing`)
  } finally {
    for (const socket of sockets) socket.destroy()
    if (proxy !== undefined) {
      logProxiesIfFailed(t, [proxy])
      await proxy.stop()
    }
    server.closeAllConnections()
    server.close()
    origin.server.closeAllConnections()
    origin.server.close()
  }
})

test('nginx: limitRate also slows what the app streams itself in place of an offload (a malformed If-None-Match, several ranges of a file at an origin)', async (t) => {
  t.timeout(120_000) // four downloads of about 3 s each, on purpose
  // Four seconds' worth at the rate. nginx (1.22) allows rate × (whole seconds since the request
  // began + 1) bytes at once, then waits (bytes written ÷ rate) after each write: a body of only two
  // seconds' worth went out in one write whenever the app's answer came after a second boundary
  // (a loaded machine), and the test saw it "not slowed". With four, the first write cannot take
  // it all unless the app took 2 s, and whatever that write took, it waits at least 1 s after it.
  const body = Buffer.alloc(512 * 1024, 0x62)
  const origin = createServer((req, res) => { res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': 'bytes' }); res.end(body) })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const dir = await mkdtemp(join(tmpdir(), 'kd-rate-'))
  await writeFile(join(dir, 'local.bin'), body)
  makeWorldReadable(dir)
  const rules = [
    nginx({ sourceUrl: `${originUrl}/media/`, destinationUrl: '/_origin/', limitRate: 128 * 1024 }),
    nginx({ sourceDir: dir, destinationUrl: '/_files/', limitRate: 128 * 1024 })
  ]
  const app = new Koa()
  const streamed: string[] = []
  app.use(async (ctx, next) => { await next(); if (ctx.response.get('X-Accel-Redirect') === undefined || ctx.response.get('X-Accel-Redirect') === '') streamed.push(ctx.path) })
  app.use(downloads({ rules }))
  app.use((ctx) => {
    ctx.body = ctx.path === '/local.bin'
      ? download(new PathFile('local.bin', { root: dir }))
      : download(new HttpFile(`${originUrl}/media${ctx.path}`))
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let proxy: RunningProxy | undefined
  try {
    proxy = await startProxy('nginx', { rules, appPort: (server.address() as AddressInfo).port })
    const timed = async (path: string, headers: Record<string, string>): Promise<{ status: number, bytes: number, ms: number }> => {
      const started = Date.now()
      const response = await fetch(proxy?.url + path, { headers })
      const bytes = (await response.arrayBuffer()).byteLength
      return { status: response.status, bytes, ms: Date.now() - started }
    }
    // 512 KiB at 128 KiB/s: nginx lets the first second's bytes through at once, then about three seconds more.
    for (const [path, headers] of [
      ['/a.bin', {}],
      ['/local.bin', {}],
      ['/local.bin', { 'If-None-Match': 'x' }],
      ['/c.bin', { Range: 'bytes=0-1,100-' }]
    ] as const) {
      const result = await timed(path, headers)
      t.true(result.status === 200 || result.status === 206, `${path}: ${result.status}`)
      t.true(result.bytes >= 400_000, `${path}: ${result.bytes} bytes`)
      t.true(result.ms >= 900, `${path} ${JSON.stringify(headers)}: ${result.bytes} bytes in ${result.ms} ms, not slowed`)
    }
    t.deepEqual(streamed, ['/local.bin', '/c.bin'], 'the app streamed the two it handed back')
  } finally {
    if (proxy !== undefined) {
      logProxiesIfFailed(t, [proxy])
      await proxy.stop()
    }
    server.closeAllConnections()
    server.close()
    origin.closeAllConnections()
    origin.close()
    await rm(dir, { recursive: true, force: true })
  }
})
