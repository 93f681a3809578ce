import test from 'ava'
import type { ImplementationFn } from 'ava'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { Storage as GcsClient } from '@google-cloud/storage'
import fc from 'fast-check'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import { GCSDriver } from 'flydrive/drivers/gcs'
import { S3Driver } from 'flydrive/drivers/s3'
import type { DriverContract } from 'flydrive/types'
import Koa from 'koa'
import { recordFile, storage } from '../../adapters/flydrive/index.ts'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { DownloadFile } from '../../source/types.ts'
import { startGcsServer } from '../helpers/gcs-server.ts'
import type { GcsServer } from '../helpers/gcs-server.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { makeWorldReadable, nginxConfig, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import { startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'
import { examples, request } from './fuzz-requests.ts'
import { rawRequest } from './raw-http.ts'
import type { RawResponse } from './raw-http.ts'
import { checkConsistency, checkHeadMatchesGet, checkResponse } from './rfc9110-check.ts'
import type { Sent, Served } from './rfc9110-check.ts'
import { fuzzScale } from '../helpers/fuzz.ts'

// fuzz-headers.test.ts for every other kind of source: StorageFile over flydrive's fs, S3 (s3rver)
// and GCS (the JSON-API stub) drivers, recordFile() through S3 and through a driver without ranged
// reads, and HttpFile in front of a real nginx (strong ETag; `etag off`: Last-Modified only;
// `max_ranges 0`: no ranges) and of the Node origin (the same three, a weak ETag, no HEAD, and a
// chunked body without validators). Each source implements stat/open/read its own way, through
// its own requests: every response is checked by the independent rfc9110-check.ts, against the
// plain 200 of the same file, and — for a HEAD or a GET without Range — against its HEAD/GET twin.

/** Per source and header set: 33 properties of 40 runs (plus their examples) keep the file to seconds. */
const RUNS = fuzzScale(40)
const mtime = Date.UTC(2024, 2, 10, 12, 30, 15)
const cacheControl = 'private, max-age=60'
const nginxTests = proxyTest('nginx')

interface Source {
  make: () => DownloadFile
  served: Served
  /** Headers of the plain GET (no request header): what every 200, 206 and 304 must agree with. */
  reference: Record<string, string>
}

