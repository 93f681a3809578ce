import { generateKeyPairSync } from 'node:crypto'
import { once } from 'node:events'
import { createServer, get } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buffer } from 'node:stream/consumers'
import { gzipSync } from 'node:zlib'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { Storage } from '@google-cloud/storage'
import type { StorageOptions } from '@google-cloud/storage'
import { Disk } from 'flydrive'
import { GCSDriver } from 'flydrive/drivers/gcs'
import Koa from 'koa'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { FileStat, StatOptions } from '../../source/types.ts'
import { StorageFile, presignedRedirect, storage } from '../../adapters/flydrive/index.ts'
import { fileContract, rawRequest } from '../helpers/file-contract.ts'
import { fetchBytes, listen } from '../helpers/listen.ts'
import { downloadApp } from '../helpers/koa.ts'
import { startGcsServer } from '../helpers/gcs-server.ts'
import type { GcsServer } from '../helpers/gcs-server.ts'

let gcs: GcsServer
let disk: Disk
let publicDisk: Disk

test.serial.before(async () => {
  gcs = await startGcsServer()
  // No retries: a fault must reach the adapter, not be retried away with back-off.
  const client = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', retryOptions: { autoRetry: false, maxRetries: 0 } })
  disk = new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'private' }))
  publicDisk = new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'public' }))
})
test.after.always(async () => { await gcs?.stop() })

/** Media reads (`?alt=media` or the XML path), as opposed to metadata reads. */
const isMedia = (e: { url: string }): boolean => e.url.includes('alt=media') || !e.url.startsWith('/storage/v1/')

// A short idle timeout: the GCS SDK's stream hangs when the connection drops mid-body.
fileContract(test, 'flydrive gcs', () => ({
  file: (key) => storage(disk, { idleTimeout: 500 }).file(key),
  put: async (key, bytes, contentType) => { gcs.put(key, bytes, contentType) },
  log: gcs.log,
  isBodyRequest: isMedia
}))

test.serial('flydrive gcs: stat() is one metadata request; the bare GCS etag is quoted', async (t) => {
  gcs.log.clear()
  const file = storage(disk).file('contract/object.bin')
  await file.stat()
  const stat = await file.stat()
  t.is(gcs.log.entries.length, 1)
  t.regex(stat.etag ?? '', /^"C\d+EAE="$/)
  t.is(stat.size, 262144)
  t.is(stat.contentType, 'application/x-test')
})

