import { randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import test from 'ava'
import Koa from 'koa'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import { storage } from '../../adapters/flydrive/storage.ts'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import type { ServerName } from '../../source/server-config.ts'
import { hostileName, sha256 } from '../helpers/app.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { logProxiesIfFailed, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import { startS3 } from '../helpers/s3.ts'
import type { S3Server } from '../helpers/s3.ts'

// Remote files (HttpFile) offloaded to the proxy, which fetches them itself: nginx through the
// fixed-origin location and the generic /_remote/ location (presigned S3 URLs checked by an S3
// server that verifies SigV4), Caddy through a fixed-origin handle_response. The configs are the
// generated ones (reference/proxies.md §9).

const big = randomBytes(1024 * 1024)
const storedGz = gzipSync(Buffer.from('id,name\n'.repeat(20_000)))
const hostile = Buffer.from('remote résumé\n')
const originHeaders = {
  'Content-Type': 'application/x-origin',
  'Content-Disposition': 'attachment; filename="origin.bin"',
  'x-amz-request-id': 'internal',
  // a bucket's own caching policy and a CDN's cookie: the app's Cache-Control must be the only one
  'Cache-Control': 'public, max-age=31536000',
  Expires: 'Thu, 01 Jan 2037 00:00:00 GMT',
  'Set-Cookie': 'origin=1; Path=/',
  // what S3 and GCS say about an object besides its bytes: never passed on when the app streams
  'x-amz-version-id': 'version-7',
  'x-amz-server-side-encryption': 'aws:kms',
  'x-amz-server-side-encryption-aws-kms-key-id': 'arn:aws:kms:eu-west-1:123456789012:key/secret',
  'x-amz-meta-uploader-email': 'alice@example.com',
  'x-goog-generation': '1700000000000000',
  'x-goog-hash': 'crc32c=AAAAAA==',
  'x-guploader-uploadid': 'upload-1',
  // what an origin could set on the app's site: never passed on (the app, streaming, passes none)
  'Clear-Site-Data': '"cookies", "storage"',
  'Strict-Transport-Security': 'max-age=63072000; includeSubDomains',
  'Access-Control-Allow-Origin': 'https://attacker.example',
  'Access-Control-Allow-Credentials': 'true',
  Refresh: '0; url=https://attacker.example/',
  Link: '<https://attacker.example/x.js>; rel=preload; as=script',
  'Content-Location': '/elsewhere'
}

/** An origin's error status → what the client gets from nginx (the app's mapping when it streams: storage-error.ts, http-file.ts). */
const originFailures: ReadonlyArray<readonly [number, number]> = [
  [400, 502], [401, 502], [403, 502], [404, 404], [405, 502], [409, 502], [410, 404], [429, 503],
  [500, 502], [501, 502], [502, 502], [503, 503], [504, 504], [301, 502],
  // codes outside the usual lists: an unassigned 3xx, a 418, a CDN's own 520 (found by review: nginx passed them on)
  [306, 502], [418, 502], [520, 502], [599, 502]
]

interface Running { origin: Origin, s3: S3Server, app: Server, appUrl: string, proxies: Partial<Record<ServerName, RunningProxy>> }
let running: Running | undefined
const context = (): Running => {
  if (running === undefined) throw new Error('setup failed (see test.before)')
  return running
}
const proxy = (server: ServerName): RunningProxy => {
  const found = context().proxies[server]
  if (found === undefined) throw new Error(`${server} did not start`)
  return found
}

const nginxTests = proxyTest('nginx')
const caddyTests = proxyTest('caddy')

test.before(async () => {
  const origin = await startOrigin()
  // one object per test, so that the origin's log of each is unambiguous (tests run concurrently)
  for (const name of ['full-nginx.bin', 'range-nginx.bin', 'full-caddy.bin', 'range-caddy.bin', 'q-nginx.bin', 'q-caddy.bin', 'noq-nginx.bin', 'noq-caddy.bin', 'label-caddy.bin', 'auth-nginx.bin', 'auth-caddy.bin', 'authoff-nginx.bin', 'authoff-caddy.bin']) {
    origin.put(`/bucket/${name}`, { bytes: big, headers: originHeaders })
  }
  origin.put('/bucket/' + encodeURIComponent(hostileName), { bytes: hostile, headers: originHeaders })
  // failing objects: a short text body naming the status, and a cookie (helpers/origin.ts)
  for (const server of ['nginx', 'caddy']) {
    for (const [status] of originFailures) origin.fail(`/bucket/fail-${status}-${server}.bin`, status)
    origin.redirect(`/bucket/fail-301-${server}.bin`, `http://other-region.example/bucket/fail-301-${server}.bin`, 301)
  }
  origin.put('/bucket/passed-nginx.bin', { bytes: big, headers: originHeaders })
  // stored gzip-coded, sent so whatever the client accepts (as S3 does)
  for (const server of ['nginx', 'caddy']) origin.put(`/bucket/stored-gz-${server}.csv`, { bytes: storedGz, headers: { 'Content-Encoding': 'gzip' } })
  // An origin's own offload headers, as for a proxy of its own: nginx must not obey them (its
  // X-Accel-Redirect reached /_remote/, any host), and neither proxy may pass them on to the client.
  for (const server of ['nginx', 'caddy']) {
    origin.put(`/bucket/secret-${server}.bin`, { bytes: Buffer.from('not authorised by the app\n') })
    origin.put(`/bucket/orders-${server}.bin`, {
      bytes: hostile,
      headers: {
        'X-Accel-Redirect': `/_remote/http/${new URL(origin.url).host}/bucket/secret-${server}.bin`,
        // (obeyed, it slows the response to a byte a second: the test times out)
        'X-Accel-Limit-Rate': '1',
        'X-Sendfile': '/etc/passwd'
      }
    })
  }
  const s3 = await startS3('signed')
  await s3.put('big.bin', big)
  await s3.put('reports/' + hostileName, hostile)
  await s3.put('storage/' + hostileName, hostile)

  // The same origin once more with forwardQuery, under its own destination (served by /origin-q/).
  const forwarding = {
    nginx: nginx({ sourceUrl: `${origin.url}/bucket/`, destinationUrl: '/_origin_q/', forwardQuery: true }),
    caddy: caddy({ sourceUrl: `${origin.url}/bucket/`, destinationUrl: '/_origin_q/', forwardQuery: true })
  }
  const rules: Record<'nginx' | 'caddy', OffloadRule[]> = {
    nginx: [
      nginx({ sourceUrl: `${origin.url}/bucket/`, destinationUrl: '/_origin/' }),
      nginx({ remote: true, destinationUrl: '/_remote/' }),
      forwarding.nginx
    ],
    caddy: [caddy({ sourceUrl: `${origin.url}/bucket/`, destinationUrl: '/_origin/' }), forwarding.caddy]
  }
  const koa = new Koa()
  // One app, the rules chosen by the proxy that forwards the request (X-Test-Proxy is set by the
  // test itself, never by a proxy config: this is test wiring, not a pattern to copy).
  const byProxy = { nginx: downloads({ rules: rules.nginx }), caddy: downloads({ rules: rules.caddy }) }
  const forwardingByProxy = { nginx: downloads({ rules: [forwarding.nginx] }), caddy: downloads({ rules: [forwarding.caddy] }) }
  koa.use(async (ctx, next) => {
    const which = ctx.get('x-test-proxy') === 'caddy' ? 'caddy' : 'nginx'
    await (ctx.path.startsWith('/origin-q/') ? forwardingByProxy : byProxy)[which](ctx, next)
  })
  const bucket = storage(new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false })))
  koa.use(async (ctx) => {
    if (ctx.path.startsWith('/storage-s3/')) {
      ctx.body = download(await bucket.signedFile(decodeURIComponent(ctx.path.slice('/storage-s3/'.length)), { expiresIn: 600 }))
      return
    }
    const key = decodeURIComponent(ctx.path.replace(/^\/(origin|origin-q|origin-sig|origin-auth|s3)\//, ''))
    const name = key.split('/').at(-1) ?? key
    if (ctx.path.startsWith('/origin-q/') || ctx.path.startsWith('/origin-sig/')) {
      // an object address with a query of its own (a signature), under either rule; or one holding
      // text a user chose, which Caddy's rewrite would read as placeholders
      const query = ctx.query.label === '1' ? '?label={env.HOME}&auth={http.request.header.Authorization}{}' : '?sig=a%2Fb&v=1'
      ctx.body = download(new HttpFile(`${origin.url}/bucket/${encodeURIComponent(key)}${query}`, { name }))
    } else if (ctx.path.startsWith('/origin-auth/')) {
      // an origin the app reaches with a credential of its own; offloadable=1: the proxy adds it itself
      const offloadable = ctx.query.offloadable === '1' ? { offloadable: true } : {}
      ctx.body = download(new HttpFile(`${origin.url}/bucket/${encodeURIComponent(key)}`, { name, headers: { Authorization: 'Bearer app-token' }, ...offloadable }))
    } else if (ctx.path.startsWith('/origin/')) {
      ctx.body = download(new HttpFile(`${origin.url}/bucket/${encodeURIComponent(key)}`, { name }), { cacheControl: 'private, max-age=60' })
    } else if (ctx.path.startsWith('/s3/')) {
      let url = await getSignedUrl(s3.client, new GetObjectCommand({ Bucket: s3.bucket, Key: key }), { expiresIn: 600 })
      if (ctx.query.tamper === '1') url = url.replace(/(X-Amz-Signature=)([0-9a-f])/, (_m, p: string, c: string) => p + (c === '0' ? '1' : '0'))
      ctx.body = download(new HttpFile(url, { name }))
    }
  })
  const app = koa.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => app.once('listening', resolve))
  const appPort = (app.address() as AddressInfo).port
  running = { origin, s3, app, appUrl: `http://127.0.0.1:${appPort}`, proxies: {} }
  if (nginxTests.available) running.proxies.nginx = await startProxy('nginx', { rules: rules.nginx, appPort })
  if (caddyTests.available) running.proxies.caddy = await startProxy('caddy', { rules: rules.caddy, appPort })
})

