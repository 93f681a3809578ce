// StatCache under random histories: a file rewritten in place, replaced by rename, removed, swapped
// for a symlink out of the root or for a directory, between random requests (GET and HEAD, with
// Range, If-Range, If-None-Match, If-Match) served through one shared cache with a long maxAge.
// What the cache may do is describe an earlier version in a response that sends no byte (a HEAD, a
// 304, a 412). What it must never do: send bytes other than the current file's, under validators
// other than the current file's, or bytes from outside the root, or answer 5xx.
import test from 'ava'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import Koa from 'koa'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { StatCache } from '../../source/stat-cache.ts'
import { fuzzScale } from '../helpers/fuzz.ts'
import { rawRequest } from './raw-http.ts'
import { checkMultipart, parseContentRange } from './rfc9110-check.ts'

const RUNS = fuzzScale(150)
let dir = ''
let outside = ''
let server: Server
let port = 0
const secret = Buffer.from('SECRET-OUTSIDE-THE-ROOT '.repeat(40))

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-fuzz-stat-cache-'))
  outside = await mkdtemp(join(tmpdir(), 'kd-fuzz-stat-cache-outside-'))
  await writeFile(join(outside, 'secret.bin'), secret)
  const statCache = new StatCache({ maxAge: 600_000 })
  const app = new Koa()
  app.silent = true
  app.use(downloads())
  app.use((ctx) => { ctx.body = new PathFile(ctx.path, { root: dir, statCache }) })
  server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
})

test.after.always(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => { if (server === undefined) resolve(); else server.close(() => { resolve() }) })
  for (const path of [dir, outside]) if (path !== '') await rm(path, { recursive: true, force: true })
})

type Change = 'rewrite' | 'replace' | 'remove' | 'symlink' | 'directory'
interface Ask { method: 'GET' | 'HEAD', range: 'none' | 'one' | 'several' | 'suffix', ifRange: 'none' | 'current' | 'old', inm: 'none' | 'current' | 'old' | 'other', ifMatch: 'none' | 'current' | 'old' }
type Step = { change: Change, size: number } | { ask: Ask }

const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ change: fc.constantFrom<Change>('rewrite', 'rewrite', 'replace', 'replace', 'remove', 'symlink', 'directory'), size: fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 1000, max: 70_000 })) }), weight: 2 },
  {
    arbitrary: fc.record({
      method: fc.constantFrom<'GET' | 'HEAD'>('GET', 'GET', 'HEAD'),
      range: fc.constantFrom<Ask['range']>('none', 'none', 'one', 'several', 'suffix'),
      ifRange: fc.constantFrom<Ask['ifRange']>('none', 'none', 'current', 'old'),
      inm: fc.constantFrom<Ask['inm']>('none', 'none', 'current', 'old', 'other'),
      ifMatch: fc.constantFrom<Ask['ifMatch']>('none', 'none', 'none', 'current', 'old')
    }).map((ask) => ({ ask })),
    weight: 5
  }
)

const etagOf = (mtime: number, size: number): string => `"${mtime.toString(16)}-${size.toString(16)}"`