test.serial('flydrive gcs: url is the public URL on the API endpoint, key encoded per segment, on a public disk; a private disk\'s objects have none (the proxy would fetch them unsigned)', (t) => {
  const file = new StorageFile(publicDisk, 'docs/ünïcödé résumé.txt')
  t.is(file.url, `${gcs.endpoint}/${gcs.bucket}/docs/%C3%BCn%C3%AFc%C3%B6d%C3%A9%20r%C3%A9sum%C3%A9.txt`)
  // The bucket spelled as the SDK also takes it (gs://, a trailing slash): the same public URL.
  for (const bucket of [`gs://${gcs.bucket}`, `${gcs.bucket}/`]) {
    const spelled = new Disk(new GCSDriver({ storage: new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test' }), bucket, visibility: 'public' }))
    t.is(new StorageFile(spelled, 'docs/a b.txt').url, `${gcs.endpoint}/${gcs.bucket}/docs/a%20b.txt`, bucket)
  }
  t.is(new StorageFile(disk, 'docs/a.txt').url, undefined)
  t.is(new StorageFile(disk, 'docs/a.txt', { url: 'https://cdn.example/docs/a.txt' }).url, 'https://cdn.example/docs/a.txt')
})

test.serial('flydrive gcs: an object stored gzip-coded (contentEncoding metadata) is sent with its Content-Encoding, whole and ranged, its bytes as stored (the SDK asked not to gunzip), and decoded for a client that refuses gzip', async (t) => {
  const csv = Buffer.from('id,total\n' + Array.from({ length: 300 }, (_, i) => `${i},${i * 7}`).join('\n'))
  const gz = gzipSync(csv)
  gcs.put('exports/report.csv', gz, 'text/csv', 'gzip')
  // The stub transcodes like GCS for a client that does not accept gzip: the adapter must not be one.
  const transcoded = await rawRequest(`${gcs.endpoint}/${gcs.bucket}/exports/report.csv`, { headers: { Range: 'bytes=0-9' } })
  t.is(transcoded.status, 200)
  t.deepEqual(transcoded.body, csv)
  const base = await listen(t, downloadApp((ctx) => { ctx.body = storage(disk).file('exports/report.csv') }))
  // rawRequest (node:http) does not decode: the client must get the stored bytes and be told their coding.
  for (const headers of [{}, { 'If-None-Match': '"other"' }, { 'Accept-Encoding': 'gzip, deflate' }]) {
    const res = await rawRequest(`${base}/`, { headers })
    t.is(res.status, 200)
    t.is(res.headers['content-encoding'], 'gzip')
    t.is(res.headers['content-type'], 'text/csv')
    t.is(res.headers['content-length'], String(gz.length))
    t.is(res.headers.vary, 'Accept-Encoding')
    t.deepEqual(res.body, gz)
  }
  // A client that refuses gzip (wget sends Accept-Encoding: identity) gets the bytes decoded, as
  // GCS would send them: no Content-Encoding, no length, no ranges, an ETag of their own.
  const decoded = await rawRequest(`${base}/`, { headers: { 'Accept-Encoding': 'identity', Range: 'bytes=0-9' } })
  t.is(decoded.status, 200)
  t.deepEqual(decoded.body, csv)
  t.is(decoded.headers['content-encoding'], undefined)
  t.is(decoded.headers['content-length'], undefined)
  t.is(decoded.headers['accept-ranges'], 'none')
  t.regex(decoded.headers.etag ?? '', /^"C\d+EAE=-decoded"$/)
  const ranged = await rawRequest(`${base}/`, { headers: { Range: 'bytes=100-199' } })
  t.is(ranged.status, 206)
  t.is(ranged.headers['content-encoding'], 'gzip')
  t.is(ranged.headers['content-range'], `bytes 100-199/${gz.length}`)
  t.deepEqual(ranged.body, gz.subarray(100, 200))
  const head = await rawRequest(`${base}/`, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-encoding'], 'gzip')
  t.is(head.headers['content-length'], String(gz.length))
})

test.serial('flydrive gcs: a mid-body drop errors the stream at once (the SDK\'s read stream hung until the idle timeout)', async (t) => {
  const file = storage(disk, { idleTimeout: 60_000 }).file('contract/object.bin')
  await file.stat()
  gcs.log.fault = 'drop'
  const stream = await file.open()
  gcs.log.fault = undefined
  let received = 0
  const error = await t.throwsAsync(async () => { for await (const chunk of stream) received += (chunk as Buffer).length })
  t.is((error as { code?: string }).code, 'E_UPSTREAM')
  t.regex((error as Error).message, /the source failed after \d+ bytes/)
  t.true(received < 262144)
})

/** The contract object through a client of its own, with the SDK's per-request timeout and ours. */
function objectWith ({ sdkTimeout, idleTimeout }: { sdkTimeout: number, idleTimeout: number }): StorageFile {
  const client = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', timeout: sdkTimeout, retryOptions: { autoRetry: false, maxRetries: 0 } })
  return storage(new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'private' })), { idleTimeout }).file('contract/object.bin')
}

test.serial('flydrive gcs: no response to the media request → E_TIMEOUT after the idle timeout, and the request is closed then (not after the SDK\'s 60 s)', async (t) => {
  // The SDK's default per-request timeout (60 s): the request must still be closed by ours.
  const file = objectWith({ sdkTimeout: 60_000, idleTimeout: 1000 })
  await file.stat()
  gcs.log.clear()
  gcs.log.fault = 'hang'
  const error = await t.throwsAsync(file.open())
  gcs.log.fault = undefined
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  t.regex((error as Error).message, /: no response in \d+ ms$/, 'our own wait answered')
  const media = await gcs.log.settledWhere(isMedia)
  t.true(media.closedEarly, 'the storage saw the request closed')
})

test.serial('flydrive gcs: the Storage client\'s own `timeout`, when shorter than the idle timeout, bounds the wait for a media response: a timeout too (504), not a storage failure', async (t) => {
  const file = objectWith({ sdkTimeout: 300, idleTimeout: 5000 })
  await file.stat()
  gcs.log.fault = 'hang'
  const started = Date.now()
  const error = await t.throwsAsync(file.open())
  const took = Date.now() - started
  gcs.log.fault = undefined
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  t.is((error as { status?: number }).status, 504)
  // The message gives what was left of the 300 ms once the authorization was ready.
  t.regex((error as Error).message, /: no response in \d+ ms$/)
  t.true(took >= 290 && took < 2000, `the client's timeout, not the idle timeout: ${took} ms`)
})

test.serial('flydrive gcs: a response that arrives while the event loop is held up past the idle timeout is read, not timed out', async (t) => {
  // 300 ms: under load the request itself may take a while to reach the stub; the hold is 900.
  const file = storage(disk, { idleTimeout: 300 }).file('contract/object.bin')
  const expected = await buffer(await file.open())
  await file.stat()
  gcs.log.fault = 'hold' // the stub sends the object, then holds this thread for 3× the timeout
  const stream = await file.open()
  gcs.log.fault = undefined
  const bytes = await buffer(stream)
  t.is(bytes.length, 262144)
  t.true(bytes.equals(expected))
})

test.serial('flydrive gcs: presignedRedirect() sends the client to a signed URL with the download\'s disposition (stub: signature not verified)', async (t) => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
  const signer = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', credentials: { client_email: 'test@test.iam.gserviceaccount.com', private_key: privateKey } })
  const media = storage(new Disk(new GCSDriver({ storage: signer, bucket: gcs.bucket, visibility: 'private' })))
  const koa = new Koa()
  koa.silent = true
  koa.use(downloads())
  koa.use(presignedRedirect({ expiresIn: 60, status: 307 }))
  koa.use((ctx) => { ctx.body = download(media.file('docs/ünïcödé résumé.txt')) })
  const base = await listen(t, koa)
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 307)
  const location = new URL(res.headers.location ?? '')
  t.is(location.origin + location.pathname, `${gcs.endpoint}/${gcs.bucket}/docs/%C3%BCn%C3%AFc%C3%B6d%C3%A9%20r%C3%A9sum%C3%A9.txt`)
  // V4, whose signature covers the query (V2, the SDK's default, signs none of it).
  t.is(location.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256')
  t.is(location.searchParams.get('X-Goog-Expires'), '60')
  t.regex(location.searchParams.get('X-Goog-Signature') ?? '', /^[0-9a-f]{512}$/)
  t.is(location.searchParams.get('response-content-disposition'), 'attachment; filename="unicode resume.txt"; filename*=UTF-8\'\'%C3%BCn%C3%AFc%C3%B6d%C3%A9%20r%C3%A9sum%C3%A9.txt')
  const object = await fetch(location)
  t.is(object.status, 200)
  t.is(await object.text(), 'contents of docs/ünïcödé résumé.txt\n')
})