test.afterEach.always((t) => { logProxiesIfFailed(t, Object.values(running?.proxies ?? {})) })

test.after.always(async () => {
  for (const p of Object.values(running?.proxies ?? {})) await p.stop()
  running?.app.closeAllConnections()
  running?.app.close()
  await running?.s3.stop()
  await running?.origin.stop()
})

for (const [server, tests] of [['nginx', nginxTests], ['caddy', caddyTests]] as const) {
  const headers = { 'X-Test-Proxy': server }

  tests.test(`remote URL via ${server} /_origin/: byte-identical, the app's headers win, the client's credentials stay behind`, async (t) => {
    const { origin } = context()
    const response = await fetch(proxy(server).url + `/origin/full-${server}.bin`, {
      headers: { ...headers, Authorization: 'Bearer secret', Cookie: 'session=secret', 'Proxy-Authorization': 'Basic c2VjcmV0', 'X-Api-Key': 'secret', Origin: 'https://attacker.example' }
    })
    const body = new Uint8Array(await response.arrayBuffer())
    t.is(response.status, 200)
    t.is(sha256(body), sha256(big))
    t.is(response.headers.get('content-type'), 'application/octet-stream')
    t.is(response.headers.get('content-disposition'), `attachment; filename="full-${server}.bin"`)
    t.is(response.headers.get('cache-control'), 'private, max-age=60')
    t.is(response.headers.get('expires'), null)
    t.is(response.headers.get('set-cookie'), null)
    t.is(response.headers.get('x-amz-request-id'), null)
    for (const name of ['x-amz-version-id', 'x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id', 'x-goog-generation', 'x-goog-hash', 'x-guploader-uploadid']) {
      t.is(response.headers.get(name), null, name)
    }
    // User metadata has no fixed name: Caddy drops the family, stock nginx cannot (docs/deployment/nginx.md)
    t.is(response.headers.get('x-amz-meta-uploader-email'), server === 'caddy' ? null : 'alice@example.com')
    t.is(response.headers.get('x-accel-redirect'), null)
    for (const name of ['clear-site-data', 'strict-transport-security', 'access-control-allow-origin', 'access-control-allow-credentials', 'refresh', 'link', 'content-location']) {
      t.is(response.headers.get(name), null, name)
    }
    const fetched = origin.log.matching(`/bucket/full-${server}.bin`).filter((e) => e.method === 'GET')
    t.is(fetched.length, 1, 'the proxy fetched the object once; the app fetched nothing')
    t.is(fetched[0]?.url, `/bucket/full-${server}.bin`)
    for (const name of ['authorization', 'cookie', 'proxy-authorization', 'x-api-key', 'origin', 'x-test-proxy']) {
      t.is(fetched[0]?.headers[name], undefined, name)
    }
  })

  tests.test(`remote URL via ${server} /_origin/: an object stored gzip-coded reaches a client that sent no Accept-Encoding as the origin sends it (Content-Encoding gzip, its own length), and a resume gets those same bytes (Caddy's Go transport asked for gzip and decoded it)`, async (t) => {
    const { origin } = context()
    const url = proxy(server).url + `/origin/stored-gz-${server}.csv`
    const whole = await rawRequest(url, { headers })
    t.is(whole.status, 200)
    t.is(whole.headers['content-encoding'], 'gzip')
    t.is(whole.headers['content-length'], String(storedGz.length))
    t.deepEqual(whole.body, storedGz)
    const resumed = await rawRequest(url, { headers: { ...headers, Range: 'bytes=10-' } })
    t.is(resumed.status, 206)
    t.deepEqual(resumed.body, storedGz.subarray(10))
    const asked = origin.log.matching(`/bucket/stored-gz-${server}.csv`).filter((e) => e.method === 'GET')
    t.is(asked[0]?.headers['accept-encoding'], undefined, 'the proxy asked for no coding of its own')
  })

  tests.test(`remote URL via ${server} /_origin/: the origin's own X-Accel-Redirect, X-Accel-Limit-Rate and X-Sendfile are neither obeyed nor passed on`, async (t) => {
    const { origin } = context()
    const response = await fetch(proxy(server).url + `/origin/orders-${server}.bin`, { headers })
    t.is(response.status, 200)
    t.deepEqual(Buffer.from(await response.arrayBuffer()), hostile)
    t.is(response.headers.get('x-accel-redirect'), null)
    t.is(response.headers.get('x-accel-limit-rate'), null)
    t.is(response.headers.get('x-sendfile'), null)
    t.deepEqual(origin.log.matching(`/bucket/secret-${server}.bin`).map((e) => e.method), [], 'nothing went to the URL the origin named')
  })

  tests.test(`remote URL via ${server} /_origin/: Range bytes=0-9 → 206 from the origin, which saw the Range`, async (t) => {
    const { origin } = context()
    const response = await fetch(proxy(server).url + `/origin/range-${server}.bin`, { headers: { ...headers, Range: 'bytes=0-9' } })
    t.is(response.status, 206)
    t.is(response.headers.get('content-range'), `bytes 0-9/${big.length}`)
    t.deepEqual(Buffer.from(await response.arrayBuffer()), big.subarray(0, 10))
    t.deepEqual(origin.log.matching(`/bucket/range-${server}.bin`).map((e) => `${e.method} ${e.range ?? ''}`), ['GET bytes=0-9'])
  })

  tests.test(`remote URL via ${server}: an HttpFile with headers is streamed by Node with them (the proxy would fetch without them); offloadable: true hands it to the proxy`, async (t) => {
    const { origin } = context()
    const streamed = await fetch(proxy(server).url + `/origin-auth/auth-${server}.bin`, { headers })
    t.is(streamed.status, 200)
    t.is(sha256(new Uint8Array(await streamed.arrayBuffer())), sha256(big))
    const byApp = origin.log.matching(`/bucket/auth-${server}.bin`)
    t.true(byApp.length > 0)
    t.deepEqual(byApp.map((e) => e.headers.authorization), byApp.map(() => 'Bearer app-token'), 'every request to the origin carried the app\'s credential')
    const offloaded = await fetch(proxy(server).url + `/origin-auth/authoff-${server}.bin?offloadable=1`, { headers })
    t.is(offloaded.status, 200)
    t.is(sha256(new Uint8Array(await offloaded.arrayBuffer())), sha256(big))
    t.deepEqual(origin.log.matching(`/bucket/authoff-${server}.bin`).map((e) => `${e.method} ${e.headers.authorization ?? '-'}`), ['GET -'], 'the proxy fetched it, without the credential')
  })

  tests.test(`remote URL via ${server} /_origin/: a name with space, %, unicode and a quote`, async (t) => {
    const response = await fetch(proxy(server).url + '/origin/' + encodeURIComponent(hostileName), { headers })
    t.is(response.status, 200)
    t.deepEqual(Buffer.from(await response.arrayBuffer()), hostile)
    t.is(response.headers.get('content-disposition'),
      'attachment; filename="my _resume_ 100_ done.txt"; filename*=UTF-8\'\'my%20%22r%C3%A9sum%C3%A9%22%20100%25%20done.txt')
  })
}

