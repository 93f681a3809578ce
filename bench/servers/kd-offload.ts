// koa-downloads with an nginx() rule: the app authorises and answers X-Accel-Redirect, nginx sends
// the bytes from the `location /protected/` that renderServerConfig() generates for the same rule.
import { createServer } from 'node:http'
import Koa from 'koa'
import { library } from './kd-library.ts'
import { announce, benchRoot, fileName } from './shared.ts'

const { downloads, nginx, PathFile } = library
const root = benchRoot()
// KD_FOLLOW_SYMLINKS=1: the opt-in lexical-only confinement (target kd-offload-follow)
const followSymlinks = process.env.KD_FOLLOW_SYMLINKS === '1'
// KD_PROXY_REFUSES_SYMLINKS=1: nginx refuses symlinks itself, in its own location (target kd-offload-refuse)
const refuse = process.env.KD_PROXY_REFUSES_SYMLINKS === '1'
const app = new Koa()
app.silent = true
app.use(downloads({ rules: [refuse ? nginx({ sourceDir: root, destinationUrl: '/protected-refuse/', proxyRefusesSymlinks: true }) : nginx({ sourceDir: root, destinationUrl: '/protected/' })] }))
app.use((ctx) => {
  const name = fileName(ctx.path)
  if (name !== undefined) ctx.body = new PathFile(name, { root, followSymlinks })
})
announce(createServer(app.callback()))