let dir = ''
let server: Server | undefined
let port = 0
let s3: S3Server | undefined
let gcs: GcsServer | undefined
let origin: Origin | undefined
let nginx: RunningProxy | undefined
const sources = new Map<string, Source>()

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-fuzz-sources-'))
  const data = randomBytes(1000)
  const empty = Buffer.alloc(0)

  // flydrive fs
  await mkdir(join(dir, 'fs'))
  for (const [name, bytes] of [['data.bin', data], ['empty.bin', empty]] as const) {
    await writeFile(join(dir, 'fs', name), bytes)
    // at rest: a file of the current second has a weak ETag (etag.ts statEtag)
    await utimes(join(dir, 'fs', name), mtime / 1000, mtime / 1000)
  }
  const fsMedia = storage(new Disk(new FSDriver({ location: join(dir, 'fs'), visibility: 'private' })))

  // flydrive S3 (s3rver) and GCS (stub)
  s3 = await startS3()
  await s3.put('data.bin', data)
  await s3.put('empty.bin', empty)
  const s3Media = storage(new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  gcs = await startGcsServer()
  gcs.put('data.bin', data)
  gcs.put('empty.bin', empty)
  const gcsClient = new GcsClient({ apiEndpoint: gcs.endpoint, projectId: 'test', retryOptions: { autoRetry: false, maxRetries: 0 } })
  const gcsMedia = storage(new Disk(new GCSDriver({ storage: gcsClient, bucket: gcs.bucket, visibility: 'private' })))

  // A custom driver (a database-backed store, say) with no ranged read and no validators: the
  // record's mtime field gives Last-Modified.
  const plainDriver = {
    getMetaData: async () => ({ contentLength: data.length, contentType: 'application/octet-stream' }),
    getStream: async () => Readable.from([data.subarray(0, 300), data.subarray(300)])
  } as unknown as DriverContract
  const row = { key: 'data.bin', name: 'Q1 résumé (final).bin', type: 'application/x-report', mtime: new Date(mtime).toISOString() }

  // The Node origin: the default object, and the variants HttpFile handles its own way.
  origin = await startOrigin()
  const lastModified = new Date(mtime)
  origin.put('/data.bin', { bytes: data, lastModified })
  origin.put('/empty.bin', { bytes: empty, lastModified })
  origin.put('/noranges.bin', { bytes: data, lastModified, ranges: false })
  origin.put('/lm.bin', { bytes: data, lastModified, etag: undefined })
  origin.put('/weak.bin', { bytes: data, lastModified, etag: 'W/"weak-tag"' })
  origin.put('/nohead.bin', { bytes: data, lastModified, head: false })
  // A generated body (an export, say): chunked, without validators, and no ranges.
  origin.put('/bare.bin', { bytes: data, etag: undefined, lastModified: undefined, chunked: true, ranges: false })

  const entries: Array<[string, () => DownloadFile, Buffer]> = [
    ['fs', () => fsMedia.file('data.bin'), data],
    ['fs-empty', () => fsMedia.file('empty.bin'), empty],
    ['s3', () => s3Media.file('data.bin'), data],
    ['s3-empty', () => s3Media.file('empty.bin'), empty],
    ['gcs', () => gcsMedia.file('data.bin'), data],
    ['gcs-empty', () => gcsMedia.file('empty.bin'), empty],
    ['record-s3', () => recordFile(row, { storage: s3Media, keyField: 'key', nameField: 'name', typeField: 'type' }), data],
    ['record-driver', () => recordFile(row, { disk: plainDriver, keyField: 'key', nameField: 'name', mtimeField: 'mtime' }), data],
    ['origin', () => new HttpFile(`${originUrl()}/data.bin`), data],
    ['origin-empty', () => new HttpFile(`${originUrl()}/empty.bin`), empty],
    ['origin-noranges', () => new HttpFile(`${originUrl()}/noranges.bin`), data],
    ['origin-lm', () => new HttpFile(`${originUrl()}/lm.bin`), data],
    ['origin-weak', () => new HttpFile(`${originUrl()}/weak.bin`), data],
    ['origin-nohead', () => new HttpFile(`${originUrl()}/nohead.bin`), data],
    ['origin-bare', () => new HttpFile(`${originUrl()}/bare.bin`), data]
  ]

  if (nginxTests.available) {
    // A static nginx origin: its strong "mtime-size" ETag; `etag off` leaves Last-Modified alone;
    // `max_ranges 0` ignores Range and sends no Accept-Ranges.
    const www = join(dir, 'www')
    for (const location of ['strong', 'lm', 'noranges']) {
      await mkdir(join(www, location), { recursive: true })
      for (const [name, bytes] of [['data.bin', data], ['empty.bin', empty]] as const) {
        await writeFile(join(www, location, name), bytes)
        await utimes(join(www, location, name), mtime / 1000, mtime / 1000)
      }
    }
    makeWorldReadable(dir)
    nginx = await startProxy('nginx', {
      rules: [],
      appPort: 0,
      configFor: ({ port: nginxPort, prefix }) => nginxConfig(prefix, [
        '  default_type application/octet-stream;',
        '  access_log off;',
        '  server {',
        `    listen 127.0.0.1:${nginxPort};`,
        `    root "${www}";`,
        '    location /strong/ { }',
        '    location /lm/ { etag off; }',
        '    location /noranges/ { max_ranges 0; }',
        '  }'
      ])
    })
    const nginxUrl = nginx.url
    entries.push(
      ['nginx', () => new HttpFile(`${nginxUrl}/strong/data.bin`), data],
      ['nginx-empty', () => new HttpFile(`${nginxUrl}/strong/empty.bin`), empty],
      ['nginx-lm', () => new HttpFile(`${nginxUrl}/lm/data.bin`), data],
      ['nginx-noranges', () => new HttpFile(`${nginxUrl}/noranges/data.bin`), data]
    )
  }

  const app = new Koa()
  app.silent = true
  app.use(downloads())
  app.use((ctx) => {
    const source = sources.get(ctx.path.slice(1))
    if (source !== undefined) ctx.body = download(source.make(), { cacheControl })
  })
  server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port

  for (const [key, make, bytes] of entries) {
    const stat = await make().stat()
    // What the source itself says: a source that cannot read a part (an origin ignoring Range, a
    // driver without ranged reads) or does not know its size (a chunked origin) answers every Range
    // with the whole file, and announces `Accept-Ranges: none` (RFC 9110 §14.2 lets a server ignore
    // Range; docs/adapters.md): the checker expects exactly that of it, and no 206 or 416.
    const served: Served = {
      bytes,
      etag: stat.etag,
      lastModified: stat.lastModified === undefined ? undefined : Math.floor(stat.lastModified.getTime() / 1000) * 1000,
      ranges: stat.ranges === false ? false : undefined,
      sized: stat.size === undefined ? false : undefined
    }
    const source: Source = { make, served, reference: {} }
    sources.set(key, source)
    source.reference = (await rawRequest(port, 'GET', `/${key}`)).headers
  }
})

