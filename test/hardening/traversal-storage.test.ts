import test from 'ava'
import type { Readable } from 'node:stream'
import { Storage } from '@google-cloud/storage'
import { Disk } from 'flydrive'
import { GCSDriver } from 'flydrive/drivers/gcs'
import { S3Driver } from 'flydrive/drivers/s3'
import { StorageFile } from '../../adapters/flydrive/storage-file.ts'
import { startGcsServer } from '../helpers/gcs-server.ts'
import type { GcsServer } from '../helpers/gcs-server.ts'
import { startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'
import { fill, label, loadCorpus, variants } from './corpus.ts'

/**
 * Object stores have no directories to escape, but an application that prefixes user input
 * (`files/${userKey}`) relies on the key reaching the store verbatim: a store or client that
 * normalised `files/../private/x` would hand out `private/x`. Every corpus payload goes behind the
 * `public/` prefix; only `public/hello.txt` may ever be read. S3 is a real S3-compatible server
 * (s3rver, SigV4 checked); GCS is the JSON-API stub (it stores names verbatim, so this checks the
 * client side: our key check and the SDK's encoding).
 */
let s3: S3Server
let gcs: GcsServer
const disks = new Map<string, Disk>()
const marker = `DECOY-S3-${Date.now()}`
const hello = Buffer.from('hello from public\n')

test.before(async () => {
  s3 = await startS3('traversal')
  gcs = await startGcsServer('traversal')
  // GCS stores these names verbatim; on S3 (see the last test) dot segments are resolved, so
  // `public/../secret.txt` lands on `secret.txt`: the decoys go first and the real file last.
  const decoys = ['secret.txt', 'private/secret.txt', 'public-evil/secret.txt', 'etc/passwd', 'public/../secret.txt', 'public/./hello.txt']
  for (const key of decoys) {
    await s3.put(key, `${marker} ${key}`)
    gcs.put(key, `${marker} ${key}`)
  }
  await s3.put('public/hello.txt', hello)
  gcs.put('public/hello.txt', hello)
  disks.set('S3', new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  const client = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', retryOptions: { autoRetry: false, maxRetries: 0 } })
  disks.set('GCS', new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'private' })))
})
test.after.always(async () => {
  await s3?.stop()
  await gcs?.stop()
})

async function readAll (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks)
}

for (const store of ['S3', 'GCS']) {
test(`traversal: StorageFile keys on ${store} behind a prefix never read another object, for every payload as sent, decoded once and twice`, async t => {
  const disk = disks.get(store) as Disk
  t.timeout(180_000)
  const problems: string[] = []
  const statuses = new Map<string, number>()
  // The control: the one key that may be read.
  const keys = new Set<string>(['public/hello.txt'])
  for (const { payload } of loadCorpus()) {
    for (const value of variants(fill(payload, { root: '/bucket/public', secret: '/bucket/secret.txt' }))) keys.add(`public/${value}`)
  }
  for (const key of keys) {
    const file = new StorageFile(disk, key)
    let outcome: string
    try {
      await file.stat()
      const bytes = await readAll(await file.open())
      if (bytes.includes(marker)) problems.push(`${label(key)}: THE DECOY WAS READ`)
      else if (!bytes.equals(hello)) problems.push(`${label(key)}: read bytes of an unknown object`)
      outcome = 'served'
    } catch (error) {
      outcome = String((error as { status?: number }).status ?? (error as Error).name)
      // s3rver keeps objects as files, so a key segment over 255 bytes is a storage failure there (502),
      // not on S3 itself; any other refusal must be the 404 of a key that cannot exist.
      const s3rverLimit = store === 'S3' && outcome === '502' && key.split('/').some((segment) => Buffer.byteLength(segment) > 255)
      if (outcome !== '404' && !s3rverLimit) problems.push(`${label(key)}: ${outcome} ${(error as Error).message.slice(0, 120)}`)
    }
    statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1)
  }
  t.log(`${keys.size} keys: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ')}`)
  t.deepEqual(problems.slice(0, 30), [], `${problems.length} problems`)
  t.true((statuses.get('served') ?? 0) > 0, 'the legitimate key is served (the probe can tell)')
})
}

test('traversal: why keys are checked — through the S3 SDK and server, the key "public/../secret.txt" reads "secret.txt"; StorageFile refuses it (404) before the driver is called', async t => {
  const disk = disks.get('S3') as Disk
  // flydrive's raw driver (what the adapter calls, bypassing flydrive's own normaliser) shows the hazard.
  const raw = await disk.driver.getBytes('public/../secret.txt')
  t.true(Buffer.from(raw).includes(marker), 'the storage stack resolves the dot segments')
  const file = new StorageFile(disk, 'public/../secret.txt')
  const error = await t.throwsAsync(file.stat())
  t.is((error as { status?: number }).status, 404)
})
