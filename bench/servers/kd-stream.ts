// koa-downloads streaming: downloads() + PathFile confined to the fixture root (Node sends the bytes).
import { createServer } from 'node:http'
import Koa from 'koa'
import { downloads, PathFile } from '../../source/index.ts'
import { announce, benchRoot, fileName } from './shared.ts'

const root = benchRoot()
const app = new Koa()
app.silent = true
app.use(downloads())
app.use((ctx) => {
  const name = fileName(ctx.path)
  if (name !== undefined) ctx.body = new PathFile(name, { root })
})
announce(createServer(app.callback()))
