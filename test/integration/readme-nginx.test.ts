import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Router from '@koa/router'
import Koa from 'koa'
import ava from 'ava'
import { downloads, nginx, PathFile, renderServerConfig } from '../../source/index.ts'
import { makeWorldReadable, nginxConfig, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

// The README's "complete nginx example", run as written (only the addresses and the directory are
// put in place) in front of the README's offload app: the pasteable block must really work.
const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
const match = /<!-- readme-nginx -->\s*```nginx\n([\s\S]*?)```/.exec(readme)
if (match?.[1] === undefined) throw new Error('README.md: the <!-- readme-nginx --> nginx block is missing')
const serverBlock = match[1]

const { test } = proxyTest('nginx')
const pdf = Buffer.from('%PDF-1.4\n% an invoice for März\n')
let root: string
let proxy: RunningProxy | undefined
let app: Server

ava.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-readme-'))
  await mkdir(join(root, 'private', 'invoices'), { recursive: true })
  await writeFile(join(root, 'private', 'invoices', 'März 2026.pdf'), pdf)
  makeWorldReadable(root) // nginx's workers run as nobody when the tests run as root
})

ava.after.always(async () => {
  await proxy?.stop()
  app?.close()
  await rm(root, { recursive: true, force: true })
})

test('README: the nginx location block and its error pages are what `koa-downloads config nginx` prints for the README rules', t => {
  const generated = renderServerConfig('nginx', [nginx({ sourceDir: '/srv/private', destinationUrl: '/protected/' })])
  // Everything after the snippet's two header lines: the location and the named error locations.
  const location = /\n\n(# nginx\(\{[\s\S]*)\n$/.exec(generated)?.[1] ?? ''
  t.regex(location, /location @koa_downloads_404 /)
  const indented = location.split('\n').map((line) => line === '' ? line : `    ${line}`).join('\n')
  t.true(serverBlock.includes(indented), `README block lacks:\n${indented}`)
})

test('README: the complete nginx example serves the README app\'s offloaded invoice through a real nginx', async t => {
  const privateDir = join(root, 'private')
  const rules = [nginx({ sourceDir: privateDir, destinationUrl: '/protected/' })]
  const koa = new Koa()
  const router = new Router()
  router.get('/invoices/:name', (ctx) => {
    ctx.body = new PathFile(ctx.params.name ?? '', { root: join(privateDir, 'invoices') })
  })
  koa.use(downloads({ rules }))
  koa.use(router.routes())
  app = koa.listen(0, '127.0.0.1')
  await new Promise((resolve) => app.once('listening', resolve))
  const appPort = (app.address() as AddressInfo).port

  proxy = await startProxy('nginx', {
    rules,
    appPort,
    configFor: ({ port, prefix }) => nginxConfig(prefix, [
      '  include /etc/nginx/mime.types;',
      `  access_log ${prefix}/access.log;`,
      serverBlock
        .replace('listen 80;', `listen 127.0.0.1:${port};`)
        .replace('proxy_pass http://127.0.0.1:3000;', `proxy_pass http://127.0.0.1:${appPort};`)
        .replace('alias /srv/private/;', `alias "${privateDir}/";`)
    ])
  })
  const response = await fetch(`${proxy.url}/invoices/${encodeURIComponent('März 2026.pdf')}`)
  t.is(response.status, 200)
  t.deepEqual(Buffer.from(await response.arrayBuffer()), pdf)
  t.is(response.headers.get('content-type'), 'application/pdf')
  t.is(response.headers.get('content-disposition'), 'attachment; filename="Marz 2026.pdf"; filename*=UTF-8\'\'M%C3%A4rz%202026.pdf')
  t.is(response.headers.get('x-accel-redirect'), null)
  const direct = await fetch(`${proxy.url}/protected/invoices/${encodeURIComponent('März 2026.pdf')}`)
  t.is(direct.status, 404, 'the internal location is not reachable from outside')
  const ranged = await fetch(`${proxy.url}/invoices/${encodeURIComponent('März 2026.pdf')}`, { headers: { Range: 'bytes=0-3' } })
  t.is(ranged.status, 206)
  t.is(await ranged.text(), '%PDF')
})
