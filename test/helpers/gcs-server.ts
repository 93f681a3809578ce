import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { RequestLog, resetIfDown, sendWithFault } from './request-log.ts'

interface StoredObject { bytes: Buffer, contentType: string, updated: Date, generation: string }

export interface GcsServer {
  /** `http://127.0.0.1:<port>`: the `apiEndpoint` of `new Storage({ apiEndpoint, projectId })`. */
  endpoint: string
  bucket: string
  log: RequestLog
  put (name: string, bytes: string | Uint8Array, contentType?: string): void
  remove (name: string): void
  stop (): Promise<void>
}

/**
 * A read-only GCS JSON-API stub (reference/test-infra.md §8): object metadata (with `generation`),
 * media downloads with Range and `generation`, and the XML-style `/<bucket>/<object>` path that
 * public and signed URLs use. Every request
 * is logged, and faults (reset, mid-body drop, stall) are injected through `log.fault`.
 */
export async function startGcsServer (bucket = 'test-bucket'): Promise<GcsServer> {
  const objects = new Map<string, StoredObject>()
  const log = new RequestLog()
  let generation = 1_700_000_000_000_000

  const server = createServer((req, res) => {
    log.record(req, res)
    if (resetIfDown(req, log.fault)) return
    const url = new URL(req.url ?? '/', 'http://stub')
    const json = /^(?:\/download)?\/storage\/v1\/b\/([^/]+)\/o\/([^/]+)$/.exec(url.pathname)
    const xml = /^\/([^/]+)\/(.+)$/.exec(url.pathname)
    let name: string | undefined
    let media = false
    if (json !== null && decodeURIComponent(json[1] ?? '') === bucket) {
      name = decodeURIComponent(json[2] ?? '')
      media = url.searchParams.get('alt') === 'media'
    } else if (json === null && xml !== null && decodeURIComponent(xml[1] ?? '') === bucket) {
      name = decodeURIComponent(xml[2] ?? '')
      media = true
    }
    // `?generation=` asks for that generation: like a bucket without object versioning, the stub
    // keeps only the live one, so any other is missing (404), as GCS answers.
    const wanted = url.searchParams.get('generation')
    const object = name === undefined ? undefined : objects.get(name)
    if (object === undefined || name === undefined || (wanted !== null && wanted !== object.generation)) {
      sendJson(res, 404, { error: { code: 404, message: 'No such object', errors: [{ reason: 'notFound' }] } })
      return
    }
    if (!media) {
      sendJson(res, 200, {
        kind: 'storage#object',
        name,
        bucket,
        size: String(object.bytes.length),
        contentType: object.contentType,
        md5Hash: createHash('md5').update(object.bytes).digest('base64'),
        etag: `C${object.generation}EAE=`,
        updated: object.updated.toISOString(),
        generation: object.generation
      })
      return
    }
    sendMedia(req, res, object, log)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    log,
    put (name, bytes, contentType = 'application/octet-stream') {
      generation += 1
      objects.set(name, { bytes: Buffer.from(bytes), contentType, updated: new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000), generation: String(generation) })
    },
    remove (name) {
      objects.delete(name)
    },
    async stop () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

function sendMedia (req: IncomingMessage, res: ServerResponse, object: StoredObject, log: RequestLog): void {
  const size = object.bytes.length
  const match = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
  let body = object.bytes
  res.setHeader('Content-Type', object.contentType)
  res.setHeader('x-goog-generation', object.generation)
  if (match !== null) {
    const start = Number(match[1])
    const end = Math.min(match[2] === '' || match[2] === undefined ? size - 1 : Number(match[2]), size - 1)
    if (start >= size || end < start) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end()
      return
    }
    body = object.bytes.subarray(start, end + 1)
    res.statusCode = 206
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`)
  } else {
    res.statusCode = 200
    res.setHeader('x-goog-hash', `md5=${createHash('md5').update(object.bytes).digest('base64')}`)
  }
  res.setHeader('Content-Length', body.length)
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  sendWithFault(res, body, log.fault)
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body)
}
