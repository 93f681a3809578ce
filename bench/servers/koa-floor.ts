// The ceiling of any Koa middleware: Koa answering from memory, with no file I/O at all — the 4 KiB
// fixture read once at startup, a fixed ETag, a 304 when If-None-Match matches it. Not a peer: it
// shows what Koa itself costs per request, the part no download middleware can win back.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import Koa from 'koa'
import { announce, benchRoot, fileName } from './shared.ts'

const root = benchRoot()
const small = readFileSync(join(root, 'small.bin'))
const etag = '"floor"'
const app = new Koa()
app.silent = true
app.use((ctx) => {
  if (fileName(ctx.path) !== 'small.bin') return
  ctx.set('ETag', etag)
  if (ctx.get('If-None-Match') === etag) {
    ctx.status = 304
    return
  }
  ctx.type = 'application/octet-stream'
  ctx.body = small
})
announce(createServer(app.callback()))
