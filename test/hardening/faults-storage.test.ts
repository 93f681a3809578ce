import test from 'ava'
import type { ExecutionContext } from 'ava'
import { STATUS_CODES } from 'node:http'
import { Readable } from 'node:stream'
import { DownloadError } from '../../source/errors.ts'
import type { DownloadErrorCode } from '../../source/errors.ts'
import type { ByteRange, DownloadFile, FileStat } from '../../source/types.ts'
import { clientRequest, settle, socketsOn, split, startApp } from './fault-kit.ts'
import type { FaultApp } from './fault-kit.ts'

const rejections: unknown[] = []
process.on('unhandledRejection', (reason) => { rejections.push(reason) })
test.after('no unhandled rejection in any storage fault', t => { t.deepEqual(rejections, []) })

const SIZE = 1_000_000
const bytes = Buffer.alloc(SIZE, 0x42)

type Cue =
  | { stage: 'stat' | 'open' | 'read', error: Error }
  /** the stream errors after `after` bytes */
  | { stage: 'stream', after: number, error: Error }
  /** the stream ends cleanly after `after` bytes: a wrapper that under-delivers */
  | { stage: 'short', after: number }
  /** the stream of the n-th open() (multipart part n) errors at once */
  | { stage: 'part', part: number, error: Error }
  /** no fault */
  | { stage: 'none' }

/** A storage that fails on cue, and records what it opened. */
class Faulty implements DownloadFile {
  readonly name = 'object.bin'
  readonly cue: Cue
  opens = 0
  readonly streams: Readable[] = []
  constructor (cue: Cue) { this.cue = cue }
  async stat (): Promise<FileStat> {
    if (this.cue.stage === 'stat') throw this.cue.error
    return { size: SIZE, etag: '"v1"', lastModified: new Date(Date.UTC(2024, 0, 1)) }
  }

  async open (range?: ByteRange): Promise<Readable> {
    const cue = this.cue
    this.opens++
    if (cue.stage === 'open') throw cue.error
    if (cue.stage === 'part' && this.opens === cue.part) throw cue.error
    const start = range?.start ?? 0
    const end = range?.end ?? SIZE - 1
    let at = start
    const limit = cue.stage === 'stream' || cue.stage === 'short' ? start + cue.after : end + 1
    const stream = new Readable({
      read () {
        if (at >= limit) {
          if (cue.stage === 'stream') this.destroy(cue.error)
          else this.push(null)
          return
        }
        const next = Math.min(limit, at + 16 * 1024, end + 1)
        this.push(bytes.subarray(at, next))
        at = next
        if (at > end) this.push(null)
      }
    })
    this.streams.push(stream)
    return stream
  }

  async read (range?: ByteRange): Promise<Uint8Array> {
    if (this.cue.stage === 'read') throw this.cue.error
    return bytes.subarray(range?.start ?? 0, (range?.end ?? SIZE - 1) + 1)
  }
}

const fsError = (code: string): Error => Object.assign(new Error(`${code}: simulated, /srv/secret/path`), { code })
const failures: Array<[string, Error, number]> = [
  ['missing (ENOENT)', fsError('ENOENT'), 404],
  ['access refused (EACCES)', fsError('EACCES'), 403],
  ['E_NOT_FOUND', new DownloadError('E_NOT_FOUND', 'object gone'), 404],
  ['E_FORBIDDEN', new DownloadError('E_FORBIDDEN', 'bucket policy'), 403],
  ['E_UPSTREAM', new DownloadError('E_UPSTREAM', 'storage said 500', { cause: new Error('InternalError') }), 502],
  ['E_UNAVAILABLE', new DownloadError('E_UNAVAILABLE', 'SlowDown'), 503],
  ['E_TIMEOUT', new DownloadError('E_TIMEOUT', 'no answer in 30000 ms'), 504],
  ['an unknown error', new Error('driver bug at /srv/secret/path'), 500],
  ['a thrown string', 'bare string' as unknown as Error, 500]
]