test.serial('flydrive gcs: a signed URL\'s Content-Disposition and Content-Type are covered by its signature (V4): another disposition or type, another signature; a bad expiresIn is a TypeError', async (t) => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
  const signer = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', credentials: { client_email: 'test@test.iam.gserviceaccount.com', private_key: privateKey } })
  const media = storage(new Disk(new GCSDriver({ storage: signer, bucket: gcs.bucket, visibility: 'private' })))
  const file = media.file('docs/a.txt')
  const signature = (url: string): string | null => new URL(url).searchParams.get('X-Goog-Signature')
  const date = (url: string): string | null => new URL(url).searchParams.get('X-Goog-Date')
  // Signed within one second, so that only the disposition and type differ (again if a second ended in between).
  let urls: string[] = []
  for (let attempt = 0; attempt < 5 && (urls.length === 0 || new Set(urls.map(date)).size > 1); attempt++) {
    urls = await Promise.all([
      file.signedUrl({ expiresIn: 60, contentDisposition: 'attachment; filename="a.txt"', contentType: 'text/plain' }),
      file.signedUrl({ expiresIn: 60, contentDisposition: 'inline; filename="a.txt"', contentType: 'text/plain' }),
      file.signedUrl({ expiresIn: 60, contentDisposition: 'attachment; filename="a.txt"', contentType: 'text/html' })
    ])
  }
  const [attached = '', inline = '', html = ''] = urls
  t.is(new Set(urls.map(date)).size, 1)
  t.not(signature(attached), signature(inline))
  t.not(signature(attached), signature(html))
  for (const expiresIn of [0, -5, 604_801, 1.5, '-5 mins', '1ms', '0s', '8 days', '2 weeks']) {
    await t.throwsAsync(file.signedUrl({ expiresIn }), { instanceOf: TypeError, message: /expiresIn must be an integer number of seconds, 1 to 604800/ }, String(expiresIn))
  }
  // A bare number in a string is milliseconds to flydrive; space around the unit fails in flydrive.
  for (const expiresIn of ['3600', ' 3600 ', '1', '30 mins ', ' 2h']) {
    await t.throwsAsync(file.signedUrl({ expiresIn }), { instanceOf: TypeError, message: /is not a duration: give a number of seconds/ }, JSON.stringify(expiresIn))
  }
  // Duration strings within the range sign, as flydrive reads them.
  for (const expiresIn of ['30 mins', '2h', '7 days', '1 week', '90s']) t.regex(await file.signedUrl({ expiresIn }), /X-Goog-Expires=\d+/, expiresIn)
})

// ——— an object replaced between stat() and open() ———

/** A StorageFile whose object is replaced (or deleted) by `race` right after its first stat(): the race, made deterministic. */
class Racing extends StorageFile {
  race: (() => void) | undefined
  constructor (race: () => void) {
    super(disk, 'racing.bin')
    this.race = race
  }

