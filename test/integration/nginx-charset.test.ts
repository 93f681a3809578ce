// The Content-Type the client gets for an nginx offload is the one the app set, charset and all,
// unless the rule asks nginx for a charset (`charset`, sent as X-Accel-Charset). Measured with the
// generated configuration: a location with `charset utf-8;` appended `; charset=utf-8` to every type
// of nginx's charset_types (text/plain, text/html, application/rss+xml …) that had none — a Latin-1
// file the app sent as `text/plain` was read as UTF-8 — and an X-Accel-Charset of another charset
// than the location's was logged as an error on every request.
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'

const { test } = proxyTest('nginx')

const latin = Buffer.from('caf\xe9 cr\xe8me\n', 'latin1')

test('nginx: the app\'s Content-Type reaches the client as it was set; a rule\'s charset is added where the type has none; no charset error logged', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kd-charset-'))
  await mkdir(join(root, 'plain'))
  await mkdir(join(root, 'utf8'))
  await writeFile(join(root, 'plain', 'latin.txt'), latin)
  await writeFile(join(root, 'utf8', 'latin.txt'), latin)
  makeWorldReadable(root)
  const rules = [
    nginx({ sourceDir: join(root, 'plain'), destinationUrl: '/plain/' }),
    nginx({ sourceDir: join(root, 'utf8'), destinationUrl: '/utf8/', charset: 'utf-8' })
  ]
  const app = new Koa()
  const sent: Array<Record<string, unknown>> = []
  app.use(async (ctx, next) => { await next(); sent.push({ ...ctx.response.headers }) })
  app.use(downloads({ rules }))
  app.use((ctx) => {
    // /get/<dir>/latin.txt: not below a destinationUrl, which is internal (404 to clients)
    const dir = ctx.path.split('/')[2] ?? ''
    ctx.body = download(new PathFile('latin.txt', { root: join(root, dir) }), { contentType: String(ctx.query.type) })
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const proxy = await startProxy('nginx', { rules, appPort: (server.address() as AddressInfo).port })
  try {
    const cases: Array<[dir: string, type: string, expected: string]> = [
      ['plain', 'text/plain', 'text/plain'],
      ['plain', 'text/html', 'text/html'],
      ['plain', 'application/rss+xml', 'application/rss+xml'],
      ['plain', 'text/plain; charset=iso-8859-1', 'text/plain; charset=iso-8859-1'],
      ['plain', 'text/csv; charset=windows-1252', 'text/csv; charset=windows-1252'],
      ['plain', 'application/octet-stream', 'application/octet-stream'],
      ['utf8', 'text/plain', 'text/plain; charset=utf-8'],
      ['utf8', 'application/octet-stream', 'application/octet-stream; charset=utf-8']
    ]
    for (const [dir, type, expected] of cases) {
      const response = await fetch(`${proxy.url}/get/${dir}/latin.txt?type=${encodeURIComponent(type)}`)
      const body = Buffer.from(await response.arrayBuffer())
      t.is(response.status, 200, `${dir} ${type}`)
      t.is(response.headers.get('content-type'), expected, `${dir} ${type}`)
      t.deepEqual(body, latin, `${dir} ${type}: the file's bytes, not recoded`)
      t.truthy(sent.at(-1)?.['x-accel-redirect'], `${dir} ${type}: offloaded`)
      t.is(sent.at(-1)?.['x-accel-charset'], dir === 'utf8' ? 'utf-8' : undefined, `${dir} ${type}`)
    }
    t.notRegex(proxy.logs(), /charset/, 'no "unknown charset … to override" nor "no charset_map" in nginx\'s log')
  } finally {
    logProxiesIfFailed(t, [proxy])
    await proxy.stop()
    server.closeAllConnections()
    server.close()
    await rm(root, { recursive: true, force: true })
  }
})
