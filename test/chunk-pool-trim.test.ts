// The chunk pool trims itself on a timer: what no stream took for a whole interval goes back to
// the GC, and an idle server keeps nothing. Its own file (its own process): the timer is
// shortened here, which would disturb the allocation counts of test/chunk-reuse.test.ts.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Koa from 'koa'
import { pooledBuffers, setTrimInterval } from '../source/file-stream.ts'
import { PathFile } from '../source/path-file.ts'
import { serve } from '../source/serve.ts'

test('chunk pool: an idle server gives its free chunk buffers back within two trim intervals', async t => {
  const chunkSize = 64 * 1024 + 31 * 1024
  const bytes = randomBytes(2 * 1024 * 1024 + 99)
  const temp = await realpath(await mkdtemp(join(tmpdir(), 'kd-chunk-pool-')))
  t.teardown(async () => { await rm(temp, { recursive: true, force: true }) })
  await writeFile(join(temp, 'file.bin'), bytes)
  const app = new Koa()
  app.use(serve({ chunkSize, bufferSize: 0 }))
  app.use((ctx) => { ctx.body = new PathFile('file.bin', { root: temp }) })
  const server = createServer(app.callback()).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  setTrimInterval(200)
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  const bodies = await Promise.all([1, 2, 3].map(async () => Buffer.from(await (await fetch(url)).arrayBuffer())))
  for (const body of bodies) t.true(body.equals(bytes))
  // Two or three per stream; three streams that did not overlap (a loaded machine) leave two.
  t.true(pooledBuffers(chunkSize) >= 2, `${pooledBuffers(chunkSize)} buffers pooled`)
  await sleep(700)
  t.is(pooledBuffers(chunkSize), 0)
})