test('fuzz: StatCache — whatever the file went through, bytes sent are the current file\'s under its validators, never 5xx, never outside the root', async t => {
  t.timeout(fuzzScale(180_000))
  let run = 0
  const counts = new Map<string, number>()
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 14 }), async (steps) => {
    // A fresh name per run: the cache (shared, long-lived) may hold the other runs' files.
    const name = `f${run++}.bin`
    const path = join(dir, name)
    let mtime = 1_600_000_000
    let current: { bytes: Buffer, etag: string } | undefined
    const seen = new Map<string, Buffer>() // every version ever written, by ETag
    const write = async (size: number, how: 'rewrite' | 'replace'): Promise<void> => {
      const bytes = randomBytes(size)
      mtime += 7
      await rm(path, { recursive: true, force: true }).catch(() => {})
      if (how === 'rewrite') {
        await writeFile(path, bytes)
        await utimes(path, mtime, mtime)
      } else {
        await writeFile(`${path}.tmp`, bytes)
        await utimes(`${path}.tmp`, mtime, mtime)
        await rename(`${path}.tmp`, path)
      }
      current = { bytes, etag: etagOf(mtime, size) }
      seen.set(current.etag, bytes)
    }
    await write(500, 'rewrite')
    let old = current?.etag ?? ''
    for (const s of steps) {
      if ('change' in s) {
        if (current !== undefined) old = current.etag
        if (s.change === 'rewrite' || s.change === 'replace') await write(s.size, s.change)
        else {
          await rm(path, { recursive: true, force: true })
          current = undefined
          if (s.change === 'symlink') await symlink(join(outside, 'secret.bin'), path)
          if (s.change === 'directory') await mkdir(path)
        }
        continue
      }
      const ask = s.ask
      const headers: Record<string, string> = {}
      const size = current?.bytes.length ?? 500
      if (ask.range === 'one') headers.Range = `bytes=${Math.floor(size / 3)}-${Math.floor(size / 2)}`
      if (ask.range === 'several') headers.Range = `bytes=0-0,${Math.max(0, size - 1)}-${Math.max(0, size - 1)},200-300`
      if (ask.range === 'suffix') headers.Range = 'bytes=-100'
      const tag = (which: 'current' | 'old' | 'other'): string => which === 'current' ? current?.etag ?? old : which === 'old' ? old : '"other"'
      if (ask.ifRange !== 'none') headers['If-Range'] = tag(ask.ifRange)
      if (ask.inm !== 'none') headers['If-None-Match'] = tag(ask.inm)
      if (ask.ifMatch !== 'none') headers['If-Match'] = tag(ask.ifMatch)
      const res = await rawRequest(port, ask.method, `/${name}`, headers)
      const outcome = `${ask.method} ${res.status}`
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1)
      const where = `${ask.method} ${JSON.stringify(headers)} → ${res.status} (file ${current === undefined ? 'absent' : current.etag}; steps ${JSON.stringify(steps)})`
      if (res.status >= 500) throw new Error(`a ${res.status}: ${where}`)
      if (res.body.includes(secret.subarray(0, 24))) throw new Error(`bytes from outside the root: ${where}`)
      if (!res.complete) throw new Error(`a body shorter than its framing: ${where}`)
      const etag = res.headers.etag
      if (ask.method === 'GET' && (res.status === 200 || res.status === 206)) {
        // Bytes: only ever the current file's, under its own validators.
        if (current === undefined) throw new Error(`bytes sent for a file that is not there: ${where}`)
        if (etag !== current.etag) throw new Error(`bytes under ETag ${String(etag)}, the file's is ${current.etag}: ${where}`)
        const type = res.headers['content-type'] ?? ''
        if (res.status === 200 && !res.body.equals(current.bytes)) throw new Error(`a 200 that is not the file: ${where}`)
        if (res.status === 206 && type.startsWith('multipart/byteranges')) {
          const problems = checkMultipart(res.body, /boundary=(\S+)/.exec(type)?.[1] ?? '', current.bytes)
          if (problems.length > 0) throw new Error(`${problems.join('; ')}: ${where}`)
        } else if (res.status === 206) {
          const range = parseContentRange(res.headers['content-range'])
          if (range === undefined || range.size !== current.bytes.length || !res.body.equals(current.bytes.subarray(range.first, range.last + 1))) throw new Error(`a 206 that is not the file's range: ${where}`)
        }
      } else if (res.status === 200 || res.status === 304 || res.status === 412 || res.status === 206) {
        // No bytes: the validators of the current version or of an earlier one (the cache's trade).
        if (res.status !== 412 && (etag === undefined || !seen.has(etag))) throw new Error(`validators of no version: ${where}`)
        if (ask.method === 'HEAD' && res.status === 200 && res.headers['content-length'] !== String(seen.get(etag ?? '')?.length)) throw new Error(`a HEAD's Content-Length is not its version's: ${where}`)
      } else if (res.status === 404) {
        // A GET that would send bytes finds the file itself: a 404 only when it is not there.
        if (ask.method === 'GET' && current !== undefined && ask.inm === 'none' && ask.ifMatch === 'none') throw new Error(`a 404 for a file that is there: ${where}`)
      } else if (res.status === 416) {
        // Every Range sent is satisfiable on the current file, when it has bytes: a 416 then came from an old size.
        if (ask.method === 'GET' && current !== undefined && current.bytes.length > 0 && ask.inm !== 'current' && ask.ifMatch !== 'old') throw new Error(`a GET 416 for a range the current file has: ${where}`)
      } else {
        throw new Error(`unexpected status: ${where}`)
      }
    }
  }), { numRuns: RUNS })
  t.log([...counts].sort().map(([k, v]) => `${k}: ${v}`).join(', '))
  // The history must have reached the interesting answers, stale ones included.
  for (const outcome of ['GET 200', 'GET 206', 'GET 304', 'GET 404', 'HEAD 200', 'HEAD 404', 'GET 412']) t.true((counts.get(outcome) ?? 0) > 0, outcome)
})