test.after.always(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => { if (server === undefined) resolve(); else server.close(() => { resolve() }) })
  await nginx?.stop()
  await origin?.stop()
  await gcs?.stop()
  await s3?.stop()
  if (dir !== '') await rm(dir, { recursive: true, force: true })
})

function originUrl (): string {
  if (origin === undefined) throw new Error('the origin did not start')
  return origin.url
}

const isMultipart = (res: RawResponse): boolean => res.status === 206 && res.headers['content-type']?.startsWith('multipart/') === true
const without = (headers: Record<string, string>, ...names: string[]): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !names.includes(name)))

/**
 * Every response must be valid on its own, agree with the plain 200, and — for a HEAD, or a GET a
 * HEAD could stand for (no Range) — match its twin: HEAD with the same headers is GET without
 * Range and If-Range.
 */
async function check (key: string, source: Source, sent: Sent): Promise<RawResponse> {
  const res = await rawRequest(port, sent.method, `/${key}`, sent.headers)
  const problems = [...checkResponse(sent, res, source.served), ...checkConsistency(res, source.reference)]
  if (sent.method === 'HEAD' || sent.headers.range === undefined) {
    const twin: Sent = sent.method === 'HEAD'
      ? { method: 'GET', headers: without(sent.headers, 'range', 'if-range') }
      : { method: 'HEAD', headers: sent.headers }
    const other = await rawRequest(port, twin.method, `/${key}`, twin.headers)
    const [head, get] = sent.method === 'HEAD' ? [res, other] : [other, res]
    problems.push(...checkHeadMatchesGet(head, get).map((problem) => `HEAD/GET twin: ${problem}`))
  }
  if (problems.length > 0) throw new Error(`${problems.join('; ')}\nrequest: ${JSON.stringify(sent)}\nresponse head: ${res.head}`)
  return res
}

// ---- properties -------------------------------------------------------------------------------

const nginxKeys = new Set(['nginx', 'nginx-empty', 'nginx-lm', 'nginx-noranges'])
const keys = ['fs', 's3', 'gcs', 'record-s3', 'record-driver', 'origin', 'origin-noranges', 'origin-lm', 'origin-weak', 'origin-nohead', 'origin-bare', 'nginx', 'nginx-lm', 'nginx-noranges']
const emptyKeys = ['fs-empty', 's3-empty', 'gcs-empty', 'origin-empty', 'nginx-empty']

/**
 * What each source must say of itself. The checker's expectations (ranges, length, validators) come
 * from the source's own stat(), so without this a source that lost its ranged reads or its ETag
 * would be checked against that loss, and pass: every Range answered 200 is what a source without
 * ranges must do.
 */
interface Capabilities { ranges: boolean, sized: boolean, etag: 'strong' | 'weak' | 'none', lastModified: boolean }
const full: Capabilities = { ranges: true, sized: true, etag: 'strong', lastModified: true }
const expectedCapabilities: Record<string, Capabilities> = {
  fs: full,
  'fs-empty': full,
  s3: full,
  's3-empty': full,
  gcs: full,
  'gcs-empty': full,
  'record-s3': full,
  // a driver with no ranged read and no validators: the record's mtime field
  'record-driver': { ranges: false, sized: true, etag: 'none', lastModified: true },
  origin: full,
  'origin-empty': full,
  'origin-noranges': { ...full, ranges: false },
  'origin-lm': { ...full, etag: 'none' },
  'origin-weak': { ...full, etag: 'weak' },
  'origin-nohead': full,
  'origin-bare': { ranges: false, sized: false, etag: 'none', lastModified: false },
  nginx: full,
  'nginx-empty': full,
  'nginx-lm': { ...full, etag: 'none' },
  'nginx-noranges': { ...full, ranges: false }
}
const capabilitiesOf = (served: Served): Capabilities => ({
  ranges: served.ranges !== false,
  sized: served.sized !== false,
  etag: served.etag === undefined ? 'none' : served.etag.startsWith('W/') ? 'weak' : 'strong',
  lastModified: served.lastModified !== undefined
})

