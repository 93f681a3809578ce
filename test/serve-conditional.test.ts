import test from 'ava'
import request from 'supertest'
import { download } from '../source/download.ts'
import { PathFile } from '../source/path-file.ts'
import { planResponse } from '../source/plan.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import type { ByteRange, DownloadFile, FileStat } from '../source/types.ts'
import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import { downloadApp, fixtureRoot } from './helpers/koa.ts'

/** A file wrapper that counts open() calls, to prove 304/412/416/HEAD open nothing. */
class CountingFile implements DownloadFile {
  readonly name = 'counted.txt'
  opens = 0
  readonly #stat: FileStat
  constructor (stat: FileStat) { this.#stat = stat }
  async stat (): Promise<FileStat> { return this.#stat }
  async open (range?: ByteRange): Promise<Readable> {
    this.opens++
    const bytes = Buffer.from('0123456789')
    return Readable.from([range === undefined ? bytes : bytes.subarray(range.start, range.end + 1)])
  }
}

const lastModified = new Date('2026-01-02T03:04:05Z')
const stat: FileStat = { size: 10, etag: '"v1"', lastModified }
function appFor (file: DownloadFile, cacheControl?: string) {
  return downloadApp((ctx) => {
    ctx.set('Vary', 'Cookie')
    ctx.body = download(file, cacheControl === undefined ? {} : { cacheControl })
  }).callback()
}

test('if-none-match: matching ETag → 304 with ETag, Cache-Control and Vary, no body headers, nothing opened', async t => {
  const file = new CountingFile(stat)
  const res = await request(appFor(file, 'private, max-age=60')).get('/').set('If-None-Match', '"v1"')
  t.is(res.status, 304)
  t.is(res.headers.etag, '"v1"')
  t.is(res.headers['cache-control'], 'private, max-age=60')
  t.is(res.headers.vary, 'Cookie')
  for (const name of ['content-type', 'content-length', 'content-disposition', 'content-range', 'last-modified', 'accept-ranges']) {
    t.is(res.headers[name], undefined, name)
  }
  t.is(file.opens, 0)
})

test('if-none-match: weak comparison, lists with empty members, and * all match', async t => {
  for (const header of ['W/"v1"', '"a", , "v1"', '*', ' "x" ,W/"v1" ']) {
    const res = await request(appFor(new CountingFile(stat))).get('/').set('If-None-Match', header)
    t.is(res.status, 304, header)
  }
})

test('if-none-match: no member matches, or the header is malformed → 200', async t => {
  for (const header of ['"v2"', 'v1', '"v1', 'W/v1']) {
    const res = await request(appFor(new CountingFile(stat))).get('/').set('If-None-Match', header)
    t.is(res.status, 200, header)
    t.is(res.text, '0123456789')
  }
})

test('if-none-match: a match on a method other than GET/HEAD → 412', async t => {
  const res = await request(appFor(new CountingFile(stat))).post('/').set('If-None-Match', '"v1"')
  t.is(res.status, 412)
})

test('if-modified-since: Last-Modified ≤ date → 304 (Last-Modified sent only when there is no ETag)', async t => {
  const noEtag = new CountingFile({ size: 10, lastModified })
  const res = await request(appFor(noEtag)).get('/').set('If-Modified-Since', lastModified.toUTCString())
  t.is(res.status, 304)
  t.is(res.headers['last-modified'], lastModified.toUTCString())
  t.is(noEtag.opens, 0)
  const withEtag = await request(appFor(new CountingFile(stat))).get('/').set('If-Modified-Since', new Date(lastModified.getTime() + 5000).toUTCString())
  t.is(withEtag.status, 304)
  t.is(withEtag.headers['last-modified'], undefined)
})

test('if-modified-since: an older date, an invalid date or a list → 200', async t => {
  for (const header of [new Date(lastModified.getTime() - 1000).toUTCString(), 'yesterday', `${lastModified.toUTCString()}, ${lastModified.toUTCString()}`]) {
    const res = await request(appFor(new CountingFile(stat))).get('/').set('If-Modified-Since', header)
    t.is(res.status, 200, header)
  }
})

test('if-modified-since is ignored when If-None-Match is present (unlike Koa ctx.fresh)', async t => {
  const res = await request(appFor(new CountingFile(stat))).get('/').set('If-None-Match', '"other"').set('If-Modified-Since', new Date().toUTCString())
  t.is(res.status, 200)
})

test('if-match: strong comparison; a weak tag or another tag → 412 with no file headers; * passes', async t => {
  const file = new CountingFile(stat)
  const ok = await request(appFor(file)).get('/').set('If-Match', '"v1"')
  t.is(ok.status, 200)
  t.is((await request(appFor(file)).get('/').set('If-Match', '*')).status, 200)
  for (const header of ['W/"v1"', '"v2"']) {
    const res = await request(appFor(new CountingFile(stat), 'max-age=60')).get('/').set('If-Match', header)
    t.is(res.status, 412, header)
    t.is(res.headers.etag, undefined)
    t.is(res.headers['cache-control'], undefined)
    t.is(res.headers['content-disposition'], undefined)
    t.is(Number(res.headers['content-length']), Buffer.byteLength(res.text))
  }
})

test('if-unmodified-since: modified after the date → 412; ignored when If-Match is present or the date is invalid', async t => {
  const before = new Date(lastModified.getTime() - 1000).toUTCString()
  t.is((await request(appFor(new CountingFile(stat))).get('/').set('If-Unmodified-Since', before)).status, 412)
  t.is((await request(appFor(new CountingFile(stat))).get('/').set('If-Unmodified-Since', lastModified.toUTCString())).status, 200)
  t.is((await request(appFor(new CountingFile(stat))).get('/').set('If-Match', '"v1"').set('If-Unmodified-Since', before)).status, 200)
  t.is((await request(appFor(new CountingFile(stat))).get('/').set('If-Unmodified-Since', 'garbage')).status, 200)
})

test('preconditions: 412 beats 304, and 304 beats 206/416', async t => {
  const res = await request(appFor(new CountingFile(stat))).get('/').set('If-Match', '"nope"').set('If-None-Match', '"v1"')
  t.is(res.status, 412)
  const notRange = await request(appFor(new CountingFile(stat))).get('/').set('If-None-Match', '"v1"').set('Range', 'bytes=50-60')
  t.is(notRange.status, 304)
})

test('HEAD: the same headers as GET, no body, and the file is not opened', async t => {
  const file = new CountingFile(stat)
  const handler = appFor(file, 'no-cache')
  const get = await request(handler).get('/')
  const head = await request(handler).head('/')
  t.is(head.status, 200)
  for (const name of ['content-type', 'content-length', 'content-disposition', 'etag', 'last-modified', 'accept-ranges', 'cache-control']) {
    t.is(head.headers[name], get.headers[name], name)
  }
  t.is(file.opens, 1) // the GET only
})

test('HEAD: preconditions apply (304), and 416-worthy ranges are ignored', async t => {
  const file = new CountingFile(stat)
  t.is((await request(appFor(file)).head('/').set('If-None-Match', '"v1"')).status, 304)
  t.is((await request(appFor(file)).head('/').set('Range', 'bytes=100-')).status, 200)
  t.is(file.opens, 0)
})

test('416 and 412 open nothing', async t => {
  const file = new CountingFile(stat)
  t.is((await request(appFor(file)).get('/').set('Range', 'bytes=100-')).status, 416)
  t.is((await request(appFor(file)).get('/').set('If-Match', '"x"')).status, 412)
  t.is(file.opens, 0)
})

test('a bodiless status the route set itself (204, 205, 304) opens and stats nothing, and carries no representation headers', async t => {
  for (const status of [204, 205, 304]) {
    for (const method of ['get', 'head'] as const) {
      const what = `${method.toUpperCase()} ${status}`
      const file = new CountingFile(stat)
      let stats = 0
      const counted: DownloadFile = { name: file.name, stat: async () => { stats++; return await file.stat() }, open: async (range) => await file.open(range) }
      let released = false
      const generated = new Readable({ read () { this.push('never sent') } })
      generated.once('close', () => { released = true })
      const handler = downloadApp((ctx) => {
        ctx.set('ETag', '"the-route-s-own"')
        ctx.status = status
        ctx.body = ctx.path === '/generated'
          ? download(new VirtualFile(generated, { name: 'report.csv', size: 10 }), { cacheControl: 'no-cache' })
          : download(counted, { cacheControl: 'private, max-age=60' })
      }).callback()
      // Conditionals and Range describe a 200: a route's own status ignores them.
      const res = await request(handler)[method]('/').set('Range', 'bytes=0-3').set('If-None-Match', '"x"')
      t.is(res.status, status, what)
      t.is(file.opens, 0, what)
      t.is(stats, 0, what)
      t.is(res.headers['cache-control'], 'private, max-age=60', what)
      t.is(res.headers.etag, '"the-route-s-own"', what)
      for (const name of ['content-type', 'content-length', 'content-disposition', 'content-range', 'last-modified', 'accept-ranges', 'transfer-encoding']) {
        t.is(res.headers[name], undefined, `${what}: ${name}`)
      }
      const other = await request(handler)[method]('/generated')
      t.is(other.status, status, what)
      t.is(other.headers['cache-control'], 'no-cache', what)
      t.true(released, `${what}: the generated stream is released`)
    }
  }
})

test('local files: the ETag round-trips into a 304, and a stale ETag after a change gives 200', async t => {
  const handler = downloadApp((ctx) => { ctx.body = new PathFile('hello.txt', { root: fixtureRoot }) }).callback()
  const first = await request(handler).get('/')
  t.regex(first.headers.etag ?? '', /^"[0-9a-f]+-e"$/)
  t.is((await request(handler).get('/').set('If-None-Match', first.headers.etag ?? '')).status, 304)
  t.is((await request(handler).get('/').set('If-None-Match', '"0-e"')).status, 200)
})

test('no Last-Modified is sent for an unknown or epoch mtime', async t => {
  const epoch = new CountingFile({ size: 10, lastModified: new Date(0) })
  const res = await request(appFor(epoch)).get('/').set('If-Modified-Since', new Date().toUTCString())
  t.is(res.status, 200)
  t.is(res.headers['last-modified'], undefined)
})

test('a Last-Modified in the future is sent as the response Date (RFC 9110 §8.8.2.1), also past year 9999', async t => {
  for (const ahead of [new Date(Date.now() + 365 * 86400_000), new Date('+010000-01-01T00:00:00Z')]) {
    const res = await request(appFor(new CountingFile({ size: 10, lastModified: ahead }))).get('/')
    t.is(res.status, 200)
    t.is(res.text, '0123456789')
    t.is(res.headers['last-modified'], res.headers.date ?? 'no Date')
  }
})

test('planResponse: a Last-Modified of the current second or later is also the response Date, set by the plan, not left to Node\'s cached Date (which may still name the second before); an older one leaves Date to Node', t => {
  // A clock of its own: 700 ms into 12:00:00.
  const now = Date.UTC(2026, 0, 5, 12, 0, 0, 700)
  const second = 'Mon, 05 Jan 2026 12:00:00 GMT'
  const presentation = { contentType: 'text/plain; charset=utf-8', contentDisposition: 'attachment; filename="counted.txt"', cacheControl: 'private', sandboxed: false }
  const options = { etag: true, lastModified: true, ranges: true, rangeLimits: {} }
  const headersOf = (lastModified: Date, request: IncomingHttpHeaders = {}): Record<string, string | null> => {
    const plan = planResponse('GET', request, { size: 10, etag: '"v1"', lastModified }, presentation, options, now)
    return 'headers' in plan ? plan.headers : {}
  }
  for (const lastModified of [new Date(now - 700), new Date(now), new Date(now + 2000), new Date(now + 365 * 86400_000)]) {
    const what = lastModified.toISOString()
    const headers = headersOf(lastModified)
    t.is(headers['Last-Modified'], second, what)
    t.is(headers.Date, second, what)
    // The 304 carries it too.
    t.is(headersOf(lastModified, { 'if-none-match': '"v1"' }).Date, second, what)
  }
  const older = headersOf(new Date(now - 701))
  t.is(older['Last-Modified'], 'Mon, 05 Jan 2026 11:59:59 GMT')
  t.false('Date' in older)
})

test('a future Last-Modified does not keep answering If-Modified-Since with 304 once the file changed', async t => {
  // Without ETags the date is the only validator: had the future date been sent, the client would
  // revalidate with it, and the changed file (an mtime now, before that date) would still be "not modified".
  const file = new CountingFile({ size: 10, lastModified: new Date(Date.now() + 365 * 86400_000) })
  const handler = downloadApp((ctx) => { ctx.body = download(file) }, { etag: false }).callback()
  const first = await request(handler).get('/')
  const sent = first.headers['last-modified'] ?? ''
  t.is(sent, first.headers.date ?? 'no Date')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const changed = new CountingFile({ size: 10, lastModified: new Date() })
  const after = downloadApp((ctx) => { ctx.body = download(changed) }, { etag: false }).callback()
  const res = await request(after).get('/').set('If-Modified-Since', sent)
  t.is(res.status, 200)
  t.is(res.text, '0123456789')
})

test('a date precondition sent in two lines is ignored, whichever line comes first (RFC 9110 §13.1.3, §13.1.4: more than one member); one line still counts', async t => {
  const before = 'Fri, 02 Jan 2026 03:04:04 GMT'
  const after = 'Fri, 02 Jan 2026 03:04:06 GMT'
  const app = appFor(new CountingFile(stat))
  // supertest's types allow a list for Cookie only; Node's client sends each member as a line.
  const twoLines = (first: string, second: string): string => [first, second] as unknown as string
  for (const lines of [[after, before], [before, after]] as Array<[string, string]>) {
    const modified = await request(app).get('/').set('If-Modified-Since', twoLines(...lines))
    t.is(modified.status, 200, `If-Modified-Since ${lines.join(' / ')}`)
    t.is(modified.text, '0123456789')
    const unmodified = await request(app).get('/').set('If-Unmodified-Since', twoLines(...lines))
    t.is(unmodified.status, 200, `If-Unmodified-Since ${lines.join(' / ')}`)
  }
  t.is((await request(app).get('/').set('If-Modified-Since', after)).status, 304)
  t.is((await request(app).get('/').set('If-Unmodified-Since', before)).status, 412)
  // Two lines of the same date are two members too; other fields are read as before.
  const same = await request(app).get('/').set('If-Modified-Since', twoLines(after, after)).set('If-None-Match', '"v0"')
  t.is(same.status, 200)
  t.is((await request(app).get('/').set('If-Modified-Since', twoLines(after, after)).set('If-None-Match', '"v1"')).status, 304)
})
