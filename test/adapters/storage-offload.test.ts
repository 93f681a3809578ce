import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import type { DriverContract } from 'flydrive/types'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Server } from 'node:http'
import test from 'ava'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import { S3Driver } from 'flydrive/drivers/s3'
import Koa from 'koa'
import Router from '@koa/router'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { VirtualFile } from '../../source/virtual-file.ts'
import { StorageFile, presignedRedirect, storage } from '../../adapters/flydrive/index.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { listen } from '../helpers/listen.ts'
import { proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import { S3_CREDENTIALS, s3Client, startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'

const contents = 'storage object contents\n'
const key = 'reports/2026 q1 (final).txt'
const encodedKey = 'reports/2026%20q1%20%28final%29.txt'

let s3: S3Server
let app: Server | undefined
let proxy: RunningProxy | undefined
const { available, test: nginxTest } = proxyTest('nginx')

test.serial.before(async () => {
  s3 = await startS3()
  await s3.put(key, contents, 'text/plain')
  if (!available) return
  // Fixed origin: objects whose public URL lies below the bucket (through the logging proxy).
  // Presigned: any URL through the generic remote location, the query (signature) forwarded.
  const rules = [
    nginx({ sourceUrl: `${s3.endpoint}/${s3.bucket}/`, destinationUrl: '/_s3/' }),
    nginx({ remote: true, destinationUrl: '/_remote/' })
  ]
  const fixed = storage(new Disk(new S3Driver({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_CREDENTIALS, maxAttempts: 1, bucket: s3.bucket, visibility: 'public', supportsACL: false })))
  const signing = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const koa = new Koa()
  koa.silent = true
  koa.use(downloads({ rules }))
  koa.use(async (ctx) => {
    const [, kind = '', ...rest] = ctx.path.split('/')
    const objectKey = decodeURIComponent(rest.join('/'))
    if (kind === 'fixed') ctx.body = download(fixed.file(objectKey))
    // a record's type (recordFile's typeField), declared without I/O
    else if (kind === 'typed') ctx.body = download(fixed.file(objectKey, { name: 'Scan from the copier', contentType: 'application/pdf' }))
    else if (kind === 'typed-signed') ctx.body = download(await signing.signedFile(objectKey, { expiresIn: 60, name: 'Scan from the copier', contentType: 'application/pdf' }))
    else if (kind === 'signed') ctx.body = download(await signing.signedFile(objectKey, { expiresIn: 60 }))
    else if (kind === 'tampered') {
      const signed = await signing.signedFile(objectKey, { expiresIn: 60 })
      const url = (signed.url ?? '').replace(/X-Amz-Signature=([0-9a-f])/, (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`)
      ctx.body = download(new StorageFile(signing.disk, objectKey, { url }))
    }
  })
  app = koa.listen(0, '127.0.0.1')
  await new Promise((resolve) => app?.once('listening', resolve))
  proxy = await startProxy('nginx', { rules, appPort: (app.address() as AddressInfo).port })
})
test.after.always(async () => {
  await proxy?.stop()
  app?.closeAllConnections()
  await new Promise((resolve) => { if (app === undefined) resolve(undefined); else app.close(resolve) })
  await s3?.stop()
})

nginxTest('nginx: an S3 object offloaded through the fixed-origin location: nginx fetches it, the app only names it', async (t) => {
  const res = await rawRequest(`${proxy?.url ?? ''}/fixed/${encodedKey}`)
  t.is(res.status, 200, proxy?.logs())
  t.is(res.body.toString(), contents)
  t.is(res.headers['content-disposition'], 'attachment; filename="2026 q1 (final).txt"')
  t.is(res.headers['x-accel-redirect'], undefined)
  // nginx tests run concurrently: look for this test's request among the others.
  t.true(s3.log.entries.some((e) => e.method === 'GET' && e.range === undefined && decodeURIComponent(e.url) === `/${s3.bucket}/${key}`))
  // Streaming would pass the checks above too: the app itself must name the object for nginx
  // (the "( )" of the key, which the storage URL escapes and nginx does not, name the same object).
  const direct = await rawRequest(`http://127.0.0.1:${(app?.address() as AddressInfo).port}/fixed/${encodedKey}`)
  t.is(direct.headers['x-accel-redirect'], '/_s3/reports/2026%20q1%20(final).txt')
  t.is(direct.body.length, 0)
})

nginxTest('nginx: an S3 object offloaded by its URL keeps the contentType its StorageFile declares (a record\'s type), as when streamed', async (t) => {
  for (const kind of ['typed', 'typed-signed']) {
    const res = await rawRequest(`${proxy?.url ?? ''}/${kind}/${encodedKey}`)
    t.is(res.status, 200, kind)
    t.is(res.body.toString(), contents, kind)
    t.is(res.headers['content-type'], 'application/pdf', kind)
    t.is(res.headers['content-disposition'], 'attachment; filename="Scan from the copier"', kind)
    const direct = await rawRequest(`http://127.0.0.1:${(app?.address() as AddressInfo).port}/${kind}/${encodedKey}`)
    t.regex(String(direct.headers['x-accel-redirect']), kind === 'typed' ? /^\/_s3\/reports\/2026%20q1%20\(final\)\.txt$/ : /^\/_remote\/http\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=[0-9a-f]{64}/, kind)
    t.is(direct.headers['content-type'], 'application/pdf', kind)
    t.is(direct.body.length, 0, kind)
  }
})

nginxTest('nginx: Range on an offloaded S3 object reaches S3 as a ranged request', async (t) => {
  const res = await rawRequest(`${proxy?.url ?? ''}/fixed/${encodedKey}`, { headers: { Range: 'bytes=0-6' } })
  t.is(res.status, 206)
  t.is(res.body.toString(), 'storage')
  t.true(s3.log.entries.some((e) => e.method === 'GET' && e.range === 'bytes=0-6' && decodeURIComponent(e.url) === `/${s3.bucket}/${key}`))
})

nginxTest('nginx: a presigned S3 URL through /_remote/ reaches s3rver intact (it checks the signature)', async (t) => {
  const res = await rawRequest(`${proxy?.url ?? ''}/signed/${encodedKey}`)
  t.is(res.status, 200, proxy?.logs())
  t.is(res.body.toString(), contents)
  t.is(res.headers['content-disposition'], 'attachment; filename="2026 q1 (final).txt"')
})

nginxTest('nginx: a tampered presigned URL through /_remote/ is refused by s3rver, no bytes sent: nginx\'s 502 page, not the storage\'s error', async (t) => {
  const res = await rawRequest(`${proxy?.url ?? ''}/tampered/${encodedKey}`)
  t.is(res.status, 502)
  // nginx's page (with the charset of the rule's X-Accel-Charset, as the download's text type has one)
  t.is(res.headers['content-type'], 'text/html; charset=utf-8')
  t.regex(res.body.toString(), /<title>502 Bad Gateway<\/title>/)
  t.false(res.body.toString().includes(contents))
  t.false(res.body.toString().includes('Signature'), 'the storage\'s XML stays behind')
})

nginxTest('nginx: an S3 object stored gzip-coded, offloaded by its URL: a client refusing gzip gets it from the app, decoded (S3 would send the gzip bytes); one accepting gzip gets it offloaded, as stored, with no metadata call; an uncoded object stays offloaded after the app\'s metadata check', async (t) => {
  const csv = Buffer.from('id,total\n' + Array.from({ length: 300 }, (_, i) => `${i},${i * 3}`).join('\n'))
  const gz = gzipSync(csv)
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'coded/offloaded.csv', Body: gz, ContentType: 'text/csv', ContentEncoding: 'gzip' }))
  await s3.put('coded/plain.csv', csv, 'text/csv')
  const appUrl = `http://127.0.0.1:${(app?.address() as AddressInfo).port}`
  for (const kind of ['fixed', 'signed']) {
    // wget's field; an explicit refusal with q=0
    for (const refusal of ['identity', 'gzip;q=0, deflate, br']) {
      const res = await rawRequest(`${proxy?.url ?? ''}/${kind}/coded/offloaded.csv`, { headers: { 'Accept-Encoding': refusal } })
      t.is(res.status, 200, `${kind} ${refusal}`)
      t.is(res.headers['content-encoding'], undefined, `${kind} ${refusal}`)
      t.is(res.headers.vary, 'Accept-Encoding', `${kind} ${refusal}`)
      t.deepEqual(res.body, csv, `${kind} ${refusal}`)
      const direct = await rawRequest(`${appUrl}/${kind}/coded/offloaded.csv`, { headers: { 'Accept-Encoding': refusal } })
      t.is(direct.headers['x-accel-redirect'], undefined, `${kind} ${refusal}`)
      t.deepEqual(direct.body, csv, `${kind} ${refusal}`)
    }
    // (Node's fetch sends `gzip, deflate`: gzip decides, with no metadata call)
    for (const headers of [{ 'Accept-Encoding': 'gzip, deflate, br' }, { 'Accept-Encoding': 'gzip, deflate' }, {}]) {
      const res = await rawRequest(`${proxy?.url ?? ''}/${kind}/coded/offloaded.csv`, { headers })
      t.is(res.status, 200, kind)
      t.is(res.headers['content-encoding'], 'gzip', kind)
      t.deepEqual(res.body, gz, kind)
      const direct = await rawRequest(`${appUrl}/${kind}/coded/offloaded.csv`, { headers })
      t.regex(String(direct.headers['x-accel-redirect']), kind === 'fixed' ? /^\/_s3\/coded\/offloaded\.csv$/ : /^\/_remote\/http\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/, kind)
      t.is(direct.body.length, 0, kind)
    }
    const heads = (name = 'plain.csv'): number => s3.log.entries.filter((e) => e.method === 'HEAD' && decodeURIComponent(e.url).endsWith(`/coded/${name}`)).length
    const before = heads()
    const plain = await rawRequest(`${appUrl}/${kind}/coded/plain.csv`, { headers: { 'Accept-Encoding': 'identity' } })
    t.regex(String(plain.headers['x-accel-redirect']), kind === 'fixed' ? /^\/_s3\/coded\/plain\.csv$/ : /^\/_remote\//, kind)
    // (the signing disk talks to s3rver directly, past the log)
    if (kind === 'fixed') t.is(heads(), before + 1, 'one metadata request decided it')
    const accepting = await rawRequest(`${appUrl}/${kind}/coded/plain.csv`, { headers: { 'Accept-Encoding': 'gzip, deflate' } })
    t.truthy(accepting.headers['x-accel-redirect'], kind)
    if (kind === 'fixed') t.is(heads(), before + 1, 'none for a client that takes gzip')
    // A range, with the identity that browsers and fetch() send beside every Range: offloaded with
    // no metadata call (documented: a range of the stored bytes, as S3 sends it).
    const headsBefore = heads('offloaded.csv')
    const ranged = await rawRequest(`${appUrl}/${kind}/coded/offloaded.csv`, { headers: { 'Accept-Encoding': 'identity', Range: 'bytes=0-9' } })
    t.truthy(ranged.headers['x-accel-redirect'], kind)
    if (kind === 'fixed') t.is(heads('offloaded.csv'), headsBefore, 'none for a range')
    const viaProxy = await rawRequest(`${proxy?.url ?? ''}/${kind}/coded/plain.csv`, { headers: { 'Accept-Encoding': 'identity' } })
    t.deepEqual(viaProxy.body, csv, kind)
  }
})

test.serial('presignedRedirect: a 302 to a presigned URL carrying the download\'s disposition; the storage serves it, with Range', async (t) => {
  const media = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const koa = new Koa()
  koa.silent = true
  // A CDN policy the app sets for its pages: a CDN reads it instead of Cache-Control (RFC 9213).
  koa.use(async (ctx, next) => { ctx.set('CDN-Cache-Control', 'public, max-age=600'); ctx.set('Surrogate-Control', 'max-age=600'); await next() })
  koa.use(downloads())
  koa.use(presignedRedirect({ expiresIn: 120 }))
  // An ASCII name: s3rver canonicalises the query with encodeURIComponent, which leaves `'()*!` (as in
  // `filename*=UTF-8''…`) unencoded, so it rejects AWS-correct signatures of such dispositions.
  koa.use((ctx) => { ctx.body = download(media.file(decodeURIComponent(ctx.path.slice(1))), { filename: 'Q1 report, final.txt' }) })
  const base = await listen(t, koa)
  const res = await rawRequest(`${base}/${encodedKey}`)
  t.is(res.status, 302)
  t.is(res.headers['cache-control'], 'private, no-store')
  t.is(res.headers['cdn-cache-control'], undefined, 'no CDN may keep the signed URL')
  t.is(res.headers['surrogate-control'], undefined)
  const location = res.headers.location ?? ''
  t.regex(location, /X-Amz-Signature=[0-9a-f]{64}/)
  t.regex(location, /X-Amz-Expires=120/)
  const object = await fetch(location)
  t.is(object.status, 200)
  t.is(await object.text(), contents)
  t.is(object.headers.get('content-disposition'), 'attachment; filename="Q1 report, final.txt"')
  t.is(object.headers.get('content-type'), 'text/plain')
  const ranged = await fetch(location, { headers: { Range: 'bytes=8-13' } })
  t.is(ranged.status, 206)
  t.is(await ranged.text(), 'object')

  const missing = await rawRequest(`${base}/reports/missing.txt`)
  t.is(missing.status, 404)
  t.is(missing.headers.location, undefined)

  // A HEAD is not redirected: the URL is signed for GET, and the storage refuses it for a HEAD
  // (403). serve() answers it from the object's metadata instead.
  const signedForGet = await fetch(location, { method: 'HEAD' })
  t.is(signedForGet.status, 403)
  const head = await rawRequest(`${base}/${encodedKey}`, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers.location, undefined)
  t.is(head.headers['content-length'], String(Buffer.byteLength(contents)))
  t.is(head.headers['content-disposition'], 'attachment; filename="Q1 report, final.txt"')
  t.is(head.body.length, 0)
})

test.serial('presignedRedirect: an object shown inline that may run script (HTML, an unknown type) is streamed with its sandbox, not redirected to the storage, which would send it without; inline text is still redirected', async (t) => {
  const media = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const koa = new Koa()
  koa.silent = true
  koa.use(downloads())
  koa.use(presignedRedirect())
  koa.use((ctx) => { ctx.body = download(media.file(key), { attachment: false, contentType: String(ctx.query.type) }) })
  const base = await listen(t, koa)
  for (const type of ['text/html', 'unknown/unknown', 'image/svg+xml']) {
    const res = await rawRequest(`${base}/?type=${encodeURIComponent(type)}`)
    t.is(res.status, 200, type)
    t.is(res.headers.location, undefined, type)
    t.is(res.headers['content-security-policy'], 'sandbox', type)
    t.is(res.body.toString(), contents, type)
  }
  const text = await rawRequest(`${base}/?type=text%2Fplain`)
  t.is(text.status, 302)
  t.regex(text.headers.location ?? '', /X-Amz-Signature=/)
})

test.serial('presignedRedirect: an object stored gzip-coded is redirected for a client that accepts gzip, and streamed decoded for one that refuses it (the storage would send the gzip bytes)', async (t) => {
  const csv = Buffer.from('id,total\n' + Array.from({ length: 300 }, (_, i) => `${i},${i * 7}`).join('\n'))
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'coded/report.csv', Body: gzipSync(csv), ContentType: 'text/csv', ContentEncoding: 'gzip' }))
  const media = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const koa = new Koa()
  koa.silent = true
  koa.use(downloads())
  koa.use(presignedRedirect())
  koa.use((ctx) => { ctx.body = download(media.file('coded/report.csv')) })
  const base = await listen(t, koa)
  const accepting = await rawRequest(`${base}/`, { headers: { 'Accept-Encoding': 'gzip' } })
  t.is(accepting.status, 302)
  const refusing = await rawRequest(`${base}/`, { headers: { 'Accept-Encoding': 'identity' } })
  t.is(refusing.status, 200)
  t.is(refusing.headers.location, undefined)
  t.is(refusing.headers['content-encoding'], undefined)
  t.deepEqual(refusing.body, csv)
})

test.serial('presignedRedirect: mounted before downloads() it cannot redirect (serve() answered first): the object is streamed and one process warning says how to mount it; mounted after, no warning', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { if ((warning as { code?: string }).code === 'KD_PRESIGNED_REDIRECT_ORDER') warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const media = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const misordered = new Koa()
  misordered.silent = true
  misordered.use(presignedRedirect())
  misordered.use(downloads())
  misordered.use((ctx) => { ctx.body = download(media.file(key)) })
  const base = await listen(t, misordered)
  for (let i = 0; i < 2; i++) {
    const res = await rawRequest(`${base}/`)
    t.is(res.status, 200)
    t.is(res.body.toString(), contents)
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 1)
  t.is(warnings[0]?.name, 'KoaDownloadsWarning')
  t.regex(warnings[0]?.message ?? '', /mount it after them, app\.use\(downloads\(\)\); app\.use\(presignedRedirect\(\)\)/)
  const ordered = new Koa()
  ordered.silent = true
  ordered.use(downloads())
  ordered.use(presignedRedirect())
  ordered.use((ctx) => { ctx.body = download(media.file(key)) })
  const res = await rawRequest(`${await listen(t, ordered)}/`)
  t.is(res.status, 302)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 1)
})

test.serial('presignedRedirect: mounted router-wide, with downloads() scoped to a prefix (router.use(\'/files\', downloads())): downloads are redirected, and a request with no download (a health check outside the prefix) emits no warning', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { if ((warning as { code?: string }).code === 'KD_PRESIGNED_REDIRECT_ORDER') warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const media = storage(new Disk(new S3Driver({ client: s3Client(s3.directEndpoint), bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const router = new Router()
  router.use('/files', downloads())
  router.use(presignedRedirect())
  router.get('/files/report', (ctx) => { ctx.body = download(media.file(key)) })
  router.get('/health', (ctx) => { ctx.body = 'ok' })
  const koa = new Koa()
  koa.silent = true
  koa.use(router.routes())
  const base = await listen(t, koa)
  t.is((await rawRequest(`${base}/health`)).status, 200)
  t.is((await rawRequest(`${base}/files/report`)).status, 302)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 0)
})

test.serial('presignedRedirect: files on a local disk and other wrappers pass through to serve()', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kd-redirect-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  await writeFile(join(root, 'local.txt'), 'on a local disk')
  const local = storage(new Disk(new FSDriver({ location: root, visibility: 'private' })))
  const koa = new Koa()
  koa.silent = true
  koa.use(downloads())
  koa.use(presignedRedirect({ status: 307 }))
  koa.use((ctx) => {
    ctx.body = ctx.path === '/local' ? download(local.file('local.txt')) : download(new VirtualFile('in memory', { name: 'm.txt' }))
  })
  const base = await listen(t, koa)
  const memory = await rawRequest(`${base}/memory`)
  t.is(memory.status, 200)
  t.is(memory.body.toString(), 'in memory')
  const disk = await rawRequest(`${base}/local`)
  t.is(disk.status, 200)
  t.is(disk.body.toString(), 'on a local disk')
})

test.serial('presignedRedirect: an object of a driver that cannot sign URLs, or does not answer within the idleTimeout, is streamed; a missing one is the app\'s 404', async (t) => {
  const bytes = Buffer.from('in a custom store\n')
  let signings = 0
  // A custom driver (a database-backed store, say): metadata and a stream, no signed URLs.
  const driver = {
    getMetaData: async (key: string) => {
      if (key !== 'present.txt') throw Object.assign(new Error(`${key} not found`), { code: 'ENOENT' })
      return { contentLength: bytes.length, contentType: 'text/plain', etag: '"v1"', lastModified: new Date('2026-01-01T00:00:00Z') }
    },
    getStream: async () => Readable.from([bytes]),
    getSignedUrl: async () => { signings++; throw new Error('Cannot generate signed URLs for this driver') }
  } as unknown as DriverContract
  const koa = new Koa()
  koa.silent = true
  koa.use(downloads())
  koa.use(presignedRedirect())
  koa.use((ctx) => { ctx.body = download(new StorageFile(driver, ctx.path.slice(1))) })
  const base = await listen(t, koa)
  const present = await rawRequest(`${base}/present.txt`)
  t.is(present.status, 200)
  t.is(present.headers.location, undefined)
  t.is(present.headers.etag, '"v1"')
  t.deepEqual(present.body, bytes)
  t.is(signings, 1)
  const missing = await rawRequest(`${base}/missing.txt`)
  t.is(missing.status, 404)
  t.is(signings, 1, 'a missing object is not signed')
  // A signer that never answers (GCS signing through an unreachable IAM API): the object is
  // streamed once the idleTimeout has passed, instead of the client waiting without end.
  const hanging = { ...driver, getSignedUrl: async () => { signings++; return await new Promise<string>(() => {}) } } as unknown as DriverContract
  const slow = new Koa()
  slow.silent = true
  slow.use(downloads())
  slow.use(presignedRedirect())
  slow.use((ctx) => { ctx.body = download(new StorageFile(hanging, 'present.txt', { idleTimeout: 300 })) })
  const started = Date.now()
  const waited = await rawRequest(`${await listen(t, slow)}/present.txt`)
  t.is(waited.status, 200)
  t.is(waited.headers.location, undefined)
  t.deepEqual(waited.body, bytes)
  t.is(signings, 2)
  t.true(Date.now() - started >= 300)
  t.throws(() => presignedRedirect({ status: 301 as 302 }), { instanceOf: TypeError, message: /status must be 302 or 307/ })
  t.throws(() => presignedRedirect({ expiresIn: 0 }), { instanceOf: TypeError, message: /expiresIn/ })
})