for (const [server, tests] of [['nginx', nginxTests], ['caddy', caddyTests]] as const) {
  const headers = { 'X-Test-Proxy': server }

  tests.test(`remote URL via ${server} with forwardQuery: the origin receives the file URL's query, not the client's`, async (t) => {
    const { origin } = context()
    const response = await fetch(proxy(server).url + `/origin-q/q-${server}.bin?client=1`, { headers })
    const body = new Uint8Array(await response.arrayBuffer())
    t.is(response.status, 200)
    t.is(sha256(body), sha256(big))
    const fetched = origin.log.matching(`/bucket/q-${server}.bin`).map((e) => `${e.method} ${e.url}`)
    t.deepEqual(fetched, [`GET /bucket/q-${server}.bin?sig=a%2Fb&v=1`])
  })

  if (server === 'caddy') {
    tests.test('remote URL via caddy with forwardQuery: braces in the query are no placeholders (the origin gets the query, not a server variable or the client\'s Authorization)', async (t) => {
      const { origin } = context()
      const response = await fetch(proxy(server).url + '/origin-q/label-caddy.bin?label=1', { headers: { ...headers, Authorization: 'Bearer client-secret' } })
      t.is(response.status, 200)
      t.is(sha256(new Uint8Array(await response.arrayBuffer())), sha256(big))
      t.deepEqual(origin.log.matching('/bucket/label-caddy.bin').map((e) => `${e.method} ${e.url}`),
        ['GET /bucket/label-caddy.bin?label=%7Benv.HOME%7D&auth=%7Bhttp.request.header.Authorization%7D%7B%7D'])
    })
  }

  tests.test(`remote URL via ${server} without forwardQuery: neither the file URL's query nor the client's reaches the origin`, async (t) => {
    const { origin } = context()
    const response = await fetch(proxy(server).url + `/origin-sig/noq-${server}.bin?client=1`, { headers })
    const body = new Uint8Array(await response.arrayBuffer())
    t.is(response.status, 200)
    t.is(sha256(body), sha256(big))
    const fetched = origin.log.matching(`/bucket/noq-${server}.bin`).map((e) => `${e.method} ${e.url}`)
    t.deepEqual(fetched, [`GET /bucket/noq-${server}.bin`])
  })
}

