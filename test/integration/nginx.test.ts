import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nginx } from '../../source/backends/nginx.ts'
import { filesUrl } from '../helpers/app.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'
import { makeWorldReadable } from '../helpers/proxies.ts'

const { test, context } = offloadSuite({
  server: 'nginx',
  label: 'nginx',
  offloadHeader: 'X-Accel-Redirect',
  dropsAppHeaders: 'nginx keeps six headers of an X-Accel-Redirect response',
  rules: ({ protectedDir }) => [
    // first match wins: the rate-limited subdirectory before the whole tree
    nginx({ sourceDir: `${protectedDir}/slow`, destinationUrl: '/slow/', limitRate: 64 * 1024 }),
    nginx({ sourceDir: protectedDir, destinationUrl: '/protected/' })
  ]
})

test('nginx: the ETag and Last-Modified are nginx\'s own, computed from the file', async (t) => {
  const { proxy, app, fixtures } = context()
  const url = filesUrl(fixtures.big.name) + '?validators=1'
  const response = await fetch(proxy.url + url)
  await response.arrayBuffer()
  // nginx's format: "<mtime hex>-<size hex>"; the app sent no validator at all on the offload
  t.regex(response.headers.get('etag') ?? '', /^"[0-9a-f]+-100000"$/)
  t.truthy(response.headers.get('last-modified'))
  t.truthy(app.last(url)?.headers['x-accel-redirect'], 'the app offloaded it')
  t.is(app.last(url)?.headers.etag, undefined)
})

test('nginx: an internal location is not reachable by a client request (404)', async (t) => {
  const { proxy, fixtures } = context()
  const response = await fetch(proxy.url + '/protected/' + fixtures.big.name)
  await response.arrayBuffer()
  t.is(response.status, 404)
})

test('nginx: X-Accel-Limit-Rate 64 KiB/s makes a 256 KiB download take at least 2 s', async (t) => {
  t.timeout(60_000)
  const { proxy, app, fixtures } = context()
  const url = filesUrl(fixtures.slow.name)
  const started = performance.now()
  const response = await fetch(proxy.url + url)
  const body = Buffer.from(await response.arrayBuffer())
  const elapsed = performance.now() - started
  t.is(response.status, 200)
  t.deepEqual(body, fixtures.slow.bytes)
  t.is(app.last(url)?.headers['x-accel-limit-rate'], '65536')
  t.is(response.headers.get('x-accel-limit-rate'), null, 'nginx consumes the control header')
  // 256 KiB at 64 KiB/s is ~4 s; 2 s leaves a wide margin and still fails when the limit is ignored
  t.true(elapsed >= 2000, `took ${Math.round(elapsed)} ms`)
})

test('nginx: a long non-ASCII path and name (4.8 KB of response head from the app) is delivered, not a 502 "upstream sent too big header"', async (t) => {
  const { proxy, app, fixtures } = context()
  // five directories of 84 × 日 (252 bytes each, a legal name) and a file of 80 × 日: the
  // percent-encoded X-Accel-Redirect is 4.5 KB and the Content-Disposition's filename* 0.7 KB,
  // beyond nginx's default 4 KiB buffer for the app's response head (proxy_buffer_size)
  const segment = '日'.repeat(84)
  const file = '日'.repeat(80) + '.txt'
  const name = [segment, segment, segment, segment, segment, file].join('/')
  await mkdir(join(fixtures.protectedDir, name, '..'), { recursive: true })
  await writeFile(join(fixtures.protectedDir, name), 'the long path\n')
  makeWorldReadable(fixtures.protectedDir)
  const url = filesUrl(name)
  const response = await fetch(proxy.url + url)
  t.is(response.status, 200)
  t.is(await response.text(), 'the long path\n')
  const sent = app.last(url)?.headers
  t.true((sent?.['x-accel-redirect']?.length ?? 0) > 4500, 'offloaded, with the long value')
  t.true((sent?.['content-disposition']?.length ?? 0) > 700)
})

test('nginx: more than 100 ranges get the whole file (max_ranges 100, the app\'s own limit when it streams); 100 get the ranges', async (t) => {
  const { proxy, app, fixtures } = context()
  const url = filesUrl(fixtures.big.name) + '?many-ranges=1'
  const specs = (n: number): string => 'bytes=' + Array.from({ length: n }, (_, i) => `${i * 200}-${i * 200}`).join(',')
  const many = await fetch(proxy.url + url, { headers: { Range: specs(120) } })
  const body = Buffer.from(await many.arrayBuffer())
  t.is(many.status, 200)
  t.deepEqual(body, fixtures.big.bytes)
  t.truthy(app.last(url)?.headers['x-accel-redirect'], 'the app offloaded it')
  const hundred = await fetch(proxy.url + url, { headers: { Range: specs(100) } })
  await hundred.arrayBuffer()
  t.is(hundred.status, 206)
  t.regex(hundred.headers.get('content-type') ?? '', /^multipart\/byteranges; boundary=/)
})
