import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import S3rver from '@20minutes/s3rver'
import { RequestLog, resetIfDown, sendWithFault } from './request-log.ts'

export interface S3Server {
  /** The logging proxy in front of s3rver: give this to the S3 client. */
  endpoint: string
  /** s3rver itself (no log, no faults). */
  directEndpoint: string
  bucket: string
  log: RequestLog
  /** A client for `endpoint` (one attempt: faults are not retried away). */
  client: S3Client
  put (key: string, bytes: string | Uint8Array, contentType?: string): Promise<void>
  stop (): Promise<void>
}

export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }

export function s3Client (endpoint: string, options: { maxAttempts?: number } = {}): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_CREDENTIALS, maxAttempts: options.maxAttempts ?? 1 })
}

/**
 * @20minutes/s3rver 5.0.0 (checks SigV4 signatures on object operations) in-process on loopback,
 * behind a small proxy that logs every request and injects faults (reference/test-infra.md §7).
 * The proxy forwards the Host header untouched, so signatures made for the proxy verify.
 */
export async function startS3 (bucket = 'test-bucket'): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'kd-s3-'))
  const s3rver = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket, configs: [] }] })
  const { port: s3Port } = await s3rver.run()
  const log = new RequestLog()

  const proxy = createServer((req, res) => {
    log.record(req, res)
    if (resetIfDown(req, log.fault)) return
    const fault = req.method === 'GET' ? log.fault : undefined
    // Accepted, never answered: the request stays open until the client goes away.
    if (fault === 'hang') return
    const upstream = request({ host: '127.0.0.1', port: s3Port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      if (fault === 'hold') {
        const chunks: Buffer[] = []
        up.on('data', (chunk: Buffer) => chunks.push(chunk))
        up.on('end', () => { sendWithFault(res, Buffer.concat(chunks), 'hold') })
        return
      }
      const length = Number(up.headers['content-length'] ?? 0)
      let sent = 0
      if (fault === 'drop' || fault === 'stall') {
        const limit = fault === 'drop' ? Math.floor(length / 2) : Math.min(1024, Math.floor(length / 2))
        up.on('data', (chunk: Buffer) => {
          const part = chunk.subarray(0, Math.max(0, limit - sent))
          sent += part.length
          if (part.length > 0) res.write(part)
          if (sent < limit) return
          if (fault === 'drop') {
            up.destroy()
            res.write('', () => res.socket?.destroy())
          } else {
            up.pause()
          }
        })
        return
      }
      up.pipe(res)
    })
    upstream.on('error', () => res.socket?.destroy())
    res.on('close', () => upstream.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  const client = s3Client(endpoint)
  const direct = s3Client(`http://127.0.0.1:${s3Port}`)
  return {
    endpoint,
    directEndpoint: `http://127.0.0.1:${s3Port}`,
    bucket,
    log,
    client,
    async put (key, bytes, contentType = 'application/octet-stream') {
      await direct.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: typeof bytes === 'string' ? Buffer.from(bytes) : bytes, ContentType: contentType }))
    },
    async stop () {
      proxy.closeAllConnections()
      await new Promise<void>((resolve) => proxy.close(() => resolve()))
      client.destroy()
      direct.destroy()
      await s3rver.close()
      await rm(directory, { recursive: true, force: true })
    }
  }
}
