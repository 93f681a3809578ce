// The offload target: a hand-written X-Accel-Redirect handler with no stat and no open. nginx
// serves /protected/ from the fixture directory.
import { createServer } from 'node:http'
import Koa from 'koa'
import { announce, fileName } from './shared.ts'

const app = new Koa()
app.silent = true
app.use((ctx) => {
  const name = fileName(ctx.path)
  if (name === undefined) return
  ctx.set('X-Accel-Redirect', '/protected/' + encodeURIComponent(name))
  ctx.set('Content-Disposition', 'attachment')
  ctx.type = 'application/octet-stream'
  ctx.body = ''
})
announce(createServer(app.callback()))
