import { mkdirSync, readFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import type { Server } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import type { Fixtures } from './fixtures.ts'
import { nginxPreamble } from './nginx-config.ts'
import { startNginx, startNode } from './processes.ts'
import type { Child } from './processes.ts'
import { freePort } from './targets.ts'

export const BUCKET = 'bench'
export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }

/** Bytes that went from the storage to its clients, through the counting proxy. */
export interface ByteCounter { bytes: number, connections: number }

export interface Storage {
  /** the counting proxy in front of s3rver: what the servers use as their S3 endpoint */
  s3Endpoint: string
  /** a static origin (nginx) for HttpFile */
  originUrl: string
  counter: ByteCounter
  stop (): Promise<void>
}

const s3rverBin = fileURLToPath(new URL('../../node_modules/s3rver/bin/s3rver.js', import.meta.url))

/**
 * s3rver 3.7.1 (a child process) holding medium.bin and large.bin in bucket `bench`, behind a TCP
 * proxy that counts the bytes the storage sends (so that a ranged read can be checked to move only
 * its range); and a static nginx origin for remote URLs (HttpFile).
 */
export async function startStorage (fixtures: Fixtures): Promise<Storage> {
  const data = join(fixtures.dir, 's3')
  mkdirSync(data)
  const s3 = await startNode('s3rver', s3rverBin, {}, join(fixtures.dir, 'logs'), [], ['-d', data, '-a', '127.0.0.1', '-p', '0', '--configure-bucket', BUCKET], /listening on [^:]+:(\d+)/)
  const client = new S3Client({ endpoint: `http://127.0.0.1:${s3.port}`, region: 'us-east-1', forcePathStyle: true, credentials: S3_CREDENTIALS })
  for (const name of ['medium.bin', 'large.bin']) {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: name, Body: readFileSync(join(fixtures.root, name)), ContentType: 'application/octet-stream' }))
  }
  client.destroy()
  const counter: ByteCounter = { bytes: 0, connections: 0 }
  const proxy = await countingProxy(s3.port, counter)
  const proxyAddress = proxy.address()
  const proxyPort = typeof proxyAddress === 'object' && proxyAddress !== null ? proxyAddress.port : 0

  const prefix = join(fixtures.dir, 'origin')
  mkdirSync(join(prefix, 'tmp'), { recursive: true })
  const port = await freePort()
  const origin: Child = await startNginx(prefix, originConfig(prefix, fixtures.root, port), port)
  return {
    s3Endpoint: `http://127.0.0.1:${proxyPort}`,
    originUrl: `http://127.0.0.1:${port}/`,
    counter,
    async stop () {
      await new Promise<void>((resolve) => { proxy.close(() => { resolve() }) })
      await Promise.all([s3.stop(), origin.stop()])
    }
  }
}

async function countingProxy (upstreamPort: number, counter: ByteCounter): Promise<Server> {
  const server = createServer((client) => {
    counter.connections++
    const upstream = createConnection(upstreamPort, '127.0.0.1')
    upstream.on('data', (chunk: Buffer) => { counter.bytes += chunk.length })
    client.pipe(upstream).pipe(client)
    const end = (): void => { client.destroy(); upstream.destroy() }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return server
}

function originConfig (prefix: string, root: string, port: number): string {
  return [
    ...nginxPreamble(prefix),
    `  server { listen 127.0.0.1:${port}; location / { root ${root}; } }`,
    '}',
    ''
  ].join('\n')
}
