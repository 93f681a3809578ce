// koa-downloads streaming: downloads() + PathFile confined to the fixture root (Node sends the
// bytes); S3 objects through StorageFile (flydrive S3 disk) and remote URLs through HttpFile.
import { createServer } from 'node:http'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'
import Koa from 'koa'
import { StorageFile } from '../../adapters/flydrive/index.ts'
import { HttpFile } from '../../adapters/http/index.ts'
import { downloads, PathFile } from '../../source/index.ts'
import { announce, benchRoot, fileName } from './shared.ts'
import { remoteSources } from './sources.ts'

const root = benchRoot()
const { s3, origin } = remoteSources()
const disk = s3 === undefined ? undefined : new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false }))
const app = new Koa()
app.silent = true
app.use(downloads())
app.use((ctx) => {
  const name = fileName(ctx.path)
  if (name === undefined) return
  if (name.startsWith('s3/') && disk !== undefined) ctx.body = new StorageFile(disk, name.slice(3))
  else if (name.startsWith('remote/') && origin !== undefined) ctx.body = new HttpFile(origin + name.slice(7))
  else ctx.body = new PathFile(name, { root })
})
announce(createServer(app.callback()))