  override async stat (options?: StatOptions): Promise<FileStat> {
    const stat = await super.stat(options)
    const race = this.race
    this.race = undefined
    race?.()
    return stat
  }
}

for (const size of [100_000, 1000]) {
  // 100 kB is streamed (open()); 1 kB is read whole before the headers (read()).
  test.serial(`flydrive gcs: an object of ${size} bytes replaced between stat() and open() is sent as the new object, under its own validators (planned again), never the new bytes under the old ETag`, async (t) => {
    const v1 = Buffer.alloc(size, 'A')
    const v2 = Buffer.alloc(size, 'B') // the same size: only the validators tell them apart
    gcs.put('racing.bin', v1)
    const base = await listen(t, downloadApp((ctx) => { ctx.body = new Racing(() => { gcs.put('racing.bin', v2) }) }))
    gcs.log.clear()
    const res = await rawRequest(`${base}/`, { headers: { 'If-None-Match': '"other"' } })
    const requests = gcs.log.entries.map((e) => isMedia(e) ? `media ${new URL(e.url, 'http://stub').searchParams.get('generation') ?? 'live'}` : 'metadata')
    const after = await storage(disk).file('racing.bin').stat()
    const generation = /^"C(\d+)EAE="$/.exec(after.etag ?? '')?.[1] ?? '' // the stub's etag names the generation
    t.is(res.status, 200)
    t.true(res.complete)
    t.is(res.headers['content-length'], String(size))
    t.is(res.headers.etag, after.etag, 'the ETag of the object sent')
    t.is(res.headers['last-modified'], after.lastModified?.toUTCString())
    t.true(res.body.equals(v2))
    // metadata, the pinned media read (404: that generation is gone), metadata again, media
    t.deepEqual(requests, ['metadata', `media ${Number(generation) - 1}`, 'metadata', `media ${generation}`])
  })
}

test.serial('flydrive gcs: an object deleted between stat() and open() is a 404, after one more metadata request', async (t) => {
  gcs.put('racing.bin', Buffer.alloc(100_000, 'A'))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = new Racing(() => { gcs.remove('racing.bin') }) }))
  gcs.log.clear()
  const res = await rawRequest(`${base}/`)
  t.is(res.status, 404)
  t.is(res.body.toString(), 'Not Found')
  t.is(res.headers.etag, undefined)
  t.deepEqual(gcs.log.entries.map((e) => isMedia(e) ? 'media' : 'metadata'), ['metadata', 'media', 'metadata'])
})

// ——— a storage that answers late, or never ———

/**
 * A GCS JSON API that answers nothing by itself: each request waits in `pending` until the test
 * answers it (or leaves it unanswered). `closed` resolves when the request's connection closes.
 */
async function startSilentGcs (t: ExecutionContext, retryOptions: StorageOptions['retryOptions'] = { autoRetry: false, maxRetries: 0 }): Promise<{ client: Storage, next: () => Promise<{ req: IncomingMessage, res: ServerResponse, closed: Promise<void> }> }> {
  const waiting: Array<(value: { req: IncomingMessage, res: ServerResponse, closed: Promise<void> }) => void> = []
  const arrived: Array<{ req: IncomingMessage, res: ServerResponse, closed: Promise<void> }> = []
  const server = createServer((req, res) => {
    const entry = { req, res, closed: new Promise<void>((resolve) => { req.socket.once('close', () => { resolve() }) }) }
    const taker = waiting.shift()
    if (taker === undefined) arrived.push(entry)
    else taker(entry)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  const client = new Storage({ apiEndpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, projectId: 'test', retryOptions })
  return {
    client,
    next: async () => arrived.shift() ?? await new Promise((resolve) => { waiting.push(resolve) })
  }
}

/** Whether `closed` settles within a generous 5 s (false: the request was left open). */
async function closes (closed: Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const gaveUp = new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, 5000) })
  try {
    return await Promise.race([closed.then(() => true), gaveUp])
  } finally {
    clearTimeout(timer)
  }
}

const silentMetadata = JSON.stringify({ name: 'late.bin', bucket: 'b', size: String(1 << 20), contentType: 'application/octet-stream', etag: 'CAE=', updated: '2026-01-01T00:00:00.000Z', generation: '1' })

