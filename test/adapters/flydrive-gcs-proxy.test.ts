import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buffer } from 'node:stream/consumers'
import test from 'ava'
import { Storage } from '@google-cloud/storage'
import { Disk } from 'flydrive'
import { GCSDriver } from 'flydrive/drivers/gcs'
import { storage } from '../../adapters/flydrive/index.ts'
import { startGcsServer } from '../helpers/gcs-server.ts'

// A file of its own (its own ava worker): the proxy is named in the environment of the process,
// and the adapter reads it once.

test('flydrive gcs: with HTTP_PROXY set, media reads go through the proxy, as the SDK\'s metadata requests do', async (t) => {
  const gcs = await startGcsServer()
  t.teardown(async () => { await gcs.stop() })
  const seen: string[] = []
  // A forward proxy: requests come with the absolute URL.
  const proxy = createServer((req, res) => {
    seen.push(req.url ?? '')
    const upstream = request(req.url ?? '', { method: req.method, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => { res.destroy() })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { proxy.closeAllConnections(); proxy.close() })
  process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  t.teardown(() => { delete process.env.HTTP_PROXY })
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
  t.is(gcs.log.entries.length, 2, 'the storage saw the same two requests')
})
