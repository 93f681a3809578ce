/**
 * Soak test (not part of `npm test`): N concurrent clients download for M minutes from a
 * koa-downloads app running in a child process, with client aborts mixed in, then report errors,
 * the server's open file descriptors and RSS against its warmed-up baseline.
 *
 *   node bench/soak.ts [--concurrency 32] [--minutes 1] [--abort 0.25] [--json]
 *
 * Workload (chosen at random per request): a 1 MiB file, a 4 KiB file, a multipart range request on
 * the 1 MiB file, a generated stream, a 304, a 404, a HEAD. A share `--abort` of the requests is
 * aborted by the client: before the response head, or after a random part of the body. Anything
 * else that does not end as expected (wrong status, short body, other bytes than the file's, socket
 * error) counts as an error.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildLibrary, projectDir } from './lib/library.ts'

interface Stats { fds: number, rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number, appErrors: number, requests: number, errorSamples: string[] }

// ---- server role (child process) ----------------------------------------------------------------

async function server (dir: string): Promise<void> {
  const { default: Koa } = await import('koa')
  // The compiled library in dist/, as users run it (main() builds it first): the TypeScript
  // sources would add the type stripper's memory to the server's RSS.
  const { library } = await import('./servers/kd-library.ts')
  const { downloads, PathFile, VirtualFile } = library
  const app = new Koa()
  let appErrors = 0
  let requests = 0
  const errorSamples: string[] = []
  app.on('error', (error: Error & { status?: number }) => {
    // Koa emits 4xx too (the 404 of the workload): only server-side failures count.
    if (error.status !== undefined && error.status < 500) return
    appErrors++
    if (errorSamples.length < 5) errorSamples.push(`${error.name}: ${error.message}`)
  })
  app.use(async (_ctx, next) => { requests++; await next() })
  app.use(downloads())
  app.use((ctx) => {
    if (ctx.path === '/generated') {
      async function * chunks (): AsyncGenerator<Buffer> { for (let i = 0; i < 16; i++) yield Buffer.alloc(16 * 1024, 0x61 + i) }
      ctx.body = new VirtualFile(chunks(), { name: 'generated.txt' })
      return
    }
    ctx.body = new PathFile(ctx.path.slice(1), { root: dir })
  })
  const http = app.listen(0, '127.0.0.1')
  await once(http, 'listening')
  process.on('message', (message: string) => {
    if (message !== 'stats') return
    globalThis.gc?.()
    const stats: Stats = {
      fds: readdirSync('/proc/self/fd').length,
      rss: process.memoryUsage.rss(),
      heapUsed: process.memoryUsage().heapUsed,
      heapTotal: process.memoryUsage().heapTotal,
      external: process.memoryUsage().external,
      arrayBuffers: process.memoryUsage().arrayBuffers,
      appErrors,
      requests,
      errorSamples
    }
    process.send?.(stats)
  })
  process.send?.({ port: (http.address() as AddressInfo).port })
}

// ---- load role (parent) -------------------------------------------------------------------------

interface Tally { ok: number, aborted: number, errors: number, bytes: number, samples: string[] }

const BIG = 1024 * 1024
const SMALL = 4096

function ask (child: ChildProcess): Promise<Stats> {
  return new Promise((resolve) => {
    child.once('message', (message) => { resolve(message as Stats) })
    child.send('stats')
  })
}

interface Job { path: string, method: string, headers: Record<string, string>, status: number, length: number | undefined, content?: Buffer }

// The served files' bytes (made in main()): every complete 200 of them is compared byte for byte.
let bigContent = Buffer.alloc(0)
let smallContent = Buffer.alloc(0)

function pick (etag: string): Job {
  const r = Math.random()
  if (r < 0.30) return { path: '/big.bin', method: 'GET', headers: {}, status: 200, length: BIG, content: bigContent }
  if (r < 0.55) return { path: '/small.bin', method: 'GET', headers: {}, status: 200, length: SMALL, content: smallContent }
  if (r < 0.65) return { path: '/big.bin', method: 'GET', headers: { Range: 'bytes=0-99,300000-399999,900000-' }, status: 206, length: undefined }
  if (r < 0.75) return { path: '/generated', method: 'GET', headers: {}, status: 200, length: 16 * 16 * 1024 }
  if (r < 0.85) return { path: '/big.bin', method: 'GET', headers: { 'If-None-Match': etag }, status: 304, length: 0 }
  if (r < 0.92) return { path: '/missing.bin', method: 'GET', headers: {}, status: 404, length: undefined }
  return { path: '/big.bin', method: 'HEAD', headers: {}, status: 200, length: 0 }
}

function once1 (port: number, agent: Agent, job: Job, abort: 'none' | 'head' | 'body', tally: Tally): Promise<void> {
  return new Promise((resolve) => {
    let done = false
    const finish = (outcome: 'ok' | 'aborted' | string): void => {
      if (done) return
      done = true
      if (outcome === 'ok') tally.ok++
      else if (outcome === 'aborted') tally.aborted++
      else {
        tally.errors++
        if (tally.samples.length < 10) tally.samples.push(outcome)
      }
      resolve()
    }
    const req = request({ host: '127.0.0.1', port, path: job.path, method: job.method, headers: job.headers, agent })
    req.on('error', (error: NodeJS.ErrnoException) => { finish(abort !== 'none' ? 'aborted' : `${job.path}: ${error.code ?? error.message}`) })
    if (abort === 'head') {
      req.end()
      setImmediate(() => { req.destroy(); finish('aborted') })
      return
    }
    req.on('response', (res) => {
      if (res.statusCode !== job.status) {
        res.resume()
        finish(`${job.method} ${job.path} ${JSON.stringify(job.headers)}: status ${res.statusCode}`)
        return
      }
      const cut = abort === 'body' ? Math.floor(Math.random() * (job.length ?? 100_000)) : Infinity
      let received = 0
      let differs: number | undefined
      res.on('data', (chunk: Buffer) => {
        const content = job.content
        if (content !== undefined && differs === undefined && !chunk.equals(content.subarray(received, received + chunk.length))) differs = received
        received += chunk.length
        tally.bytes += chunk.length
        if (received > cut) { req.destroy(); finish('aborted') }
      })
      res.on('end', () => {
        if (!res.complete) finish(`${job.path}: incomplete body (${received} bytes)`)
        else if (job.length !== undefined && job.method === 'GET' && job.status !== 304 && received !== job.length) finish(`${job.path}: ${received} bytes instead of ${job.length}`)
        else if (differs !== undefined) finish(`${job.path}: other bytes than the file's from byte ${differs}`)
        else finish(abort === 'body' ? 'aborted' : 'ok')
      })
      res.on('error', () => { finish(abort !== 'none' ? 'aborted' : `${job.path}: response error`) })
    })
    req.end()
  })
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '32' },
      minutes: { type: 'string', default: '1' },
      abort: { type: 'string', default: '0.25' },
      json: { type: 'boolean', default: false }
    }
  })
  const concurrency = Number(values.concurrency)
  const minutes = Number(values.minutes)
  const abortShare = Number(values.abort)
  if (!(concurrency > 0 && minutes > 0 && abortShare >= 0 && abortShare <= 1)) throw new TypeError('soak: --concurrency > 0, --minutes > 0, 0 ≤ --abort ≤ 1')

  await buildLibrary(projectDir)
  const dir = await mkdtemp(join(tmpdir(), 'kd-soak-'))
  bigContent = randomBytes(BIG)
  smallContent = randomBytes(SMALL)
  await writeFile(join(dir, 'big.bin'), bigContent)
  await writeFile(join(dir, 'small.bin'), smallContent)
  const child = fork(new URL(import.meta.url), ['--server', dir], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [{ port }] = await once(child, 'message') as [{ port: number }]
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const etag = await new Promise<string>((resolve) => {
    request({ host: '127.0.0.1', port, path: '/big.bin', method: 'HEAD' }, (res) => { res.resume(); resolve(String(res.headers.etag)) }).end()
  })

  const idle = await ask(child)
  // Warm up, then take the baseline the end state is compared with.
  const warm: Tally = { ok: 0, aborted: 0, errors: 0, bytes: 0, samples: [] }
  await Promise.all(Array.from({ length: concurrency }, async () => { for (let i = 0; i < 20; i++) await once1(port, agent, pick(etag), 'none', warm) }))
  const baseline = await ask(child)

  const tally: Tally = { ok: 0, aborted: 0, errors: 0, bytes: 0, samples: [] }
  const samples: Array<{ minute: number, rss: number, fds: number, arrayBuffers: number }> = []
  const started = Date.now()
  const deadline = started + minutes * 60_000
  const sampler = setInterval(() => {
    void ask(child).then((s) => { samples.push({ minute: (Date.now() - started) / 60_000, rss: s.rss, fds: s.fds, arrayBuffers: s.arrayBuffers }) })
  }, Math.max(5000, minutes * 60_000 / 12))
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline) {
      const r = Math.random()
      const abort = r < abortShare / 2 ? 'head' : r < abortShare ? 'body' : 'none'
      await once1(port, agent, pick(etag), abort, tally)
    }
  }))
  clearInterval(sampler)
  agent.destroy()
  // Let the server notice the closed keep-alive sockets before counting.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const end = await ask(child)
  child.kill('SIGTERM')
  await rm(dir, { recursive: true, force: true })

  const seconds = (Date.now() - started) / 1000
  const mib = (n: number): string => (n / 1024 / 1024).toFixed(1)
  const report = {
    node: process.version,
    concurrency,
    minutes,
    abortShare,
    requests: tally.ok + tally.aborted + tally.errors,
    perSecond: Math.round((tally.ok + tally.aborted + tally.errors) / seconds),
    completed: tally.ok,
    aborted: tally.aborted,
    clientErrors: tally.errors,
    clientErrorSamples: tally.samples,
    appErrors: end.appErrors,
    appErrorSamples: end.errorSamples,
    mibReceived: Number(mib(tally.bytes)),
    fds: { idle: idle.fds, baseline: baseline.fds, end: end.fds },
    rssMiB: { idle: Number(mib(idle.rss)), baseline: Number(mib(baseline.rss)), end: Number(mib(end.rss)), max: Number(mib(Math.max(end.rss, ...samples.map((s) => s.rss)))) },
    heapUsedMiB: { baseline: Number(mib(baseline.heapUsed)), end: Number(mib(end.heapUsed)) },
    arrayBuffersMiB: { baseline: Number(mib(baseline.arrayBuffers)), end: Number(mib(end.arrayBuffers)) },
    heapTotalMiB: { baseline: Number(mib(baseline.heapTotal)), end: Number(mib(end.heapTotal)) },
    externalMiB: { baseline: Number(mib(baseline.external)), end: Number(mib(end.external)) },
    malloc: Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('MALLOC_'))),
    samples: samples.map((s) => ({ minute: Number(s.minute.toFixed(1)), rssMiB: Number(mib(s.rss)), arrayBuffersMiB: Number(mib(s.arrayBuffers)), fds: s.fds })),
    loadavg: readFileSync('/proc/loadavg', 'utf8').trim()
  }
  if (values.json) {
    console.log(JSON.stringify(report, null, 2))
  } else {
    console.log(`soak: ${report.requests} requests in ${seconds.toFixed(0)} s (${report.perSecond}/s), concurrency ${concurrency}, ${Math.round(abortShare * 100)} % aborted by the client`)
    console.log(`  completed ${report.completed}, aborted ${report.aborted}, client-side errors ${report.clientErrors}, app 'error' events ${report.appErrors}`)
    console.log(`  server fds: idle ${report.fds.idle}, warm ${report.fds.baseline}, end ${report.fds.end} (keep-alive sockets closed); RSS ${report.rssMiB.baseline} → ${report.rssMiB.end} MiB (max ${report.rssMiB.max}); heap ${report.heapUsedMiB.baseline} → ${report.heapUsedMiB.end} MiB; buffers ${report.arrayBuffersMiB.baseline} → ${report.arrayBuffersMiB.end} MiB`)
    for (const sample of [...report.clientErrorSamples, ...report.appErrorSamples]) console.log(`  ! ${sample}`)
  }
  // The end is measured once the clients' keep-alive sockets are gone: it must be back to idle.
  process.exitCode = report.clientErrors === 0 && report.appErrors === 0 && report.fds.end <= report.fds.idle ? 0 : 1
}

if (process.argv[2] === '--server') await server(process.argv[3] ?? '')
else await main()
