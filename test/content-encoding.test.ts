import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import test from 'ava'
import { download } from '../source/download.ts'
import { contentCodingOf } from '../source/plan.ts'
import type { ByteRange, DownloadFile, FileStat } from '../source/types.ts'
import { downloadApp } from './helpers/koa.ts'

// A stored object whose bytes are gzip (uploaded with Content-Encoding metadata), as S3 and GCS
// report it: size, ranges and validators describe the gzip bytes.
const csv = Buffer.from('id,name\n' + Array.from({ length: 200 }, (_, i) => `${i},row ${i}`).join('\n'))
const gz = gzipSync(csv)

function stored (contentEncoding: string | undefined): DownloadFile {
  const stat: FileStat = { size: gz.length, etag: '"gz-1"', lastModified: new Date('2026-01-02T03:04:05Z'), contentEncoding }
  return {
    name: 'report.csv',
    stat: async () => stat,
    open: async (range?: ByteRange) => Readable.from([range === undefined ? gz : gz.subarray(range.start, range.end + 1)])
  }
}

/** A raw request (no client-side decoding, as supertest would do for gzip): status, headers, bytes. */
async function raw (t: { teardown: (fn: () => void) => void }, encoding: string | undefined, method: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: IncomingHttpHeaders, body: Buffer }> {
  const server = downloadApp((ctx) => { ctx.body = download(stored(encoding)) }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const { port } = server.address() as AddressInfo
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', method, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

test('a stored coding is sent as Content-Encoding with the stored bytes, their length and validators (GET and HEAD alike)', async t => {
  const get = await raw(t, 'gzip', 'GET')
  t.is(get.status, 200)
  t.is(get.headers['content-encoding'], 'gzip')
  t.is(get.headers['content-type'], 'text/csv; charset=utf-8')
  t.is(get.headers['content-length'], String(gz.length))
  t.is(get.headers.etag, '"gz-1"')
  t.deepEqual(get.body, gz)
  const head = await raw(t, 'gzip', 'HEAD')
  t.is(head.status, 200)
  for (const name of ['content-encoding', 'content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges', 'content-disposition']) {
    t.is(head.headers[name], get.headers[name], name)
  }
  t.is(head.body.length, 0)
})

test('a stored coding: one range is a range of the coded bytes; several ranges get the whole coded file, not a multipart body', async t => {
  const one = await raw(t, 'gzip', 'GET', { Range: 'bytes=10-29' })
  t.is(one.status, 206)
  t.is(one.headers['content-encoding'], 'gzip')
  t.is(one.headers['content-range'], `bytes 10-29/${gz.length}`)
  t.deepEqual(one.body, gz.subarray(10, 30))
  const several = await raw(t, 'gzip', 'GET', { Range: 'bytes=0-9,500-509' })
  t.is(several.status, 200)
  t.is(several.headers['content-encoding'], 'gzip')
  t.is(several.headers['content-range'], undefined)
  t.is(several.headers['content-type'], 'text/csv; charset=utf-8')
  t.deepEqual(several.body, gz)
})

test('a 304 for a stored coding carries the validators, not Content-Encoding', async t => {
  const res = await raw(t, 'gzip', 'GET', { 'If-None-Match': '"gz-1"' })
  t.is(res.status, 304)
  t.is(res.headers.etag, '"gz-1"')
  t.is(res.headers['content-encoding'], undefined)
})

test('no coding, identity, or a value that is not a list of codings: no Content-Encoding, and several ranges stay multipart', async t => {
  for (const encoding of [undefined, 'identity', 'aws-chunked', 'gzip;q=1', 'gzip\u0001']) {
    const res = await raw(t, encoding, 'GET', { Range: 'bytes=0-9,500-509' })
    t.is(res.status, 206, String(encoding))
    t.is(res.headers['content-encoding'], undefined, String(encoding))
    t.regex(res.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/, String(encoding))
  }
})

test('contentCodingOf: lower-cased tokens, identity and aws-chunked left out, anything else refused whole', t => {
  t.is(contentCodingOf('gzip'), 'gzip')
  t.is(contentCodingOf('GZIP'), 'gzip')
  t.is(contentCodingOf('aws-chunked, gzip'), 'gzip')
  t.is(contentCodingOf('gzip , br'), 'gzip, br')
  t.is(contentCodingOf('identity'), undefined)
  t.is(contentCodingOf(' , '), undefined)
  t.is(contentCodingOf('gzip, x y'), undefined)
  t.is(contentCodingOf('gzip\r\nSet-Cookie: a=b'), undefined)
})
