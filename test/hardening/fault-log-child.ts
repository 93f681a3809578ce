/**
 * Fault scenarios run in their own process under NODE_DEBUG=koa-downloads (debuglog reads the
 * variable once, at start-up), with Koa's default error logging left on, so that the test can read
 * exactly what an operator would see on stderr. Each scenario is announced on stderr as
 * `=== <name>` and followed by a pause, so every line that follows belongs to it.
 * Usage: node fault-log-child.ts <temp dir>
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { rename, truncate, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { DownloadError } from '../../source/errors.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import type { DownloadFile } from '../../source/types.ts'
import { clientRequest, deferred } from './fault-kit.ts'

const dir = process.argv[2] ?? ''
if (dir === '') throw new Error('usage: fault-log-child.ts <dir>')
const BIG = 8 * 1024 * 1024
await writeFile(join(dir, 'big.bin'), randomBytes(BIG))
await writeFile(join(dir, 'small.bin'), randomBytes(1000))

const origin = createServer((req, res) => {
  res.writeHead(200, { 'Content-Length': String(BIG), ETag: '"o"', 'Accept-Ranges': 'bytes', Connection: 'close' })
  if (req.method === 'HEAD') { res.end(); return }
  res.write(Buffer.alloc(100_000), () => { req.socket.destroy() })
})
origin.listen(0, '127.0.0.1')
await once(origin, 'listening')
const originPort = (origin.address() as AddressInfo).port

const failing = (stage: 'stat' | 'open', error: Error): DownloadFile => ({
  name: 'object.bin',
  stat: async () => { if (stage === 'stat') throw error; return { size: 10 } },
  open: async () => { if (stage === 'open') throw error; return Readable.from([Buffer.alloc(10)]) }
})

let renamed = false
const hooked: DownloadFile = {
  name: 'small.bin',
  async stat () {
    const stat = await inner.stat()
    if (!renamed) {
      renamed = true
      await writeFile(join(dir, 'small.new'), randomBytes(2000))
      await rename(join(dir, 'small.new'), join(dir, 'small.bin'))
    }
    return stat
  },
  open: async (range) => await inner.open(range),
  read: async (range) => await inner.read(range)
}
const inner = new PathFile('small.bin', { root: dir })

const app = new Koa()
app.use(downloads())
app.use((ctx) => {
  switch (ctx.path) {
    case '/stat-fails': ctx.body = failing('stat', new DownloadError('E_UPSTREAM', 'storage said 500 InternalError')); return
    case '/open-fails': ctx.body = failing('open', new DownloadError('E_TIMEOUT', 'storage did not answer in 30000 ms')); return
    case '/changed': ctx.body = hooked; return
    case '/upstream-reset': ctx.body = new HttpFile(`http://127.0.0.1:${originPort}/object.bin`, { timeout: 2000 }); return
    default: ctx.body = new PathFile(ctx.path.slice(1), { root: dir })
  }
})
const server = app.listen(0, '127.0.0.1')
await once(server, 'listening')
const port = (server.address() as AddressInfo).port

const pause = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 300)) }
async function scenario (name: string, run: () => Promise<unknown>): Promise<void> {
  process.stderr.write(`=== ${name}\n`)
  await run()
  await pause()
}

await scenario('client-abort', async () => {
  await clientRequest(port, '/big.bin', {}, (got, c) => { if (got > 200_000) c.abort() })
})
await scenario('stat-fails', async () => { await clientRequest(port, '/stat-fails') })
await scenario('open-fails', async () => { await clientRequest(port, '/open-fails') })
await scenario('truncated', async () => {
  const truncated = deferred()
  let once = false
  await clientRequest(port, '/big.bin', {}, (_got, c) => {
    if (once) return
    once = true
    c.pause()
    truncate(join(dir, 'big.bin'), 1024 * 1024).then(() => { truncated.resolve(); c.resume() }, () => { c.resume() })
  })
})
await scenario('changed', async () => { await clientRequest(port, '/changed') })
await scenario('upstream-reset', async () => { await clientRequest(port, '/upstream-reset') })
process.stderr.write('=== end\n')
server.close()
origin.close()
