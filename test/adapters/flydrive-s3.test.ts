import test from 'ava'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import { StorageFile, storage } from '../../adapters/flydrive/index.ts'
import { fileContract } from '../helpers/file-contract.ts'
import { s3Client, startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'

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
