import { Agent, createServer, get as httpGet } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { gzipSync } from 'node:zlib'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { request } from 'node:http'
import test from 'ava'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import { StorageFile, storage } from '../../adapters/flydrive/index.ts'
import type { ByteRange, FileStat, OpenOptions, StatOptions } from '../../source/types.ts'
import { fileContract, rawRequest } from '../helpers/file-contract.ts'
import { S3_CREDENTIALS, s3Client, startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'
import { downloadApp } from '../helpers/koa.ts'
import { assertErrorResponse } from '../helpers/error-response.ts'
import { fetchBytes, listen } from '../helpers/listen.ts'

let s3: S3Server
let disk: Disk

test.serial.before(async () => {
  s3 = await startS3()
  disk = new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false }))
})
test.after.always(async () => { await s3?.stop() })

/** Object reads (GetObject), as opposed to HeadObject: `GET /<bucket>/<key>`. */
const isGetObject = (e: { method: string, url: string }): boolean => e.method === 'GET' && e.url.startsWith(`/${s3.bucket}/`)

fileContract(test, 'flydrive s3', () => ({
  file: (key) => storage(disk).file(key),
  put: async (key, bytes, contentType) => { await s3.put(key, bytes, contentType) },
  log: s3.log,
  isBodyRequest: isGetObject
}))

test.serial('flydrive s3: stat() is one HeadObject, cached on the instance, with the quoted MD5 ETag', async (t) => {
  s3.log.clear()
  const file = storage(disk).file('contract/object.bin')
  const [a, b] = await Promise.all([file.stat(), file.stat()])
  t.is(a, b)
  t.deepEqual(s3.log.entries.map((e) => e.method), ['HEAD'])
  t.regex(a.etag ?? '', /^"[0-9a-f]{32}"$/)
  t.is(a.size, 262144)
  t.is(a.contentType, 'application/x-test')
})

test.serial('flydrive s3: an S3Driver built from a config (no client) gets its own client for ranged reads', async (t) => {
  const config = { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, bucket: s3.bucket, supportsACL: false }
  const configured = new Disk(new S3Driver({ ...config, visibility: 'public' }))
  const file = new StorageFile(configured, 'contract/object.bin')
  t.is(file.url, `${s3.endpoint}/${s3.bucket}/contract/object.bin`)
  // A private disk's objects have no public URL (a proxy would fetch them unsigned), unless a CDN's.
  t.is(new StorageFile(new Disk(new S3Driver({ ...config, visibility: 'private' })), 'contract/object.bin').url, undefined)
  t.is(new StorageFile(new Disk(new S3Driver({ ...config, visibility: 'private', cdnUrl: 'https://cdn.example/media' })), 'a b.txt').url, 'https://cdn.example/media/a%20b.txt')
  const stream = await file.open({ start: 0, end: 3 })
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  t.is(Buffer.concat(chunks).length, 4)
})

test.serial('flydrive s3: a changed object between stat() and open() → E_CHANGED, and the next stat() asks again', async (t) => {
  await s3.put('changing.txt', 'first version')
  const file = storage(disk).file('changing.txt')
  const before = await file.stat()
  await s3.put('changing.txt', 'second version, longer')
  const error = await t.throwsAsync(file.open({ start: 0, end: 4 }))
  t.is((error as { code?: string }).code, 'E_CHANGED')
  const after = await file.stat()
  t.not(after.etag, before.etag)
  t.is(after.size, 22)
})

test.serial('flydrive s3: an object replaced by one of the same size between stat() and open() → E_CHANGED, whole and ranged, although s3rver ignores If-Match', async (t) => {
  for (const range of [undefined, { start: 0, end: 4 }]) {
    const what = JSON.stringify(range) ?? 'whole'
    await s3.put('changing.txt', 'first version')
    const file = storage(disk).file('changing.txt')
    const before = await file.stat()
    await s3.put('changing.txt', 'other version') // 13 bytes too: only the ETag tells them apart
    s3.log.clear()
    const error = await t.throwsAsync(file.open(range), undefined, what)
    t.is((error as { code?: string }).code, 'E_CHANGED', what)
    // The GetObject asked for the old object and got the new one: the store ignored If-Match.
    t.deepEqual(s3.log.entries.map((e) => `${e.method} ${e.headers['if-match'] ?? ''}`), [`GET ${before.etag ?? ''}`], what)
    const after = await file.stat()
    t.not(after.etag, before.etag, what)
    t.is(after.size, 13, what)
  }
})

/**
 * A StorageFile whose object `race` replaces right after its first stat() (`when: 'stat'`), or
 * right before its second open() (`when: 'second part'`: the first part of a multipart response
 * read whole, the next not yet asked for): the race with a writer, made deterministic.
 */
