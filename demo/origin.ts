// The "remote" origin of the demo: a second, tiny koa-downloads app on a loopback port that serves
// demo/files over HTTP with ranges and validators, so that HttpFile and the proxies' `/_origin/`
// locations have something real to talk to without any network access.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import { download, downloads, PathFile } from '../source/index.ts'

export interface DemoOrigin {
  /** `http://127.0.0.1:<port>/`: the demo files are below `files/`. */
  url: string
  stop: () => Promise<void>
}

export async function startOrigin (filesDir: string): Promise<DemoOrigin> {
  const app = new Koa()
  app.use(downloads())
  app.use((ctx) => {
    // ctx.path is still percent-encoded; a name that does not decode is simply not found.
    const match = /^\/files\/([^/]+)$/.exec(ctx.path)
    let name: string | undefined
    try { name = match?.[1] === undefined ? undefined : decodeURIComponent(match[1]) } catch {}
    // The origin answers like a plain file server: inline, no Content-Disposition games.
    if (name !== undefined) ctx.body = download(new PathFile(name, { root: filesDir }), { attachment: false })
  })
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => { resolve(s) })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