// With the SDK's own retries on (its default), a media read answered 503 crashed the process: the SDK
// piped the retried response into the stream it had destroyed (an uncaught ERR_STREAM_UNABLE_TO_PIPE
// from teeny-request). The adapter turns them off for media reads and retries by the client's
// retryOptions itself. maxRetryDelay keeps the back-off short here; everything else is the default.
test.serial('flydrive gcs, through serve(): a media read answered 503 with the SDK\'s default retries on is read again, and the client gets the file (the process survives)', async (t) => {
  const silent = await startSilentGcs(t, { maxRetryDelay: 0.05 })
  const object = Buffer.alloc(1 << 20, 0x61)
  const media = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file('late.bin')) }))
  const answered = rawRequest(`${base}/`)
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  const first = await silent.next()
  t.is(new URL(first.req.url ?? '', 'http://x').searchParams.get('alt'), 'media')
  first.res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"error":{"code":503,"message":"Backend Error"}}')
  const second = await silent.next()
  t.is(new URL(second.req.url ?? '', 'http://x').searchParams.get('alt'), 'media')
  t.is(new URL(second.req.url ?? '', 'http://x').searchParams.get('generation'), '1', 'the retry reads the generation stat() saw')
  second.res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': object.length }).end(object)
  const res = await answered
  t.is(res.status, 200)
  t.is(res.headers['content-length'], String(object.length))
  t.deepEqual(res.body, object)
})

test.serial('flydrive gcs: media reads answered 503 each time → retried maxRetries times, then a 503 for the client, never a crash', async (t) => {
  const silent = await startSilentGcs(t, { maxRetries: 2, maxRetryDelay: 0.05 })
  const media = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file('late.bin')) }))
  const answered = rawRequest(`${base}/`)
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  for (let i = 0; i < 3; i++) {
    const read = await silent.next()
    t.is(new URL(read.req.url ?? '', 'http://x').searchParams.get('alt'), 'media', `read ${i + 1}`)
    read.res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"error":{"code":503,"message":"Backend Error"}}')
  }
  const res = await answered
  t.is(res.status, 503)
  t.is(res.body.toString(), 'Service Unavailable')
})

test.serial('flydrive gcs, through serve(): a media read whose connection is reset before any response is read again (the client\'s retryableErrorFn: ECONNRESET), and the client gets the file', async (t) => {
  const silent = await startSilentGcs(t, { maxRetryDelay: 0.05 })
  const object = Buffer.alloc(100_000, 0x62)
  const media = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file('late.bin')) }))
  const answered = rawRequest(`${base}/`)
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata.replace(String(1 << 20), String(object.length)))
  const first = await silent.next()
  t.is(new URL(first.req.url ?? '', 'http://x').searchParams.get('alt'), 'media')
  first.req.socket.destroy()
  const second = await silent.next()
  t.is(new URL(second.req.url ?? '', 'http://x').searchParams.get('alt'), 'media')
  second.res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': object.length }).end(object)
  const res = await answered
  t.is(res.status, 200)
  t.true(res.complete)
  t.deepEqual(res.body, object)
})

test.serial('flydrive gcs: idleTimeout bounds a media read attempt as a whole: an error status whose body never ends, sent late, is answered at idleTimeout, not after it again', async (t) => {
  const silent = await startSilentGcs(t)
  // The late status comes 1.4 s in, well before the 4 s idleTimeout (a 2 s one left a loaded machine 0.6 s of slack).
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })), { idleTimeout: 4000 }).file('late.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  await statted
  const started = Date.now()
  const opened = file.open()
  const media = await silent.next()
  await new Promise((resolve) => setTimeout(resolve, 1400))
  media.res.writeHead(503, { 'Content-Type': 'application/json' }).write('{"error":{"code":503,')
  const error = await t.throwsAsync(opened)
  const took = Date.now() - started
  t.is((error as { code?: string }).code, 'E_UNAVAILABLE')
  // A second full idleTimeout after the late status would be ≥ 5400 ms.
  t.true(took >= 3950 && took < 5300, `answered after ${took} ms`)
  t.true(await closes(media.closed), 'the unfinished error response is closed')
})

test.serial('flydrive gcs: a 404 or a 403 on the media read is not retried', async (t) => {
  const silent = await startSilentGcs(t, { maxRetryDelay: 0.05 })
  const media = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file('late.bin')) }))
  for (const [status, expected] of [[403, 502], [404, 404]] as const) {
    const answered = rawRequest(`${base}/`)
    ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
    ;(await silent.next()).res.writeHead(status, { 'Content-Type': 'application/json' }).end(`{"error":{"code":${status},"message":"no"}}`)
    if (status === 404) {
      // generation 1 is gone: serve() plans again, and the object is missing now
      ;(await silent.next()).res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":{"code":404,"message":"No such object"}}')
    }
    const res = await answered
    t.is(res.status, expected)
  }
  const late = await Promise.race([silent.next().then(() => 'another request'), new Promise((resolve) => setTimeout(() => { resolve('none') }, 300))])
  t.is(late, 'none')
})