class Racing extends StorageFile {
  readonly #when: 'stat' | 'second part'
  #race: (() => Promise<void>) | undefined
  #opens = 0
  constructor (key: string, when: 'stat' | 'second part', race: () => Promise<void>) {
    super(disk, key)
    this.#when = when
    this.#race = race
  }

  override async stat (options?: StatOptions): Promise<FileStat> {
    const stat = await super.stat(options)
    if (this.#when === 'stat') await this.#run()
    return stat
  }

  override async open (range?: ByteRange, options?: OpenOptions): Promise<Readable> {
    if (this.#when === 'second part' && ++this.#opens === 2) await this.#run()
    return await super.open(range, options)
  }

  async #run (): Promise<void> {
    const race = this.#race
    this.#race = undefined
    await race?.()
  }
}

for (const size of [100_000, 1000]) {
  // 100 kB is streamed (open()); 1 kB is read whole before the headers (read()).
  test.serial(`flydrive s3: an object of ${size} bytes replaced by one of the same size between stat() and open() is sent as the new object under its own ETag (planned again), never the new bytes under the old ETag`, async (t) => {
    const v1 = Buffer.alloc(size, 'A')
    const v2 = Buffer.alloc(size, 'B')
    await s3.put('racing.bin', v1)
    const base = await listen(t, downloadApp((ctx) => { ctx.body = new Racing('racing.bin', 'stat', async () => { await s3.put('racing.bin', v2) }) }))
    s3.log.clear()
    // A precondition: HeadObject, then GetObject (no read-ahead).
    const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
    const requests = s3.log.entries.map((e) => e.method)
    const after = await storage(disk).file('racing.bin').stat()
    t.is(res.status, 200)
    t.true(res.complete)
    t.is(res.headers['content-length'], String(size))
    t.is(res.headers.etag, after.etag, 'the ETag of the object sent')
    t.true(res.body.equals(v2))
    // HeadObject (v1), GetObject with If-Match v1 (answered with v2), HeadObject (v2), GetObject
    t.deepEqual(requests, ['HEAD', 'GET', 'HEAD', 'GET'])
  })
}

test.serial('flydrive s3: an object replaced by one of the same size between the parts of a multipart response → the response is cut short, never a part of the new object under the old ETag', async (t) => {
  const v1 = Buffer.alloc(300_000, 'A')
  const v2 = Buffer.alloc(300_000, 'B')
  await s3.put('racing.bin', v1)
  const etag = (await storage(disk).file('racing.bin').stat()).etag
  const base = await listen(t, downloadApp((ctx) => { ctx.body = new Racing('racing.bin', 'second part', async () => { await s3.put('racing.bin', v2) }) }))
  s3.log.clear()
  const res = await rawRequest(`${base}/`, { headers: { Range: 'bytes=0-99999,200000-299999' } })
  t.is(res.status, 206)
  t.is(res.headers.etag, etag)
  const boundary = /^multipart\/byteranges; boundary=(\w+)$/.exec(res.headers['content-type'] ?? '')?.[1] ?? ''
  t.not(boundary, '')
  t.false(res.complete)
  t.true(res.body.length < Number(res.headers['content-length']))
  // What arrived is the start of the response for the old object: its first part, then nothing
  // of the second (its GetObject brought the new object, refused before a byte was sent).
  const planned = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-99999/300000\r\n\r\n`, 'latin1'),
    v1.subarray(0, 100_000),
    Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 200000-299999/300000\r\n\r\n`, 'latin1')
  ])
  t.true(res.body.equals(planned.subarray(0, res.body.length)), 'a prefix of the old object\'s response')
  t.false(res.body.includes('B'.repeat(16)))
  t.deepEqual(s3.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD ', 'GET bytes=0-99999', 'GET bytes=200000-299999'])
})

/**
 * An S3-compatible store (s3rver behind a proxy) whose GetObject sends its ETag as `rewrite` makes
 * it, HeadObject's left as S3 sends it (quoted): the forms other stores use. The Host header is
 * forwarded untouched, so the client's signatures verify.
 */
