// The baseline of reference/performance.md: Koa + a bare fs.createReadStream that sets only
// Content-Type/Content-Length and handles one `bytes=a-b` range. No validators, no preconditions.
// For S3 objects and remote URLs, the same minimal handler pipes GetObject / an HTTP GET instead.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer, get } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { extname, join } from 'node:path'
import type { Readable } from 'node:stream'
import Koa from 'koa'
import type { Context } from 'koa'
import { announce, benchRoot, fileName } from './shared.ts'
import { remoteSources } from './sources.ts'

const root = benchRoot()
const { s3, origin } = await remoteSources()
const GetObjectCommand = s3 === undefined ? undefined : (await import('@aws-sdk/client-s3')).GetObjectCommand
const app = new Koa()
app.silent = true
app.use(async (ctx) => {
  const name = fileName(ctx.path)
  if (name === undefined) return
  const range = ctx.get('Range')
  if (name.startsWith('s3/') && s3 !== undefined && GetObjectCommand !== undefined) {
    const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: name.slice(3), Range: range === '' ? undefined : range }))
    relay(ctx, object.ContentRange === undefined ? 200 : 206, object.ContentLength, object.ContentRange, object.Body as Readable)
    return
  }
  if (name.startsWith('remote/') && origin !== undefined) {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      get(origin + name.slice(7), { headers: range === '' ? {} : { range } }, resolve).on('error', reject)
    })
    const length = response.headers['content-length']
    relay(ctx, response.statusCode ?? 502, length === undefined ? undefined : Number(length), response.headers['content-range'], response)
    return
  }
  const path = join(root, name)
  const { size } = await stat(path)
  ctx.type = extname(path)
  const match = /^bytes=(\d+)-(\d+)$/.exec(range)
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

function relay (ctx: Context, status: number, length: number | undefined, contentRange: string | undefined, body: Readable): void {
  ctx.status = status
  ctx.type = 'application/octet-stream'
  if (contentRange !== undefined) ctx.set('Content-Range', contentRange)
  ctx.body = body
  if (length !== undefined) ctx.length = length
}

announce(createServer(app.callback()))
