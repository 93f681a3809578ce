import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
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
      const range = req.method === 'GET' ? s3Range(req.headers.range, up.statusCode, up.headers['content-range']) : undefined
      if (range !== undefined) {
        up.destroy()
        answerRange(res, up.headers, req.url ?? '/', range, direct).catch(() => res.socket?.destroy())
        return
      }
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

type RangeAnswer = { start: number, end: number, size: number } | { unsatisfiable: true, size: number }

/**
 * S3's answer to a ranged GetObject that s3rver 5.0.0 gets wrong in a way no client can work around,
 * else undefined. s3rver answers `bytes=0-0` with the whole object (it takes the end 0 for none), and
 * any range of an empty object with `Content-Range: bytes 0-0/0` and a Content-Length of 1 that no
 * byte follows, a response that never ends; S3 sends the first byte, and 416 InvalidRange for any
 * range of an empty object. Its other misreadings (`bytes=-n` as `bytes=0-n`, `bytes=5-0` as
 * `bytes=5-`) are left as they are: an adapter that forwards a client's range must cope with a
 * storage that sends another part.
 */
function s3Range (asked: string | undefined, status: number | undefined, contentRange: string | undefined): RangeAnswer | undefined {
  const range = /^bytes=(\d*)-(\d*)$/.exec(asked ?? '')
  const sent = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange ?? '')
  if (status !== 206 || range === null || sent === null) return undefined
  const size = Number(sent[3])
  if (size === 0) return { unsatisfiable: true, size }
  if (range[1] === '' || Number(range[1]) !== 0 || range[2] === '' || Number(range[2]) !== 0 || Number(sent[2]) === 0) return undefined
  return { start: 0, end: 0, size }
}

/** Answers a GetObject with `range` of the object at `url` (path style), its bytes read whole through `client`. */
async function answerRange (res: ServerResponse, headers: IncomingHttpHeaders, url: string, range: RangeAnswer, client: S3Client): Promise<void> {
  if ('unsatisfiable' in range) {
    const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>'
    res.writeHead(416, { 'Content-Type': 'application/xml', 'Content-Range': `bytes */${range.size}`, 'Content-Length': Buffer.byteLength(body) }).end(body)
    return
  }
  const [, bucket = '', ...key] = new URL(url, 'http://s3').pathname.split('/')
  const object = await client.send(new GetObjectCommand({ Bucket: decodeURIComponent(bucket), Key: decodeURIComponent(key.join('/')) }))
  const part = Buffer.from(await (object.Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray()).subarray(range.start, range.end + 1)
  const { 'content-length': _, 'content-range': __, connection: ___, 'keep-alive': ____, ...kept } = headers
  res.writeHead(206, { ...kept, 'Content-Range': `bytes ${range.start}-${range.end}/${range.size}`, 'Content-Length': part.length }).end(part)
}