async function serveWith (t: ExecutionContext, file: DownloadFile): Promise<FaultApp> {
  const app = await startApp((ctx) => { ctx.body = file })
  t.teardown(app.close)
  return app
}

/** A clean error: the status text only (no path, no message), its own length, no file headers. */
function assertCleanError (t: ExecutionContext, raw: Buffer, status: number, what: string): void {
  const res = split(raw)
  t.is(res.status, status, what)
  t.is(res.body.toString(), STATUS_CODES[status] ?? '', `${what}: the body is the status text, nothing internal`)
  t.is(res.headers['content-length'], String(res.body.length), what)
  for (const name of ['etag', 'last-modified', 'content-disposition', 'accept-ranges', 'content-range', 'cache-control']) t.is(res.headers[name], undefined, `${what}: no ${name}`)
  t.false(raw.toString('latin1').includes('/srv/secret'), `${what}: no internal path leaks`)
}

for (const stage of ['stat', 'open', 'read'] as const) {
  for (const [title, error, status] of failures) {
    test(`storage failing on ${stage}() with ${title} → ${status} before any header, clean, logged only when 5xx`, async t => {
      const app = await serveWith(t, new Faulty({ stage, error }))
      // read() is the small-file fast path: ask for a range small enough to use it.
      const { raw } = await clientRequest(app.port, '/', stage === 'read' ? { Range: 'bytes=0-99' } : {})
      assertCleanError(t, raw, status, `${stage} ${title}`)
      t.true(await settle(() => app.errors.length === 1))
      const logged = app.errors[0] as Error & { status?: number, cause?: unknown }
      t.is(logged.status, status)
      t.is(logged.cause, error, 'the original failure is kept as the cause, for the log')
    })
  }
}

test('storage failing mid-read: the client sees fewer bytes than Content-Length and a closed connection (never a clean short 200), and the failure is logged', async t => {
  const error = new DownloadError('E_UPSTREAM', 'storage connection reset after 300000 bytes')
  const file = new Faulty({ stage: 'stream', after: 300_000, error })
  const app = await serveWith(t, file)
  const { raw } = await clientRequest(app.port, '/')
  const res = split(raw)
  t.is(res.status, 200)
  t.is(res.headers['content-length'], String(SIZE))
  t.true(res.body.length < SIZE, `got ${res.body.length} of ${SIZE}`)
  t.true(res.body.length >= 0)
  t.true(await settle(() => app.errors.some((e) => e.message.includes('storage connection reset'))), `logged: ${app.errors.map((e) => e.message).join(' | ')}`)
  t.true(file.streams.every((s) => s.destroyed))
  t.true(await settle(() => socketsOn(app.port).length === 0))
})

test('a custom wrapper whose stream ends early without an error: the response is cut (fewer bytes than Content-Length), never completed', async t => {
  const file = new Faulty({ stage: 'short', after: 200_000 })
  const app = await serveWith(t, file)
  // keep-alive: if the server treated the short body as complete it would keep the socket for the next request
  const { raw } = await clientRequest(app.port, '/', { Connection: 'keep-alive' })
  const res = split(raw)
  t.is(res.headers['content-length'], String(SIZE))
  t.true(res.body.length < SIZE, 'the body is short')
  t.true(await settle(() => socketsOn(app.port).length === 0), 'the server closed the connection instead of keeping a half-answered one')
})

/** Two parts of 70,000 bytes: a multipart body above serve()'s bufferSize (64 KiB), streamed part by part. */
const LARGE_PARTS = 'bytes=0-69999,500000-569999'

