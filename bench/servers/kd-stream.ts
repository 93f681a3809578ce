// koa-downloads streaming: downloads() + PathFile confined to the fixture root (Node sends the
// bytes). Started a second time with S3_ENDPOINT/ORIGIN_URL for the storage workloads: S3 objects
// through StorageFile (flydrive S3 disk) under /files/s3/, remote URLs through HttpFile under
// /files/remote/ (imported only then, so that the local-file server's memory is not the SDK's).
import { createServer } from 'node:http'
import Koa from 'koa'
import type { DownloadFile } from '../../source/index.ts'
import { adapters, library } from './kd-library.ts'
import { announce, benchRoot, fileName } from './shared.ts'
import { remoteSources } from './sources.ts'

const { downloads, PathFile, StatCache } = library
const root = benchRoot()
// KD_FOLLOW_SYMLINKS=1: the opt-in lexical-only confinement (target kd-follow)
const followSymlinks = process.env.KD_FOLLOW_SYMLINKS === '1'
// KD_STAT_CACHE=1: one StatCache (its default maxAge, 1 s) shared by every PathFile (target kd-cache)
const statCache = process.env.KD_STAT_CACHE === '1' ? new StatCache() : undefined
// KD_CHUNK_SIZE=65536: serve()'s chunkSize option (a slow-clients variant)
const chunkSize = process.env.KD_CHUNK_SIZE === undefined ? undefined : Number(process.env.KD_CHUNK_SIZE)
const remote = await remoteFiles()
const app = new Koa()
app.silent = true
app.use(downloads({ chunkSize }))
app.use((ctx) => {
  const name = fileName(ctx.path)
  if (name !== undefined) ctx.body = remote?.(name) ?? new PathFile(name, statCache === undefined ? { root, followSymlinks } : { root, followSymlinks, statCache })
})
announce(createServer(app.callback()))

async function remoteFiles (): Promise<((name: string) => DownloadFile | undefined) | undefined> {
  const { s3, origin } = await remoteSources()
  if (s3 === undefined && origin === undefined) return undefined
  const [{ Disk }, { S3Driver }, [{ StorageFile }, { HttpFile }]] = await Promise.all([import('flydrive'), import('flydrive/drivers/s3'), adapters()])
  const disk = s3 === undefined ? undefined : new Disk(new S3Driver({ client: s3.client, bucket: s3.bucket, visibility: 'private', supportsACL: false }))
  return (name) => {
    if (name.startsWith('s3/') && disk !== undefined) return new StorageFile(disk, name.slice(3))
    if (name.startsWith('remote/') && origin !== undefined) return new HttpFile(origin + name.slice(7))
    return undefined
  }
}