test.serial('flydrive gcs: a client gone before stat() or open() is called (AbortError) sends the storage no request', async (t) => {
  const silent = await startSilentGcs(t)
  const disk = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  const gone = new AbortController()
  gone.abort()
  t.is(((await t.throwsAsync(disk.file('late.bin').stat({ signal: gone.signal }))) as Error).name, 'AbortError')
  // A StorageFile keeps its stat(): another one, described while the client was there.
  const file = disk.file('late.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  await statted
  t.is(((await t.throwsAsync(file.open(undefined, { signal: gone.signal }))) as Error).name, 'AbortError')
  const late = await Promise.race([silent.next().then(() => 'a request'), new Promise((resolve) => setTimeout(() => { resolve('none') }, 300))])
  t.is(late, 'none')
})

test.serial('flydrive gcs: a client that leaves while open() waits to read again ends the wait at once (AbortError), and no further read is sent', async (t) => {
  // the default back-off: the first retry waits 1–2 s
  const silent = await startSilentGcs(t, {})
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' }))).file('late.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  await statted
  const client = new AbortController()
  const opened = file.open(undefined, { signal: client.signal })
  ;(await silent.next()).res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"error":{"code":503,"message":"Backend Error"}}')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started = Date.now()
  client.abort()
  const error = await t.throwsAsync(opened)
  t.is((error as Error).name, 'AbortError')
  t.true(Date.now() - started < 500, 'the back-off does not outlast the client')
  const late = await Promise.race([silent.next().then(() => 'another request'), new Promise((resolve) => setTimeout(() => { resolve('none') }, 2500))])
  t.is(late, 'none')
})

test.serial('flydrive gcs: a client that leaves while the media request waits → AbortError; the response that comes later is discarded and its connection closed (the process survives)', async (t) => {
  const silent = await startSilentGcs(t)
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })), { idleTimeout: 60_000 }).file('late.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  await statted
  const client = new AbortController()
  const opened = file.open(undefined, { signal: client.signal })
  const media = await silent.next()
  t.is(new URL(media.req.url ?? '', 'http://x').searchParams.get('alt'), 'media')
  client.abort()
  const error = await t.throwsAsync(opened)
  t.is((error as Error).name, 'AbortError')
  // The storage answers after all: before the fix, the SDK's pipeline() into the stream we had
  // destroyed threw ERR_STREAM_UNABLE_TO_PIPE from an event handler (an uncaught exception).
  media.res.writeHead(200, { 'Content-Length': 1 << 20 }).end(Buffer.alloc(1 << 20))
  t.true(await closes(media.closed), 'the storage saw the connection closed')
})

test.serial('flydrive gcs, through serve(): a client that disconnects while GCS has not answered yet gets nothing; the late answer neither crashes the app nor stays open', async (t) => {
  const silent = await startSilentGcs(t)
  const media = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  let left: () => void = () => {}
  const leaves = new Promise<void>((resolve) => { left = resolve })
  const base = await listen(t, downloadApp((ctx) => {
    ctx.res.once('close', left)
    ctx.body = download(media.file('late.bin'))
  }))
  const request = get(`${base}/`)
  request.on('error', () => {})
  // Metadata first, then the media read (GCS has no read-ahead).
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  const read = await silent.next()
  t.is(new URL(read.req.url ?? '', 'http://x').searchParams.get('alt'), 'media')
  request.destroy()
  await leaves
  read.res.writeHead(200, { 'Content-Length': 1 << 20 }).end(Buffer.alloc(1 << 20))
  t.true(await closes(read.closed), 'the storage saw the connection closed')
  // The app still serves.
  const statted = fetch(`${base}/`)
  ;(await silent.next()).res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":{"code":404}}')
  t.is((await statted).status, 404)
})

test.serial('flydrive gcs: a media response that comes after the idle timeout gave up is discarded and its connection closed (the process survives)', async (t) => {
  const silent = await startSilentGcs(t)
  // 1 s, not 100 ms: the metadata is answered in time under a loaded full suite too (it once was not).
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })), { idleTimeout: 1000 }).file('late.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  await statted
  const opened = file.open()
  const media = await silent.next()
  const error = await t.throwsAsync(opened)
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  // Slower than our timeout, faster than the SDK's own (60 s by default): before the fix, the SDK's
  // pipeline() into the stream we had destroyed threw ERR_STREAM_UNABLE_TO_PIPE (uncaught).
  media.res.writeHead(200, { 'Content-Length': 1 << 20 }).end(Buffer.alloc(1 << 20))
  t.true(await closes(media.closed), 'the storage saw the connection closed')
})

test.serial('flydrive gcs: stat() that gets no metadata answer → E_TIMEOUT (504) after idleTimeout, and the request is closed', async (t) => {
  const silent = await startSilentGcs(t)
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })), { idleTimeout: 100 }).file('late.bin')
  const statted = file.stat()
  const metadata = await silent.next()
  const error = await t.throwsAsync(statted)
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  t.is((error as { status?: number }).status, 504)
  t.true(await closes(metadata.closed), 'the storage saw the metadata request closed')
})

