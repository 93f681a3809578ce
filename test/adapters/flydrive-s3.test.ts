import test from 'ava'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import { StorageFile, storage } from '../../adapters/flydrive/index.ts'
import { fileContract } from '../helpers/file-contract.ts'
import { s3Client, startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'
import { downloadApp } from '../helpers/koa.ts'
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
  const configured = new Disk(new S3Driver({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, bucket: s3.bucket, visibility: 'private', supportsACL: false }))
  const file = new StorageFile(configured, 'contract/object.bin')
  t.is(file.url, `${s3.endpoint}/${s3.bucket}/contract/object.bin`)
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
