// Run as a child process by test/load-footprint.test.ts: what loading koa-downloads adds to a Koa
// app started with app.listen() (which loads node:http through Koa's own require), and whether
// serving a download makes an Intl.Segmenter. Prints a JSON report. (Serving loads undici anyway:
// Koa's body setter tests a DownloadFile, as any object body, against the Response global.)
import { once } from 'node:events'
import { mkdtemp, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

let segmenters = 0
const Segmenter = Intl.Segmenter
Object.defineProperty(Intl, 'Segmenter', {
  value: class extends Segmenter {
    constructor (...args: ConstructorParameters<typeof Segmenter>) {
      super(...args)
      segmenters++
    }
  }
})

// process.moduleLoadList: the internal modules and bindings Node has loaded (undocumented, untyped).
const loaded = (process as unknown as { moduleLoadList: string[] }).moduleLoadList
const undiciLoaded = (): boolean => loaded.some((name) => name.includes('undici'))
const control = process.argv[2] === 'control'

const { default: Koa } = await import('koa')
if (control) await import('node:http')
const { downloads, PathFile } = await import('../../source/index.ts')
await import('../../adapters/flydrive/index.ts')
await import('../../adapters/http/index.ts')
const afterImport = { undici: undiciLoaded(), segmenters }

const dir = await mkdtemp(join(tmpdir(), 'kd-footprint-'))
await writeFile(join(dir, 'a.txt'), 'hello\n')
const app = new Koa()
app.use(downloads())
app.use((ctx) => {
  const name = ctx.query.name
  ctx.body = new PathFile('a.txt', { root: dir, name: typeof name === 'string' ? name : undefined })
})
const server = app.listen(0, '127.0.0.1')
await once(server, 'listening')
// A raw request over node:net: fetch() itself would load undici.
const { Socket } = await import('node:net')
async function get (path: string): Promise<string> {
  const socket = new Socket()
  socket.connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(socket, 'connect')
  // write, not end: a half-closed request is aborted by node:http before its answer
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  let text = ''
  for await (const chunk of socket) text += String(chunk)
  return text
}
const short = await get('/?name=report.txt')
const afterShort = { segmenters }
const long = await get(`/?name=${'%C3%A9'.repeat(200)}.txt`)
const afterLong = { segmenters }
server.close()
process.stdout.write(JSON.stringify({ afterImport, afterShort, afterLong, short: short.split('\r\n')[0], long: long.split('\r\n')[0] }))
