// Peer: Koa + koa-send (@koa/send). No Range, no 304 (Koa itself answers no conditionals).
import { createServer } from 'node:http'
import Koa from 'koa'
import send from 'koa-send'
import { announce, benchRoot, fileName } from './shared.ts'

const root = benchRoot()
const app = new Koa()
app.silent = true
app.use(async (ctx) => {
  const name = fileName(ctx.path)
  if (name !== undefined) await send(ctx, name, { root })
})
announce(createServer(app.callback()))
