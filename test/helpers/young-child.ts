/**
 * Run by test/young-generation.test.ts as
 * `node --allow-natives-syntax --no-opt --no-maglev --no-sparkplug --min-semi-space-size=16 young-child.ts <dir>`.
 *
 * A function that koa-downloads attaches to a request (a property of ctx, a listener on req/res)
 * must be allocated in V8's young generation. One in the old generation keeps its scope — ctx, so
 * the whole request — alive through every young-generation GC until a full one (docs/benchmarks.md,
 * Optimisation 15). V8 allocates a function literal assigned to a property there directly (its
 * parser pretenures it); optimised code may not, so the interpreter alone runs here, and the young
 * generation is large enough that nothing is promoted within one request.
 *
 * Prints one JSON line (`Report`): for each kind of request, the functions seen and those found
 * in the old generation. `/control` attaches a function literal to ctx itself, to show that the
 * check finds one.
 */
import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import type { Context } from 'koa'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { VirtualFile } from '../../source/virtual-file.ts'

export interface Report {
  /** `seen`: where functions were found (each place once); `old`: each one found in the old generation */
  [kind: string]: { statuses: number[], seen: string[], old: string[] }
}

// Compiled at run time: the TypeScript sources cannot hold V8's %-syntax.
const inYoungGeneration = new Function('value', 'return %InYoungGeneration(value)') as (value: unknown) => boolean

const dir = process.argv[2] ?? ''
if (dir === '') throw new Error('usage: young-child.ts <dir>')

let current: { seen: Set<string>, old: string[] } | undefined
const emitters = ['req', 'res'] as const

/** Every function on ctx (own properties) and every listener on req and res, with where it was found. */
function scan (ctx: Context): void {
  if (current === undefined) return
  const found: Array<[string, unknown]> = []
  for (const key of Reflect.ownKeys(ctx)) {
    const value = (ctx as unknown as Record<string | symbol, unknown>)[key]
    if (typeof value === 'function') found.push([`ctx.${String(key)}`, value])
  }
  for (const name of emitters) {
    const emitter = ctx[name]
    for (const event of emitter.eventNames()) {
      for (const listener of emitter.rawListeners(event)) found.push([`${name} '${String(event)}' listener`, listener])
    }
  }
  for (const [where, fn] of found) {
    current.seen.add(where)
    if (!inYoungGeneration(fn)) current.old.push(where)
  }
}

const app = new Koa()
app.silent = true
// Outermost: sees ctx once downloads() has answered (before Koa writes the body).
app.use(async (ctx, next) => {
  try {
    await next()
  } finally {
    scan(ctx)
  }
})
app.use(downloads())
app.use((ctx) => {
  if (ctx.path === '/control') {
    ctx.body = 'control'
    const loose = ctx as unknown as Record<string, unknown>
    // A function literal assigned to a property: allocated in the old generation.
    loose.marker = function marker (): void {}
    return
  }
  if (ctx.path === '/generated') {
    ctx.body = new VirtualFile(Buffer.from('generated\n'), { name: 'generated.txt' })
    return
  }
  ctx.body = new PathFile(ctx.path.slice(1), { root: dir })
})
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const { port } = server.address() as AddressInfo

function fetch (method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers }) })
    })
    req.on('error', reject)
    req.end()
  })
}

const etag = (await fetch('HEAD', '/small.txt')).headers.etag ?? ''
const kinds: Record<string, [string, string, Record<string, string>?]> = {
  control: ['GET', '/control'],
  'small file (one buffer)': ['GET', '/small.txt'],
  'large file (stream)': ['GET', '/big.bin'],
  'single range': ['GET', '/big.bin', { Range: 'bytes=100-199' }],
  'multipart ranges': ['GET', '/big.bin', { Range: 'bytes=0-9,1000-1009' }],
  304: ['GET', '/small.txt', { 'If-None-Match': etag }],
  HEAD: ['HEAD', '/small.txt'],
  'virtual file': ['GET', '/generated'],
  'missing file (404)': ['GET', '/missing.txt']
}
const report: Report = {}
for (const [kind, [method, path, headers]] of Object.entries(kinds)) {
  const entry = { statuses: [] as number[], seen: new Set<string>(), old: [] as string[] }
  current = entry
  for (let i = 0; i < 5; i++) entry.statuses.push((await fetch(method, path, headers)).status)
  current = undefined
  report[kind] = { statuses: entry.statuses, seen: [...entry.seen].sort(), old: entry.old }
}
server.close()
process.stdout.write(JSON.stringify(report) + '\n')