test.serial('flydrive gcs: stat() honours the client\'s abort signal while the metadata request waits', async (t) => {
  const silent = await startSilentGcs(t)
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })), { idleTimeout: 60_000 }).file('late.bin')
  const client = new AbortController()
  const statted = file.stat({ signal: client.signal })
  await silent.next()
  client.abort()
  const error = await t.throwsAsync(statted)
  t.is((error as Error).name, 'AbortError')
})

test.serial('flydrive gcs: a ranged read answered 200 from byte 0 (an endpoint that ignores Range) → 502 before any header, never those bytes under the part\'s Content-Range', async (t) => {
  const silent = await startSilentGcs(t)
  const size = 1 << 20
  const object = Buffer.alloc(size)
  for (let i = 0; i < size; i++) object[i] = i >> 16 // each 64 KiB block holds its number
  const media = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })))
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file('late.bin')) }))
  const answered = rawRequest(`${base}/`, { headers: { Range: 'bytes=131072-655359', 'If-None-Match': '"other"' } })
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  const read = await silent.next()
  t.is(read.req.headers.range, 'bytes=131072-655359')
  read.res.writeHead(200, { 'Content-Length': size }).end(object)
  const res = await answered
  t.is(res.status, 502)
  t.is(res.headers['content-range'], undefined)
  t.is(res.body.toString(), 'Bad Gateway')
})

test.serial('flydrive gcs: a ranged read answered 206 with another part → E_UPSTREAM, the stream never returned', async (t) => {
  const silent = await startSilentGcs(t)
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' }))).file('late.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata)
  await statted
  const opened = file.open({ start: 100, end: 199 })
  const read = await silent.next()
  t.is(read.req.headers.range, 'bytes=100-199')
  read.res.writeHead(206, { 'Content-Range': `bytes 0-99/${1 << 20}`, 'Content-Length': 100 }).end(Buffer.alloc(100))
  const error = await t.throwsAsync(opened)
  t.is((error as { code?: string }).code, 'E_UPSTREAM')
  t.regex((error as Error).message, /asked for bytes 100-199, got 206 bytes 0-99\/1048576/)
  t.true(await closes(read.closed))
})

test.serial('flydrive gcs: a media body that streams for longer than idleTimeout + 1 s, never silent for long, arrives whole (the timeout covers only the wait for the response)', async (t) => {
  const silent = await startSilentGcs(t)
  const file = storage(new Disk(new GCSDriver({ storage: silent.client, bucket: 'b', visibility: 'private' })), { idleTimeout: 200 }).file('slow.bin')
  const statted = file.stat()
  ;(await silent.next()).res.writeHead(200, { 'Content-Type': 'application/json' }).end(silentMetadata.replace(String(1 << 20), '40000'))
  await statted
  const opened = file.open()
  const media = await silent.next()
  media.res.writeHead(200, { 'Content-Length': 40_000 })
  // 40 chunks 50 ms apart, read as they come: 2 s in all, longer than the SDK timeout of 1.2 s.
  media.res.write(Buffer.alloc(1000, 0))
  const collected = buffer(await opened)
  for (let i = 1; i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    media.res.write(Buffer.alloc(1000, i))
  }
  media.res.end()
  const bytes = await collected
  t.is(bytes.length, 40_000)
  t.is(bytes[39_999], 39)
})

test.serial('flydrive gcs: metadata whose size is null or empty is an object of unknown size (a chunked 200 with every byte, no ranges), not one of 0 bytes (a 502)', async (t) => {
  const app = await listen(t, downloadApp((ctx) => { ctx.body = download(new StorageFile(disk, 'sizeless.txt')) }))
  for (const size of [null, '', 'twelve']) {
    gcs.put('sizeless.txt', 'twelve bytes', 'text/plain')
    gcs.setFields('sizeless.txt', { size })
    const res = await fetchBytes(app, '/').set('Range', 'bytes=0-3')
    t.is(res.status, 200, JSON.stringify(size))
    t.is(res.body.toString(), 'twelve bytes')
    t.is(res.headers['content-length'], undefined)
    t.is(res.headers['accept-ranges'], 'none')
  }
  gcs.remove('sizeless.txt')
})

