// Peer: @fastify/send on Koa: its framework-free core returns { statusCode, headers, stream }.
import { createServer } from 'node:http'
import send from '@fastify/send'
import Koa from 'koa'
import { announce, benchRoot, fileName } from './shared.ts'

const root = benchRoot()
const app = new Koa()
app.silent = true
app.use(async (ctx) => {
  const name = fileName(ctx.path)
  if (name === undefined) return
  const { statusCode, headers, stream } = await send(ctx.req, name, { root })
  ctx.status = statusCode
  for (const [header, value] of Object.entries(headers)) {
    if (value !== undefined) ctx.set(header, typeof value === 'number' ? String(value) : value)
  }
  ctx.body = stream
})
announce(createServer(app.callback()))
