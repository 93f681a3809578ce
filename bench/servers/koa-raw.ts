// The baseline of reference/performance.md: Koa + a bare fs.createReadStream that sets only
// Content-Type/Content-Length and handles one `bytes=a-b` range. No validators, no preconditions.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { extname, join } from 'node:path'
import Koa from 'koa'
import { announce, benchRoot, fileName } from './shared.ts'

const root = benchRoot()
const app = new Koa()
app.silent = true
app.use(async (ctx) => {
  const name = fileName(ctx.path)
  if (name === undefined) return
  const path = join(root, name)
  const { size } = await stat(path)
  ctx.type = extname(path)
  const match = /^bytes=(\d+)-(\d+)$/.exec(ctx.get('Range'))
  if (match !== null) {
    const start = Number(match[1])
    const end = Math.min(Number(match[2]), size - 1)
    ctx.status = 206
    ctx.set('Content-Range', `bytes ${start}-${end}/${size}`)
    ctx.body = createReadStream(path, { start, end })
    ctx.length = end - start + 1
    return
  }
  ctx.body = createReadStream(path)
  ctx.length = size
})
announce(createServer(app.callback()))
