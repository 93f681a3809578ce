import { once } from 'node:events'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

// The generated locations pasted into a server that has the usual static-asset regex location.
// nginx checks regex locations after the longest prefix match unless that prefix is `^~`: without
// it, the redirected `/protected/photo.jpg` went to the regex location and was served from the
// site's static root — another file, under the download's name.
const { available, test: nginxTest } = proxyTest('nginx')

let state: { root: string, origin: Origin, server: Server, proxy: RunningProxy } | undefined
const ctx = (): NonNullable<typeof state> => {
  if (state === undefined) throw new Error('nginx did not start (see test.before)')
  return state
}

if (available) {
  test.before(async () => {
    const root = await mkdtemp(join(tmpdir(), 'kd-nginx-regex-'))
    await mkdir(join(root, 'protected'))
    await writeFile(join(root, 'protected', 'photo.jpg'), 'the protected photo\n')
    // what the regex location would serve instead: the site's static root, same URI
    for (const dir of ['protected', '_origin']) {
      await mkdir(join(root, 'static', dir), { recursive: true })
      await writeFile(join(root, 'static', dir, 'photo.jpg'), 'DECOY from the static root\n')
    }
    makeWorldReadable(root)
    const origin = await startOrigin()
    origin.put('/bucket/photo.jpg', { bytes: 'the origin photo\n' })
    origin.put('/elsewhere/photo.jpg', { bytes: 'the photo of any origin\n' })
    const rules = [
      nginx({ sourceDir: join(root, 'protected'), destinationUrl: '/protected/' }),
      nginx({ sourceUrl: `${origin.url}/bucket/`, destinationUrl: '/_origin/' }),
      nginx({ remote: true, destinationUrl: '/_remote/' })
    ]
    const app = new Koa()
    app.use(downloads({ rules }))
    app.use((c) => {
      // app URLs without the file's extension: only the redirected URI ends in .jpg
      if (c.path === '/photos/local') c.body = download(new PathFile('photo.jpg', { root: join(root, 'protected') }))
      if (c.path === '/photos/remote') c.body = download(new HttpFile(`${origin.url}/bucket/photo.jpg`))
      if (c.path === '/photos/any') c.body = download(new HttpFile(`${origin.url}/elsewhere/photo.jpg?X-Amz-Signature=abc`))
    })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const appPort = (server.address() as AddressInfo).port
    const proxy = await startProxy('nginx', {
      rules,
      appPort,
      configFor: ({ port, prefix }) => renderServerConfig('nginx', rules, { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
        .replace(/^( *)(location \/ \{.*\n)/m, `$1$2$1location ~* \\.(jpg|png|css)$ { root ${JSON.stringify(join(root, 'static'))}; expires 30d; }\n`)
    })
    state = { root, origin, server, proxy }
  })
  test.afterEach.always((t) => { logProxiesIfFailed(t, state === undefined ? [] : [state.proxy]) })
  test.after.always(async () => {
    await state?.proxy.stop()
    state?.server.closeAllConnections()
    state?.server.close()
    await state?.origin.stop()
    if (state !== undefined) await rm(state.root, { recursive: true, force: true })
  })
}

nginxTest('nginx: a site regex location (\\.jpg$) does not take the redirected URI: the offloaded file is the authorised one', async (t) => {
  const { proxy } = ctx()
  t.true(proxy.config.includes('location ~* \\.(jpg|png|css)$'), 'the regex location is in the running config')
  const local = await fetch(proxy.url + '/photos/local')
  t.is(await local.text(), 'the protected photo\n')
  t.is(local.status, 200)
  t.is(local.headers.get('content-disposition'), 'attachment; filename="photo.jpg"')
  // the internal location still refuses a direct request
  const direct = await fetch(proxy.url + '/protected/photo.jpg')
  t.false((await direct.text()).includes('protected photo'))
  t.is(direct.status, 404)
})

nginxTest('nginx: a site regex location (\\.jpg$) does not take the redirected URI of a fixed-origin rule: the origin\'s file', async (t) => {
  const { proxy } = ctx()
  const remote = await fetch(proxy.url + '/photos/remote')
  t.is(await remote.text(), 'the origin photo\n')
  t.is(remote.status, 200)
  t.is(remote.headers.get('content-disposition'), 'attachment; filename="photo.jpg"')
})

nginxTest('nginx: a site regex location that comes first does not take the redirected URI of a remote: true rule (its regex is nested in a ^~ location)', async (t) => {
  const { proxy } = ctx()
  t.true(proxy.config.indexOf('location ~* \\.(jpg|png|css)$') < proxy.config.indexOf('/_remote/'), 'the site\'s regex location stands before the generated ones')
  const any = await fetch(proxy.url + '/photos/any')
  t.is(await any.text(), 'the photo of any origin\n')
  t.is(any.status, 200)
  t.is(any.headers.get('content-disposition'), 'attachment; filename="photo.jpg"')
  // a value the pattern does not take, and a client's own request: 404, never a file of the server
  t.is((await fetch(proxy.url + '/_remote/photo.jpg')).status, 404)
})
