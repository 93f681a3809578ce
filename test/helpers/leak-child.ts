/**
 * The leak scenario of test/leak.test.ts, run in its own process: ava runs test files in worker
 * threads of one process, so /proc/self/fd of the test itself counts the other files' sockets too.
 *
 * Usage: node leak-child.ts <dir containing big.bin>. Prints one JSON line (see `Report`) on stdout;
 * Koa's own error log, if anything is printed, goes to stderr, which the test inspects.
 */
import { readdirSync, readlinkSync } from 'node:fs'
import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { VirtualFile } from '../../source/virtual-file.ts'

export interface Report {
  baseline: number
  after: number
  /** fds still open on a file of the temp dir after settling */
  openFiles: string[]
  /** errors the app emitted (Koa's default handler printed them too) */
  errors: Array<{ code: string | undefined, status: number | undefined, expose: boolean | undefined, message: string }>
  /** process warnings, e.g. "Closing file descriptor N on garbage collection": a handle nobody closed */
  warnings: string[]
  /** how many requests of each kind ended as expected */
  done: Record<string, number>
}

const dir = process.argv[2] ?? ''
if (dir === '') throw new Error('usage: leak-child.ts <dir>')

const errors: Report['errors'] = []
const warnings: string[] = []
process.on('warning', (warning) => { warnings.push(`${warning.name}: ${warning.message}`) })
const app = new Koa()
app.on('error', (error: Error & { code?: string, status?: number, expose?: boolean }) => {
  errors.push({ code: error.code, status: error.status, expose: error.expose, message: error.message })
  app.onerror(error) // keep Koa's default log, so the test can check what it prints
})
app.use(downloads())
app.use((ctx) => {
  if (ctx.path === '/generated') {
    async function * endless (): AsyncGenerator<Buffer> { for (;;) yield Buffer.alloc(64 * 1024, 0x67) }
    ctx.body = new VirtualFile(endless(), { name: 'endless.bin' })
    return
  }
  ctx.body = new PathFile(ctx.path.slice(1), { root: dir })
})
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const { port } = server.address() as AddressInfo

function fdCount (): number {
  return readdirSync('/proc/self/fd').length
}

function openFiles (): string[] {
  const found: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(dir)) found.push(target)
    } catch {
      // the fd closed while listing (readdir's own fd, for one)
    }
  }
  return found
}

type Outcome = 'aborted' | 'complete'

/**
 * One request on its own connection (no keep-alive), resolved when the client side is closed.
 * `abort`: destroy the connection as soon as the first body chunk arrives.
 */
async function exchange (method: string, path: string, headers: Record<string, string>, abort: boolean): Promise<{ status: number, headers: IncomingHttpHeaders, outcome: Outcome, bytes: number }> {
  return await new Promise((resolve, reject) => {
    let status = 0
    let responseHeaders: IncomingHttpHeaders = {}
    let bytes = 0
    let outcome: Outcome = 'aborted'
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      status = res.statusCode ?? 0
      responseHeaders = res.headers
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (abort) req.destroy()
      })
      res.on('end', () => { outcome = 'complete' })
      res.on('error', () => {})
    })
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (!abort) reject(error)
    })
    req.on('close', () => { resolve({ status, headers: responseHeaders, outcome, bytes }) })
    req.end()
  })
}

async function inBatches (count: number, size: number, run: () => Promise<boolean>): Promise<number> {
  let ok = 0
  for (let i = 0; i < count; i += size) {
    const results = await Promise.all(Array.from({ length: Math.min(size, count - i) }, run))
    ok += results.filter(Boolean).length
  }
  return ok
}

async function settle (baseline: number): Promise<number> {
  const deadline = Date.now() + 10_000
  let now = fdCount()
  while (now > baseline && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    now = fdCount()
  }
  return now
}

const size = 8 * 1024 * 1024
const big = await exchange('HEAD', '/big.bin', {}, false)
const etag = String(big.headers.etag)

// Warm-up: load every lazy code path once, so that the baseline includes what stays loaded.
await exchange('GET', '/big.bin', {}, true)
await exchange('GET', '/big.bin', {}, false)
await exchange('GET', '/small.txt', {}, false)
await exchange('GET', '/generated', {}, true)
await exchange('GET', '/big.bin', { Range: 'bytes=0-9,5000000-5000009' }, false)
await new Promise((resolve) => setTimeout(resolve, 200))
const baseline = fdCount()

const done: Record<string, number> = {}
done.abortedFull = await inBatches(200, 20, async () => {
  const r = await exchange('GET', '/big.bin', {}, true)
  return r.status === 200 && r.outcome === 'aborted' && r.bytes < size
})
done.abortedRange = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/big.bin', { Range: 'bytes=1000-' }, true)
  return r.status === 206 && r.outcome === 'aborted'
})
done.abortedMultipart = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/big.bin', { Range: 'bytes=0-4000000,6000000-8000000' }, true)
  return r.status === 206 && r.outcome === 'aborted'
})
done.abortedGenerated = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/generated', {}, true)
  return r.status === 200 && r.outcome === 'aborted'
})
done.head = await inBatches(40, 20, async () => {
  const r = await exchange('HEAD', '/big.bin', {}, false)
  return r.status === 200 && r.headers['content-length'] === String(size) && r.bytes === 0
})
done.notModified = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/big.bin', { 'If-None-Match': etag }, false)
  return r.status === 304 && r.bytes === 0
})
done.unsatisfiable = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/big.bin', { Range: `bytes=${size}-` }, false)
  return r.status === 416
})
done.missing = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/missing.bin', {}, false)
  return r.status === 404
})
done.completeSmall = await inBatches(40, 20, async () => {
  const r = await exchange('GET', '/small.txt', {}, false)
  return r.status === 200 && r.outcome === 'complete' && r.bytes === 6
})
done.completeBig = await inBatches(20, 10, async () => {
  const r = await exchange('GET', '/big.bin', {}, false)
  return r.status === 200 && r.outcome === 'complete' && r.bytes === size
})

const after = await settle(baseline)
const report: Report = { baseline, after, openFiles: openFiles(), errors, warnings, done }
process.stdout.write(`${JSON.stringify(report)}\n`)
server.close()
server.closeAllConnections()