async function rewritingStore (t: import('ava').ExecutionContext, rewrite: (etag: string) => string | undefined): Promise<Disk> {
  const target = new URL(s3.directEndpoint)
  const server = createServer((req, res) => {
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      const { etag, ...headers } = up.headers
      const sent = req.method === 'GET' && etag !== undefined ? rewrite(etag) : etag
      res.writeHead(up.statusCode ?? 502, sent === undefined ? headers : { ...headers, etag: sent })
      up.pipe(res)
    })
    upstream.on('error', () => res.socket?.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = s3Client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(async () => {
    client.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return new Disk(new S3Driver({ client, bucket: s3.bucket, visibility: 'private', supportsACL: false }))
}

for (const [form, rewrite] of [
  ['bare', (etag: string) => etag.replace(/^"|"$/g, '')],
  ['weak', (etag: string) => `W/${etag}`]
] as const) {
  test.serial(`flydrive s3: a store whose GetObject sends the ETag ${form} reads the object HeadObject described (no false E_CHANGED), and still refuses a replaced one`, async (t) => {
    const store = await rewritingStore(t, rewrite)
    await s3.put('forms.txt', 'first version')
    const same = new StorageFile(store, 'forms.txt')
    await same.stat()
    t.is(Buffer.from(await same.read()).toString(), 'first version')
    t.is(Buffer.from(await same.read({ start: 6, end: 12 })).toString(), 'version')
    const replaced = new StorageFile(store, 'forms.txt')
    await replaced.stat()
    await s3.put('forms.txt', 'other version')
    const error = await t.throwsAsync(replaced.read())
    t.is((error as { code?: string }).code, 'E_CHANGED')
  })
}

test.serial('flydrive s3: a store whose GetObject sends no ETag: a whole read of another length than stat() saw → E_CHANGED before any byte', async (t) => {
  const store = await rewritingStore(t, () => undefined)
  await s3.put('forms.txt', 'first version')
  const file = new StorageFile(store, 'forms.txt')
  await file.stat()
  await s3.put('forms.txt', 'second version, longer')
  const error = await t.throwsAsync(file.open())
  t.is((error as { code?: string }).code, 'E_CHANGED')
  t.is((await file.stat()).size, 22)
})

test.serial('flydrive s3: signedFile() gives a presigned URL that s3rver (checking signatures) accepts, with Range', async (t) => {
  const media = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const file = await media.signedFile("odd/(1) a+b@c'd%e&f.bin", { expiresIn: 60 })
  t.regex(file.url ?? '', /X-Amz-Signature=/)
  const res = await fetch(file.url ?? '', { headers: { Range: 'bytes=0-7' } })
  t.is(res.status, 206)
  t.is(await res.text(), 'contents')
  const tampered = (file.url ?? '').replace(/X-Amz-Signature=([0-9a-f])/, (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`)
  t.is((await fetch(tampered)).status, 403)
})

test.serial('flydrive s3: an object stored gzip-coded (Content-Encoding metadata) is sent with its Content-Encoding, whole and ranged, its bytes as stored', async (t) => {
  const csv = Buffer.from('id,total\n' + Array.from({ length: 300 }, (_, i) => `${i},${i * 7}`).join('\n'))
  const gz = gzipSync(csv)
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'exports/report.csv', Body: gz, ContentType: 'text/csv', ContentEncoding: 'gzip' }))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = storage(disk).file('exports/report.csv') }))
  // node:http, which does not decode: the client must get the stored bytes and be told their coding.
  const fetchRaw = async (headers: Record<string, string>): Promise<{ res: IncomingMessage, body: Buffer }> => await new Promise((resolve, reject) => {
    httpGet(`${base}/`, { headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ res, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    }).on('error', reject)
  })
  // Plain (one GetObject), conditional (HeadObject + GetObject) and ranged.
  for (const headers of [{}, { 'If-None-Match': '"other"' }]) {
    const { res, body } = await fetchRaw(headers)
    t.is(res.statusCode, 200)
    t.is(res.headers['content-encoding'], 'gzip')
    t.is(res.headers['content-type'], 'text/csv')
    t.is(res.headers['content-length'], String(gz.length))
    t.deepEqual(body, gz)
  }
  const { res, body } = await fetchRaw({ Range: 'bytes=100-199' })
  t.is(res.statusCode, 206)
  t.is(res.headers['content-encoding'], 'gzip')
  t.is(res.headers['content-range'], `bytes 100-199/${gz.length}`)
  t.deepEqual(body, gz.subarray(100, 200))
})

test.serial('flydrive s3: every streamed download holds one of the S3 client\'s sockets until its client has read it all; with the pool full, the next download waits for a socket and gets 504 after idleTimeout (docs/adapters.md: size maxSockets)', async (t) => {
  // Far more than the kernel's and the streams' buffers hold between S3 and the stalled client.
  await s3.put('pool/big.bin', Buffer.alloc(32 << 20, 0x62))
  await s3.put('pool/small.txt', 'small\n')
  // The SDK's pool is 50 sockets per client by default; one here.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_CREDENTIALS, maxAttempts: 1, requestHandler: { httpAgent: agent } })
  const media = storage(new Disk(new S3Driver({ client, bucket: s3.bucket, visibility: 'private' })), { idleTimeout: 500 })
  const base = await listen(t, downloadApp((ctx) => { ctx.body = media.file(ctx.path.slice(1)) }))
  // A client that takes the headers and then stops reading: its download keeps the socket.
  const stalled = await new Promise<IncomingMessage>((resolve, reject) => { httpGet(`${base}/pool/big.bin`, resolve).on('error', reject) })
  stalled.pause()
  t.is(stalled.statusCode, 200)
  const waiting = await fetchBytes(base, '/pool/small.txt')
  t.is(waiting.status, 504)
  stalled.destroy()
  // The socket is free again once that download is gone.
  await new Promise((resolve) => setTimeout(resolve, 100))
  const after = await fetchBytes(base, '/pool/small.txt')
  t.is(after.status, 200)
  t.is((after.body as Buffer).toString(), 'small\n')
})

// ——— stat({ willRead }): GetObject as the metadata request ———

/** Serves `storage(disk).file(key)` through downloads() for one test. */
async function s3App (t: import('ava').ExecutionContext, key: string): Promise<string> {
  return await listen(t, downloadApp((ctx) => { ctx.body = storage(disk).file(key) }))
}

test.serial('flydrive s3: a plain GET is one GetObject (no HeadObject); a plain Range is one GetObject with that Range', async (t) => {
  await s3.put('ahead/object.bin', Buffer.from('0123456789abcdef'), 'application/x-ahead')
  const base = await s3App(t, 'ahead/object.bin')
  s3.log.clear()
  const whole = await fetchBytes(base, '/')
  t.is(whole.status, 200)
  t.is((whole.body as Buffer).toString(), '0123456789abcdef')
  t.is(whole.headers['content-type'], 'application/x-ahead')
  t.regex(whole.headers.etag ?? '', /^"[0-9a-f]{32}"$/)
  t.deepEqual(s3.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['GET '])
  // s3rver answers a suffix range with the whole object (S3 itself sends the part): that answer is
  // not relayed, the planned part is asked for exactly.
  for (const [range, contentRange, body, requests] of [
    ['bytes=2-5', 'bytes 2-5/16', '2345', ['GET bytes=2-5']],
    ['bytes=14-', 'bytes 14-15/16', 'ef', ['GET bytes=14-']],
    ['bytes=-3', 'bytes 13-15/16', 'def', ['GET bytes=-3', 'GET bytes=13-15']]
  ] as const) {
    s3.log.clear()
    const part = await fetchBytes(base, '/').set('Range', range)
    t.is(part.status, 206, range)
    t.is(part.headers['content-range'], contentRange, range)
    t.is((part.body as Buffer).toString(), body, range)
    t.deepEqual(s3.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), requests, range)
  }
})

test.serial('flydrive s3: an unsatisfiable forwarded Range falls back to HeadObject (416); conditional requests keep HeadObject + ranged GetObject', async (t) => {
  await s3.put('ahead/short.bin', Buffer.from('0123456789'))
  const base = await s3App(t, 'ahead/short.bin')
  s3.log.clear()
  const beyond = await fetchBytes(base, '/').set('Range', 'bytes=50-60')
  t.is(beyond.status, 416)
  t.is(beyond.headers['content-range'], 'bytes */10')
  t.deepEqual(s3.log.entries.map((e) => e.method), ['GET', 'HEAD'])
  s3.log.clear()
  const conditional = await fetchBytes(base, '/').set('Range', 'bytes=1-2').set('If-None-Match', '"other"')
  t.is(conditional.status, 206)
  t.is((conditional.body as Buffer).toString(), '12')
  t.deepEqual(s3.log.entries.map((e) => `${e.method} ${e.range ?? ''}`), ['HEAD ', 'GET bytes=1-2'])
  t.truthy(s3.log.entries[1]?.headers['if-match'])
})

test.serial('flydrive s3: a GetObject body that no open() takes is destroyed at the end of the turn', async (t) => {
  await s3.put('ahead/big.bin', Buffer.alloc(8 * 1024 * 1024, 0x62))
  s3.log.clear()
  const file = storage(disk).file('ahead/big.bin')
  const stat = await file.stat({ willRead: 'whole' })
  t.is(stat.size, 8 * 1024 * 1024)
  const entry = await s3.log.settledWhere((e) => e.method === 'GET' && e.url.includes('ahead/big.bin'))
  t.true(entry.closedEarly)
  const bytes = await file.read({ start: 0, end: 3 })
  t.is(Buffer.from(bytes).toString(), 'bbbb')
})

// ——— a storage that does not answer ———

test.serial('flydrive s3: no response to GetObject → 504 after idleTimeout, before any header (plain, ranged and conditional GET), and the GetObject is aborted', async (t) => {
  await s3.put('hang/object.bin', Buffer.alloc(100_000, 0x68))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = storage(disk, { idleTimeout: 300 }).file('hang/object.bin') }))
  for (const [headers, requests] of [
    [{}, ['GET']],
    [{ Range: 'bytes=10-19' }, ['GET']],
    [{ 'If-None-Match': '"other"' }, ['HEAD', 'GET']]
  ] as const) {
    const what = JSON.stringify(headers)
    s3.log.clear()
    s3.log.fault = 'hang' // GetObject is accepted and never answered; HeadObject is
    const started = Date.now()
    const res = await fetchBytes(base, '/').set(headers).timeout(5000)
    const waited = Date.now() - started
    s3.log.fault = undefined
    assertErrorResponse(t, res, 504)
    t.true(waited >= 300 && waited < 3000, `${what}: answered after ${waited} ms`)
    t.deepEqual(s3.log.entries.map((e) => e.method), [...requests], what)
    const get = await s3.log.settledWhere(isGetObject)
    t.true(get.closedEarly, `${what}: the GetObject was aborted, not left open on the storage`)
  }
})

test.serial('flydrive s3: a GetObject response that arrives while the event loop is held up past idleTimeout is read, not timed out', async (t) => {
  const bytes = Buffer.alloc(100_000, 0x6c)
  await s3.put('hang/held.bin', bytes)
  // 300 ms: under load the request itself may take a while to reach the proxy; the hold is 900.
  const base = await listen(t, downloadApp((ctx) => { ctx.body = storage(disk, { idleTimeout: 300 }).file('hang/held.bin') }))
  s3.log.clear()
  s3.log.fault = 'hold' // the proxy sends the response, then holds this thread for 3× the timeout
  const res = await fetchBytes(base, '/').timeout(5000)
  s3.log.fault = undefined
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '100000')
  t.true((res.body as Buffer).equals(bytes))
})

/** An S3 endpoint that accepts every request and answers none; `open` holds the requests still pending. */
async function stuckStorage (t: import('ava').ExecutionContext): Promise<{ endpoint: string, open: Set<ServerResponse> }> {
  const open = new Set<ServerResponse>()
  const server = createServer((_req, res) => {
    open.add(res)
    res.once('close', () => open.delete(res))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, open }
}

async function until (check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  return check()
}

test.serial('flydrive s3: no response to HeadObject → 504 after idleTimeout on HEAD and conditional GET; the HeadObject is aborted', async (t) => {
  const stuck = await stuckStorage(t)
  const client = s3Client(stuck.endpoint)
  t.teardown(() => { client.destroy() })
  const silent = storage(new Disk(new S3Driver({ client, bucket: 'b', visibility: 'private', supportsACL: false })), { idleTimeout: 300 })
  const base = await listen(t, downloadApp((ctx) => { ctx.body = silent.file('x.bin') }))
  const head = await fetchBytes(base, '/', 'head').timeout(5000)
  assertErrorResponse(t, head, 504, { head: true })
  const conditional = await fetchBytes(base, '/').set('If-None-Match', '"x"').timeout(5000)
  assertErrorResponse(t, conditional, 504)
  t.true(await until(() => stuck.open.size === 0, 2000), `${stuck.open.size} requests still open on the storage`)
})

test.serial('flydrive s3: a client that leaves while HeadObject is pending aborts it on the storage', async (t) => {
  const stuck = await stuckStorage(t)
  const client = s3Client(stuck.endpoint)
  t.teardown(() => { client.destroy() })
  // A timeout far beyond the test: only the clients' aborts can close the storage's requests.
  const silent = storage(new Disk(new S3Driver({ client, bucket: 'b', visibility: 'private', supportsACL: false })), { idleTimeout: 60_000 })
  const base = new URL(await listen(t, downloadApp((ctx) => { ctx.body = silent.file('x.bin') })))
  const clients = Array.from({ length: 5 }, () => {
    const req = request({ host: base.hostname, port: base.port, path: '/', method: 'HEAD', agent: false })
    req.on('error', () => {})
    req.end()
    return req
  })
  t.true(await until(() => stuck.open.size === 5, 3000), 'five HeadObject requests reached the storage')
  for (const req of clients) req.destroy()
  t.true(await until(() => stuck.open.size === 0, 2000), `${stuck.open.size} HeadObject requests still open after their clients left`)
})
