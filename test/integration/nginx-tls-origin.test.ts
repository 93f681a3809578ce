import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:https'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { logProxiesIfFailed, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

// An https origin whose certificate a CA of the test's own signed (for localhost): the generated
// nginx config verifies origins' certificates, as the app's own requests do, so nginx refuses it
// (502) with the system's CA bundle, and serves it once told to trust that CA.
const { available, test: nginxTest } = proxyTest('nginx')
const bytes = Buffer.from('from the https origin\n')
let tls = ''

/** A CA and a certificate for localhost (and 127.0.0.1) signed by it, made with openssl in `dir`. */
function makeCertificates (dir: string): void {
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=koa-downloads test CA', '-keyout', 'ca-key.pem', '-out', 'ca.pem')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'key.pem', '-out', 'origin.csr')
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  openssl('x509', '-req', '-in', 'origin.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'cert.pem')
}

let origin: Server | undefined
const running: Array<{ app: import('node:http').Server, proxy: RunningProxy }> = []
const urls: Record<'system' | 'trusted', string> = { system: '', trusted: '' }
let sni: Array<string | false> = []

test.before(async () => {
  if (!available) return
  tls = await mkdtemp(join(tmpdir(), 'kd-tls-origin-'))
  makeCertificates(tls)
  origin = createServer({ key: readFileSync(join(tls, 'key.pem')), cert: readFileSync(join(tls, 'cert.pem')) }, (req, res) => {
    sni.push((req.socket as { servername?: string | false }).servername ?? false)
    if (req.url !== '/bucket/file.txt') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': bytes.length }).end(bytes)
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  // By name: SNI carries host names only (RFC 6066), never an address.
  const base = `https://localhost:${(origin.address() as AddressInfo).port}/bucket/`
  const rules = [nginx({ sourceUrl: base, destinationUrl: '/_origin/' })]
  for (const kind of ['system', 'trusted'] as const) {
    const koa = new Koa()
    koa.silent = true
    koa.use(downloads({ rules }))
    koa.use((ctx) => { ctx.body = download(new HttpFile(`${base}file.txt`)) })
    const app = koa.listen(0, '127.0.0.1')
    await once(app, 'listening')
    const appPort = (app.address() as AddressInfo).port
    const proxy = await startProxy('nginx', {
      rules,
      appPort,
      // 'system': the config as `koa-downloads config nginx` prints it; 'trusted': with the test's
      // CA as the CA bundle (copied where nginx's worker may read it).
      configFor: kind === 'system'
        ? undefined
        : ({ port, prefix }) => {
            copyFileSync(join(tls, 'ca.pem'), join(prefix, 'origin-ca.pem'))
            return renderServerConfig('nginx', rules, { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix }, trustedCertificate: join(prefix, 'origin-ca.pem') })
          }
    })
    running.push({ app, proxy })
    urls[kind] = proxy.url
  }
})
test.afterEach.always((t) => { logProxiesIfFailed(t, running.map((r) => r.proxy)) })
test.after.always(async () => {
  for (const { app, proxy } of running) {
    await proxy.stop()
    app.closeAllConnections()
    app.close()
  }
  origin?.closeAllConnections()
  origin?.close()
  if (tls !== '') await rm(tls, { recursive: true, force: true })
})

nginxTest('nginx, https sourceUrl: an origin whose certificate the CA bundle does not vouch for is refused (502), never served', async (t) => {
  sni = []
  const res = await rawRequest(`${urls.system}/file.txt`)
  t.is(res.status, 502)
  t.false(res.body.includes(bytes))
})

nginxTest('nginx, https sourceUrl: with trustedCertificate naming its CA, the origin is served, its host name sent (SNI)', async (t) => {
  sni = []
  const res = await rawRequest(`${urls.trusted}/file.txt`)
  t.is(res.status, 200)
  t.deepEqual(res.body, bytes)
  t.deepEqual(sni, ['localhost'])
})