const cases: Array<[string, boolean]> = [...keys.flatMap((key): Array<[string, boolean]> => [[key, false], [key, true]]), ...emptyKeys.map((key): [string, boolean] => [key, true])]
for (const [key, conditionals] of cases) {
  const headers = conditionals ? 'Range, If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since' : 'Range and If-Range'
  const define: (title: string, impl: ImplementationFn<[]>) => void = nginxKeys.has(key) ? nginxTests.test : (title, impl) => { test(title, impl) }
  define(`fuzz sources: ${headers} on ${key} → never a 5xx, always a valid RFC 9110 response, consistent with its 200 and its HEAD/GET twin`, async t => {
    const source = sources.get(key)
    if (source === undefined) throw new Error(`${key}: not set up (see test.before)`)
    t.deepEqual(capabilitiesOf(source.served), expectedCapabilities[key], 'what the source says of itself (its stat)')
    const statuses = new Map<string, number>()
    await fc.assert(fc.asyncProperty(request(source.served, conditionals), async (sent) => {
      const res = await check(key, source, sent)
      const outcome = isMultipart(res) ? '206 multipart' : String(res.status)
      statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1)
    }), { numRuns: RUNS, examples: examples(source.served), includeErrorInReport: true })
    t.log(`statuses: ${[...statuses].sort().map(([s, n]) => `${s}×${n}`).join(' ')}`)
    const reached = (...outcomes: string[]): boolean => outcomes.every((o) => statuses.has(o))
    const rangeable = source.served.ranges !== false && source.served.sized !== false && source.served.bytes.length > 0
    if (conditionals) t.true(reached('200', '304', '412'), 'the generators reach every precondition outcome')
    else if (rangeable) t.true(reached('200', '206', '206 multipart', '416'), 'the generators reach every range outcome')
    else t.deepEqual([...statuses.keys()].filter((s) => s !== '304' && s !== '412'), ['200'], 'a source without ranges answers Range with the whole file')
  })
}

test('fuzz sources: the checks themselves reject a 206 under a weak If-Range, a 304 without the 200\'s Cache-Control, a HEAD unlike its GET, and ranges or a length from a source without them', t => {
  const bytes = Buffer.from('0123456789abcdef')
  const served: Served = { bytes, etag: '"a"', lastModified: mtime }
  const base = { all: [], complete: true, head: 'HTTP/1.1 200 OK' }
  const part = { ...base, status: 206, headers: { 'content-range': 'bytes 0-3/16', 'content-length': '4' }, body: bytes.subarray(0, 4) }
  const ranged = (ifRange: string): Sent => ({ method: 'GET', headers: { range: 'bytes=0-3', 'if-range': ifRange } })
  t.deepEqual(checkResponse(ranged('"a"'), part, served), [])
  t.deepEqual(checkResponse(ranged('Sun, 10 Mar 2024 12:30:15 GMT'), part, served), [])
  t.deepEqual(checkResponse(ranged('Sunday, 10-Mar-24 12:30:15 GMT'), part, served), [])
  for (const ifRange of ['W/"a"', '"b"', 'Sun, 10 Mar 2024 12:30:16 GMT', 'soon']) t.not(checkResponse(ranged(ifRange), part, served).length, 0, ifRange)
  t.not(checkResponse(ranged('"a"'), part, { ...served, etag: 'W/"a"' }).length, 0)
  t.not(checkResponse({ method: 'GET', headers: { range: 'bytes=0-3' } }, part, { ...served, ranges: false }).length, 0)
  const whole = { ...base, status: 200, headers: { 'content-length': '16', 'content-type': 'text/plain', etag: '"a"', 'accept-ranges': 'bytes' }, body: bytes }
  t.deepEqual(checkResponse({ method: 'GET', headers: {} }, whole, served), [])
  t.not(checkResponse({ method: 'GET', headers: {} }, whole, { ...served, sized: false }).length, 0)
  t.not(checkResponse({ method: 'GET', headers: {} }, whole, { ...served, ranges: false }).length, 0)
  const reference = { etag: '"a"', 'cache-control': 'private', 'last-modified': 'Sun, 10 Mar 2024 12:30:15 GMT' }
  const notModified = { ...base, status: 304, body: Buffer.alloc(0) }
  t.deepEqual(checkConsistency({ ...notModified, headers: { etag: '"a"', 'cache-control': 'private' } }, reference), [])
  t.not(checkConsistency({ ...notModified, headers: { etag: '"a"' } }, reference).length, 0)
  t.not(checkConsistency({ ...notModified, headers: { 'cache-control': 'private', 'last-modified': reference['last-modified'] } }, reference).length, 0)
  t.not(checkConsistency({ ...notModified, headers: { 'cache-control': 'private' } }, { 'cache-control': 'private', 'last-modified': reference['last-modified'] }).length, 0)
  const head = { ...whole, body: Buffer.alloc(0) }
  t.deepEqual(checkHeadMatchesGet({ ...head, headers: { ...whole.headers, date: 'now' } }, whole), [])
  t.not(checkHeadMatchesGet({ ...head, headers: { ...whole.headers, 'accept-ranges': 'none' } }, whole).length, 0)
  t.not(checkHeadMatchesGet({ ...head, headers: { ...whole.headers, 'content-length': '0' } }, whole).length, 0)
  t.not(checkHeadMatchesGet({ ...head, status: 412 }, whole).length, 0)
})
