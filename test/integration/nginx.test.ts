import { nginx } from '../../source/backends/nginx.ts'
import { filesUrl } from '../helpers/app.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

const { test, context } = offloadSuite({
  server: 'nginx',
  label: 'nginx',
  offloadHeader: 'X-Accel-Redirect',
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