test('storage failing on the second part of a multipart response: the transfer is aborted after the first part, logged', async t => {
  const error = new DownloadError('E_UPSTREAM', 'part 2 could not be read')
  const file = new Faulty({ stage: 'part', part: 2, error })
  const app = await serveWith(t, file)
  const { raw } = await clientRequest(app.port, '/', { Range: LARGE_PARTS })
  const res = split(raw)
  t.is(res.status, 206)
  t.regex(res.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/)
  t.true(res.body.length < Number(res.headers['content-length']), 'cut short')
  t.false(res.body.toString('latin1').includes('500000-569999/1000000\r\n\r\nBBBB'), 'the failed part carries no bytes')
  t.true(await settle(() => app.errors.some((e) => e.message.includes('part 2 could not be read') || (e.cause as Error | undefined)?.message === 'part 2 could not be read')), `logged: ${app.errors.map((e) => e.message).join(' | ')}`)
  t.true(file.streams.every((s) => s.destroyed))
})

for (const [title, cue] of [
  ['failing to open the first part', { stage: 'part', part: 1, error: new DownloadError('E_UNAVAILABLE', 'part 1: SlowDown') }],
  ['whose first part\'s stream fails before its first byte', { stage: 'stream', after: 0, error: new DownloadError('E_UNAVAILABLE', 'part 1: SlowDown') }]
] as const) {
  test(`storage ${title} of a multipart response: a clean 503 before any header (the first part is opened before the 206), logged, nothing left open`, async t => {
    const file = new Faulty(cue)
    const app = await serveWith(t, file)
    const { raw } = await clientRequest(app.port, '/', { Range: LARGE_PARTS })
    assertCleanError(t, raw, 503, title)
    t.false(raw.toString('latin1').includes('multipart'), 'no multipart header was sent')
    t.true(await settle(() => app.errors.length === 1))
    t.is(file.opens, 1, 'the second part was never opened')
    t.true(file.streams.every((s) => s.destroyed))
  })
}

test('a small multipart response is read whole before the headers (read(), one part after another): a storage failing on its second part is a clean error, not a cut 206; one that reads well gives the exact body', async t => {
  let reads = 0
  class FailsSecondRead extends Faulty {
    override async read (range?: ByteRange): Promise<Uint8Array> {
      if (++reads === 2) throw new DownloadError('E_UNAVAILABLE', 'part 2: SlowDown')
      return await super.read(range)
    }
  }
  const failing = new FailsSecondRead({ stage: 'none' })
  const app = await serveWith(t, failing)
  const { raw } = await clientRequest(app.port, '/', { Range: 'bytes=0-9,500000-500009' })
  assertCleanError(t, raw, 503, 'the second part')
  t.is(failing.opens, 0, 'nothing streamed')
  t.true(await settle(() => app.errors.length === 1))

  const whole = await serveWith(t, new Faulty({ stage: 'none' }))
  const ok = split((await clientRequest(whole.port, '/', { Range: 'bytes=0-9,500000-500009' })).raw)
  t.is(ok.status, 206)
  const boundary = /boundary=(\S+)$/.exec(ok.headers['content-type'] ?? '')?.[1] ?? ''
  const part = (range: string): string => `--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${range}/1000000\r\n\r\nBBBBBBBBBB`
  t.is(ok.body.toString('latin1'), `${part('0-9')}\r\n${part('500000-500009')}\r\n--${boundary}--\r\n`)
  t.is(Number(ok.headers['content-length']), ok.body.length)
})

test('a failing stat() on HEAD, If-None-Match and Range requests gives the same clean error (nothing is opened)', async t => {
  const error = new DownloadError('E_UNAVAILABLE', 'maintenance')
  const file = new Faulty({ stage: 'stat', error })
  const app = await serveWith(t, file)
  for (const headers of [{ 'If-None-Match': '"v1"' }, { Range: 'bytes=0-1' }, { 'If-Match': '"nope"' }]) {
    const { raw } = await clientRequest(app.port, '/', headers)
    assertCleanError(t, raw, 503, JSON.stringify(headers))
  }
  t.is(file.opens, 0)
})
