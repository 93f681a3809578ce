import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { downloads } from '../../source/downloads.ts'
import { PathFile } from '../../source/path-file.ts'
import type { ServerName } from '../../source/server-config.ts'
import { dirRuleFor, makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'

// Directory names the config languages quote differently: a backslash is an escape character in
// nginx and Apache strings (`\\` is one backslash) but literal in lighttpd and Caddy strings, whose
// only escape is `\"`. The generated config must name the same directory the app offloads from, so
// the real proxy serves the file (not a 403/404 for a directory with two backslashes).
// lighttpd cannot end a string with a backslash: that case is refused (test/server-config.test.ts).
const names: Record<ServerName, string[]> = {
  nginx: ['we\\ird', 'end\\'],
  apache: ['we\\ird', 'end\\', 'cost $5'],
  lighttpd: ['we\\ird', 'a \\"q\\"'],
  caddy: ['we\\ird', 'end\\', 'a \\"q\\"']
}

for (const server of ['nginx', 'apache', 'lighttpd', 'caddy'] as const) {
  for (const name of names[server]) {
    proxyTest(server).test(`config paths: ${server} serves the file from a directory named ${JSON.stringify(name)} through the generated config`, async (t) => {
      const root = await mkdtemp(join(tmpdir(), 'kd-paths-'))
      const dir = join(root, name)
      await mkdir(dir)
      await writeFile(join(dir, 'a.txt'), `inside ${name}\n`)
      // the same name with the backslashes doubled: where a mis-quoted config would point
      await mkdir(join(root, name.replaceAll('\\', '\\\\')), { recursive: true })
      makeWorldReadable(root)
      const rule = dirRuleFor[server](dir)
      const app = new Koa()
      app.use(downloads({ rules: [rule] }))
      app.use((ctx) => { ctx.body = new PathFile('a.txt', { root: dir }) })
      const listening = app.listen(0, '127.0.0.1')
      await new Promise<void>((resolve) => listening.once('listening', resolve))
      const proxy = await startProxy(server, { rules: [rule], appPort: (listening.address() as AddressInfo).port })
      try {
        const direct = await fetch(`http://127.0.0.1:${(listening.address() as AddressInfo).port}/get`)
        await direct.arrayBuffer()
        t.truthy(direct.headers.get(server === 'nginx' || server === 'caddy' ? 'x-accel-redirect' : 'x-sendfile'), 'the app offloads it')
        const response = await fetch(proxy.url + '/get')
        const body = await response.text()
        if (response.status !== 200) t.log(proxy.logs(), proxy.config)
        t.is(response.status, 200)
        t.is(body, `inside ${name}\n`)
        t.is(response.headers.get('x-accel-redirect') ?? response.headers.get('x-sendfile'), null)
      } finally {
        await proxy.stop()
        listening.close()
        await rm(root, { recursive: true, force: true })
      }
    })
  }
}
