import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buffer } from 'node:stream/consumers'
import test from 'ava'
import { Storage } from '@google-cloud/storage'
import { Disk } from 'flydrive'
import { GCSDriver } from 'flydrive/drivers/gcs'
import { storage } from '../../adapters/flydrive/index.ts'
import { startGcsServer } from '../helpers/gcs-server.ts'
import type { GcsServer } from '../helpers/gcs-server.ts'

// A file of its own (its own ava worker): the proxy is named in the environment of the process,
// and the adapter reads it once. Only HTTP_PROXY is set, as in many deployments: teeny-request
// sends the SDK's requests through it for https URLs too, and so must the media reads.

const seen: string[] = []
// A forward proxy: plain requests come with the absolute URL (passed on); CONNECT (an https
// tunnel) is logged and refused: the stub has no TLS, and the CONNECT itself is the proof.
const proxy = createServer((req, res) => {
  seen.push(req.url ?? '')
  const upstream = request(req.url ?? '', { method: req.method, headers: req.headers, agent: false }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(res)
  })
  upstream.on('error', () => { res.destroy() })
  req.pipe(upstream)
})
proxy.on('connect', (req, socket) => {
  seen.push(`CONNECT ${req.url ?? ''}`)
  socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')
})
let gcs: GcsServer

test.before(async () => {
  gcs = await startGcsServer()
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
})
test.after.always(async () => {
  delete process.env.HTTP_PROXY
  proxy.closeAllConnections()
  proxy.close()
  await gcs?.stop()
})

test.serial('flydrive gcs: with HTTP_PROXY set, media reads go through the proxy, as the SDK\'s metadata requests do', async (t) => {
  seen.length = 0
  const object = Buffer.alloc(100_000, 0x63)
  gcs.put('via/proxy.bin', object)
  const client = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test', retryOptions: { autoRetry: false, maxRetries: 0 } })
  const file = storage(new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'private' }))).file('via/proxy.bin')
  const bytes = await buffer(await file.open())
  t.true(bytes.equals(object))
  const paths = seen.map((url) => url.replace(gcs.endpoint, ''))
  t.is(paths.length, 2)
  t.regex(paths[0] ?? '', /^\/storage\/v1\/b\/test-bucket\/o\/via%2Fproxy\.bin(\?|$)/)
  t.regex(paths[1] ?? '', /^\/storage\/v1\/b\/test-bucket\/o\/via%2Fproxy\.bin\?alt=media&generation=\d+$/)
  t.is(gcs.log.entries.filter((e) => e.url.includes('via%2Fproxy.bin')).length, 2, 'the storage saw the same two requests')
})

test.serial('flydrive gcs: with HTTP_PROXY alone set, a media read of an https endpoint goes through it too (a CONNECT), as teeny-request sends the SDK\'s https requests', async (t) => {
  seen.length = 0
  const https = `https://127.0.0.1:${new URL(gcs.endpoint).port}`
  const client = new Storage({ apiEndpoint: https, projectId: 'test', retryOptions: { autoRetry: false, maxRetries: 0 } })
  const file = storage(new Disk(new GCSDriver({ storage: client, bucket: gcs.bucket, visibility: 'private' })), { idleTimeout: 5000 }).file('via/proxy.bin')
  // A stat of our own: the read alone is under test (the proxy refuses the tunnel).
  await t.throwsAsync(file.open(undefined, { stat: { size: 100_000 } }))
  t.deepEqual(seen, [`CONNECT 127.0.0.1:${new URL(gcs.endpoint).port}`])
})