// @google-cloud/storage 7 destroys the agent of a read stream that fails or is destroyed, and that
// agent is teeny-request's keep-alive pool, shared by every GCS request of the process: a client
// leaving its download reset the others' (40–44 of 150 in the audit). Media reads are the adapter's
// own requests now: one leaving closes its own connection only.
test.serial('flydrive gcs, through serve(): clients leaving their downloads do not break the downloads of the others', async (t) => {
  const object = Buffer.alloc(1 << 20)
  for (let i = 0; i < object.length; i += 4) object.writeUInt32BE(i, i)
  gcs.put('shared/agent.bin', object)
  const media = storage(disk, { idleTimeout: 5000 })
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file('shared/agent.bin')) }))
  /** One download; the client leaves after `leaveAfter` ms (its request waiting for GCS, or mid-body), or reads it all. */
  const one = async (leaveAfter: number | undefined): Promise<string> => await new Promise((resolve) => {
    const req = get(`${base}/`, { agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve(res.statusCode === 200 && res.complete && Buffer.concat(chunks).equals(object) ? 'ok' : `${res.statusCode ?? 0}, ${Buffer.concat(chunks).length} bytes`) })
      res.on('error', () => { resolve(`${res.statusCode ?? 0}, cut`) })
    })
    req.on('error', (error) => { resolve(leaveAfter === undefined ? error.message : 'left') })
    if (leaveAfter !== undefined) {
      setTimeout(() => {
        req.destroy()
        resolve('left')
      }, leaveAfter)
    }
  })
  const results: string[] = []
  for (let round = 0; round < 15; round++) {
    results.push(...await Promise.all(Array.from({ length: 10 }, async (_, i) => await one(i % 2 === 0 ? [0, 2, 5, 10, 20][round % 5] : undefined))))
  }
  const stayed = results.filter((result) => result !== 'left')
  t.is(stayed.length, 75)
  t.deepEqual(stayed.filter((result) => result !== 'ok'), [])
})

test.serial('flydrive gcs, through serve(): a whole read whose bytes fail the MD5 or CRC32C that GCS sent is cut before its last byte, never delivered complete; good bytes pass both checks', async (t) => {
  const object = Buffer.alloc(300_000)
  for (let i = 0; i < object.length; i++) object[i] = (i * 7) & 0xff
  const media = storage(disk, { idleTimeout: 5000 })
  const base = await listen(t, downloadApp((ctx) => { ctx.body = download(media.file(String(ctx.query.key))) }))
  for (const composite of [false, true]) {
    const key = composite ? 'hash/composite.bin' : 'hash/plain.bin'
    gcs.put(key, object)
    gcs.setMedia(key, { composite })
    const good = await rawRequest(`${base}/?key=${key}`)
    t.is(good.status, 200, key)
    t.true(good.complete, key)
    t.true(good.body.equals(object), key)
    gcs.setMedia(key, { composite, corrupt: true })
    const bad = await rawRequest(`${base}/?key=${key}`)
    t.is(bad.status, 200, key)
    t.is(bad.headers['content-length'], String(object.length), key)
    t.false(bad.complete, `${key}: the client can tell the body is incomplete`)
    t.is(bad.body.length, object.length - 1, `${key}: every byte but the last, held until the check`)
    // A part has no hash to check: the corrupt byte goes out (GCS sends none with a ranged read).
    const part = await rawRequest(`${base}/?key=${key}`, { headers: { Range: 'bytes=100-199' } })
    t.is(part.status, 206, key)
    t.true(part.complete, key)
  }
})

test.serial('flydrive gcs: media reads carry the Storage client\'s authorization, as its metadata requests do (useAuthWithCustomEndpoint)', async (t) => {
  const authClient = { getRequestHeaders: async () => ({ Authorization: 'Bearer test-token' }) } as unknown as NonNullable<StorageOptions['authClient']>
  const client = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', useAuthWithCustomEndpoint: true, authClient, retryOptions: { autoRetry: false, maxRetries: 0 } })
  const file = storage(new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'private' }))).file('contract/object.bin')
  gcs.log.clear()
  const bytes = await buffer(await file.open())
  t.is(bytes.length, 262144)
  const [metadata, read] = [gcs.log.entries.filter((e) => !isMedia(e)), gcs.log.entries.filter(isMedia)]
  t.is(metadata.length, 1)
  t.is(read.length, 1)
  t.is(metadata[0]?.headers.authorization, 'Bearer test-token')
  t.is(read[0]?.headers.authorization, 'Bearer test-token')
  t.regex(read[0]?.url ?? '', /^\/storage\/v1\/b\/test-bucket\/o\/contract%2Fobject\.bin\?alt=media&generation=\d+$/)
  // And none on a custom endpoint without useAuthWithCustomEndpoint (an emulator), as the SDK does.
  gcs.log.clear()
  const plain = await buffer(await storage(disk).file('contract/object.bin').open())
  t.is(plain.length, 262144)
  t.is(gcs.log.entries.filter(isMedia)[0]?.headers.authorization, undefined)
})
