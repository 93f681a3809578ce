import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import { gunzipSync } from 'node:zlib'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { RequestLog, resetIfDown, sendWithFault } from './request-log.ts'

interface StoredObject { bytes: Buffer, contentType: string, contentEncoding: string | undefined, updated: Date, generation: string, fields?: Record<string, unknown>, media?: MediaQuirks }

/** How the stub's media reads of one object differ from GCS's. */
export interface MediaQuirks {
  /** Only a CRC32C in `x-goog-hash`, and no `md5Hash` in the metadata: a composite object. */
  composite?: boolean
  /** One byte in the middle of the body is changed (the length and the hashes stay those of the object). */
  corrupt?: boolean
}

export interface GcsServer {
  /** `http://127.0.0.1:<port>`: the `apiEndpoint` of `new Storage({ apiEndpoint, projectId })`. */
  endpoint: string
  bucket: string
  log: RequestLog
  /** `contentEncoding`: the object's stored coding (metadata `contentEncoding`), e.g. `'gzip'`. */
  put (name: string, bytes: string | Uint8Array, contentType?: string, contentEncoding?: string): void
  remove (name: string): void
  /** Metadata fields the stub answers for `name` instead of its own (`{ size: null }`: what a proxy or another stub may send). */
  setFields (name: string, fields: Record<string, unknown>): void
  setMedia (name: string, quirks: MediaQuirks): void
  stop (): Promise<void>
}

/**
 * A read-only GCS JSON-API stub (reference/test-infra.md §8): object metadata (with `generation`),
 * media downloads with Range and `generation`, and the XML-style `/<bucket>/<object>` path that
 * public and signed URLs use. An object stored gzip-coded is sent as stored, with `Content-Encoding:
 * gzip`, to a request that accepts gzip (Range applies to the stored bytes); to one that does not,
 * it is decompressed and sent whole, Range ignored (GCS's "decompressive transcoding"). Every request
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
        ...(object.contentEncoding === undefined ? {} : { contentEncoding: object.contentEncoding }),
        ...(object.media?.composite === true ? {} : { md5Hash: createHash('md5').update(object.bytes).digest('base64') }),
        etag: `C${object.generation}EAE=`,
        updated: object.updated.toISOString(),
        generation: object.generation,
        ...object.fields
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
    put (name, bytes, contentType = 'application/octet-stream', contentEncoding) {
      generation += 1
      objects.set(name, { bytes: Buffer.from(bytes), contentType, contentEncoding, updated: new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000), generation: String(generation) })
    },
    remove (name) {
      objects.delete(name)
    },
    setFields (name, fields) {
      const object = objects.get(name)
      if (object !== undefined) object.fields = fields
    },
    setMedia (name, quirks) {
      const object = objects.get(name)
      if (object !== undefined) object.media = quirks
    },
    async stop () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

function sendMedia (req: IncomingMessage, res: ServerResponse, object: StoredObject, log: RequestLog): void {
  res.setHeader('Content-Type', object.contentType)
  res.setHeader('x-goog-generation', object.generation)
  // GCS names the stored coding on every media response: the SDK checks a whole read's hashes only
  // when the bytes come as stored ('identity', or 'gzip' sent gzip-coded).
  res.setHeader('x-goog-stored-content-encoding', object.contentEncoding ?? 'identity')
  if (object.contentEncoding !== undefined) {
    if (object.contentEncoding === 'gzip' && !/\bgzip\b/i.test(req.headers['accept-encoding'] ?? '')) {
      // Decompressive transcoding: the decoded bytes, whole, with no length.
      res.writeHead(200, { 'Transfer-Encoding': 'chunked' })
      if (req.method === 'HEAD') res.end()
      else sendWithFault(res, gunzipSync(object.bytes), log.fault)
      return
    }
    res.setHeader('Content-Encoding', object.contentEncoding)
  }
  const size = object.bytes.length
  const match = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
  let body = object.bytes
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
    // As GCS sends them: one header per hash (Node joins them with ", ").
    res.setHeader('x-goog-hash', object.media?.composite === true ? [`crc32c=${crc32c(object.bytes)}`] : [`crc32c=${crc32c(object.bytes)}`, `md5=${createHash('md5').update(object.bytes).digest('base64')}`])
  }
  if (object.media?.corrupt === true) {
    body = Buffer.from(body)
    const at = Math.floor(body.length / 2)
    body[at] = (body[at] as number) ^ 0xff
  }
  res.setHeader('Content-Length', body.length)
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  sendWithFault(res, body, log.fault)
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

/** CRC-32C (Castagnoli) of `bytes`, big-endian and base64, as GCS's `x-goog-hash` gives it. */
function crc32c (bytes: Buffer): string {
  let crc = 0xffffffff
  for (const byte of bytes) crc = (crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8)
  const out = Buffer.alloc(4)
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0)
  return out.toString('base64')
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body)
}