nginxTests.test('presigned S3 URL via nginx /_remote/: byte-identical, and Range → 206', async (t) => {
  const response = await fetch(proxy('nginx').url + '/s3/big.bin')
  t.is(response.status, 200)
  t.is(sha256(new Uint8Array(await response.arrayBuffer())), sha256(big))
  t.is(response.headers.get('content-disposition'), 'attachment; filename="big.bin"')
  const ranged = await fetch(proxy('nginx').url + '/s3/big.bin', { headers: { Range: 'bytes=1000-1999' } })
  t.is(ranged.status, 206)
  t.deepEqual(Buffer.from(await ranged.arrayBuffer()), big.subarray(1000, 2000))
})

nginxTests.test('presigned S3 URL via nginx /_remote/: a HEAD is answered by the app (the URL is signed for GET, S3 refuses a HEAD of it): 200 with the length, 404 for a missing key', async (t) => {
  const head = await fetch(proxy('nginx').url + '/s3/big.bin', { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers.get('content-length'), String(big.length))
  t.is(head.headers.get('content-disposition'), 'attachment; filename="big.bin"')
  t.regex(head.headers.get('etag') ?? '', /^"[0-9a-f]{32}"$/)
  const missing = await fetch(proxy('nginx').url + '/s3/no-such-key.bin', { method: 'HEAD' })
  t.is(missing.status, 404)
})

nginxTests.test('presigned S3 URL via nginx /_remote/: an encoded key arrives intact (the signature verifies)', async (t) => {
  const response = await fetch(proxy('nginx').url + '/s3/' + encodeURIComponent('reports/' + hostileName))
  t.is(response.status, 200)
  t.deepEqual(Buffer.from(await response.arrayBuffer()), hostile)
})

nginxTests.test('presigned S3 URL via nginx /_remote/: a tampered signature → S3 refuses it (the URL is passed as signed), and the client gets a 502 without S3\'s error', async (t) => {
  const { s3 } = context()
  const response = await fetch(proxy('nginx').url + '/s3/big.bin?tamper=1')
  const body = await response.text()
  t.is(response.status, 502)
  t.true(body.includes('<title>502 Bad Gateway</title>'), body)
  t.false(body.includes('Signature') || body.includes(s3.bucket), 'S3\'s XML (its code, the bucket, the string to sign) stays behind')
})

nginxTests.test('presigned S3 URL via nginx /_remote/: a missing key → 404 with nginx\'s page, not S3\'s NoSuchKey naming the bucket and the key', async (t) => {
  const { s3 } = context()
  const response = await fetch(proxy('nginx').url + '/s3/no-such-key.bin')
  const body = await response.text()
  t.is(response.status, 404)
  t.is(response.headers.get('content-type'), 'text/html')
  t.true(body.includes('<title>404 Not Found</title>'), body)
  t.false(body.includes('NoSuchKey') || body.includes(s3.bucket) || body.includes('no-such-key'), body)
  t.deepEqual(s3.log.matching('/no-such-key.bin').map((e) => e.method), ['GET'], 'nginx asked S3, once')
})

for (const [server, tests] of [['nginx', nginxTests], ['caddy', caddyTests]] as const) {
  const page = server === 'nginx' ? 'nginx\'s own page' : 'Caddy\'s handle_errors (an empty body)'
  tests.test(`remote URL via ${server} /_origin/: an origin's error status becomes ${page}, mapped as the app maps it when streaming, without the origin's body, type or cookie, nor the download's type`, async (t) => {
    const { origin } = context()
    for (const [status, expected] of originFailures) {
      const response = await fetch(proxy(server).url + `/origin/fail-${status}-${server}.bin`, { headers: { 'X-Test-Proxy': server }, redirect: 'manual' })
      const body = await response.text()
      t.is(response.status, expected, `origin ${status}`)
      if (server === 'nginx') {
        t.is(response.headers.get('content-type'), 'text/html', `origin ${status}: nginx's page, not the download's type`)
        t.regex(body, new RegExp(`^<html>\\r\\n<head><title>${expected} `), `origin ${status}`)
        // nginx keeps the app's Cache-Control (docs/deployment/nginx.md §4); the page's no-store
        // keeps a browser from reusing the error for the download's max-age.
        t.is(response.headers.get('cache-control'), 'private, max-age=60, no-store', `origin ${status}`)
      } else {
        t.is(body, '', `origin ${status}`)
        t.is(response.headers.get('content-type'), null, `origin ${status}`)
        // (nginx keeps these two from the app's response, docs/deployment/nginx.md §4)
        t.is(response.headers.get('content-disposition'), null, `origin ${status}`)
        t.is(response.headers.get('cache-control'), null, `origin ${status}`)
      }
      t.false(body.includes('upstream'), `origin ${status}: the origin's body stays behind`)
      t.is(response.headers.get('set-cookie'), null)
      t.is(response.headers.get('location'), null)
      t.is(response.headers.get('x-accel-redirect'), null)
      t.deepEqual(origin.log.matching(`/bucket/fail-${status}-${server}.bin`).map((e) => e.method), ['GET'], `origin ${status}: ${server} asked the origin once`)
    }
  })
}

nginxTests.test('remote URL via nginx /_origin/: the origin\'s answers to the client\'s conditionals and ranges pass through (206, 304, 412, 416 with Content-Range)', async (t) => {
  const url = proxy('nginx').url + '/origin/passed-nginx.bin'
  const headers = { 'X-Test-Proxy': 'nginx' }
  const full = await fetch(url, { headers })
  await full.arrayBuffer()
  const etag = full.headers.get('etag') ?? ''
  t.is(full.status, 200)
  const ranged = await fetch(url, { headers: { ...headers, Range: 'bytes=10-19' } })
  t.is(ranged.status, 206)
  t.deepEqual(Buffer.from(await ranged.arrayBuffer()), big.subarray(10, 20))
  const notModified = await fetch(url, { headers: { ...headers, 'If-None-Match': etag } })
  t.is(notModified.status, 304)
  t.is(notModified.headers.get('etag'), etag)
  const failed = await fetch(url, { headers: { ...headers, 'If-Match': '"other"' } })
  await failed.arrayBuffer()
  t.is(failed.status, 412)
  const unsatisfiable = await fetch(url, { headers: { ...headers, Range: `bytes=${big.length}-` } })
  await unsatisfiable.arrayBuffer()
  t.is(unsatisfiable.status, 416)
  t.is(unsatisfiable.headers.get('content-range'), `bytes */${big.length}`)
})

nginxTests.test('storage remote (flydrive S3 signedFile) via nginx /_remote/: byte-identical, with the app\'s Content-Disposition', async (t) => {
  const { s3 } = context()
  const response = await fetch(proxy('nginx').url + '/storage-s3/' + encodeURIComponent('storage/' + hostileName))
  t.is(response.status, 200)
  t.deepEqual(Buffer.from(await response.arrayBuffer()), hostile)
  t.is(response.headers.get('content-disposition'),
    'attachment; filename="my _resume_ 100_ done.txt"; filename*=UTF-8\'\'my%20%22r%C3%A9sum%C3%A9%22%20100%25%20done.txt')
  // one request reached S3 for this key: nginx's GET with the presigned URL (the app neither
  // stat'ed nor read the object)
  const requests = s3.log.matching('/storage/')
  t.deepEqual(requests.map((e) => `${e.method} ${e.url.includes('X-Amz-Signature=') ? 'presigned' : 'signed by header'}`), ['GET presigned'])
})
