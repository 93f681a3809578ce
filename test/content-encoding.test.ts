import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { download } from '../source/download.ts'
import { DownloadError } from '../source/errors.ts'
import { acceptsCoding, contentCodingOf } from '../source/plan.ts'
import type { ByteRange, DownloadFile, FileStat } from '../source/types.ts'
import { downloadApp } from './helpers/koa.ts'

// A stored object whose bytes are gzip (uploaded with Content-Encoding metadata), as S3 and GCS
// report it: size, ranges and validators describe the gzip bytes.
const csv = Buffer.from('id,name\n' + Array.from({ length: 200 }, (_, i) => `${i},row ${i}`).join('\n'))
const gz = gzipSync(csv)

function stored (contentEncoding: string | undefined, bytes: Buffer = gz): DownloadFile {
  const stat: FileStat = { size: bytes.length, etag: '"gz-1"', lastModified: new Date('2026-01-02T03:04:05Z'), contentEncoding }
  return {
    name: 'report.csv',
    stat: async () => stat,
    // in two chunks, as a storage stream sends them
    open: async (range?: ByteRange) => {
      const part = range === undefined ? bytes : bytes.subarray(range.start, range.end + 1)
      return Readable.from([part.subarray(0, 100), part.subarray(100)])
    }
  }
}

/** A raw request (no client-side decoding, as supertest would do for gzip): status, headers, bytes. */
async function raw (t: { teardown: (fn: () => void) => void }, encoding: string | undefined, method: string, headers: Record<string, string> = {}, bytes: Buffer = gz): Promise<{ status: number, headers: IncomingHttpHeaders, body: Buffer }> {
  const server = downloadApp((ctx) => { ctx.body = download(stored(encoding, bytes)) }).listen(0, '127.0.0.1')
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

test('a client that does not accept the stored coding gets the bytes decoded: another representation, with its own ETag, no length and no ranges (RFC 9110 §12.5.3; GCS\'s decompressive transcoding)', async t => {
  for (const acceptEncoding of ['identity', '', 'gzip;q=0', 'br', 'deflate, *;q=0, identity', 'x-gzip;q=0, *']) {
    const what = JSON.stringify(acceptEncoding)
    const get = await raw(t, 'gzip', 'GET', { 'Accept-Encoding': acceptEncoding })
    t.is(get.status, 200, what)
    t.deepEqual(get.body, csv, what)
    t.is(get.headers['content-encoding'], undefined, what)
    t.is(get.headers['content-length'], undefined, what)
    t.is(get.headers['transfer-encoding'], 'chunked', what)
    t.is(get.headers['accept-ranges'], 'none', what)
    t.is(get.headers.etag, '"gz-1-decoded"', what)
    t.is(get.headers.vary, 'Accept-Encoding', what)
    t.is(get.headers['content-type'], 'text/csv; charset=utf-8', what)
  }
  // A Range is of the decoded bytes, whose length is unknown: ignored.
  const ranged = await raw(t, 'gzip', 'GET', { 'Accept-Encoding': 'identity', Range: 'bytes=0-9' })
  t.is(ranged.status, 200)
  t.deepEqual(ranged.body, csv)
  const head = await raw(t, 'gzip', 'HEAD', { 'Accept-Encoding': 'identity' })
  t.is(head.status, 200)
  t.is(head.headers.etag, '"gz-1-decoded"')
  t.is(head.headers['content-length'], undefined)
  t.is(head.headers['content-encoding'], undefined)
  // Each representation revalidates with its own tag.
  const same = await raw(t, 'gzip', 'GET', { 'Accept-Encoding': 'identity', 'If-None-Match': '"gz-1-decoded"' })
  t.is(same.status, 304)
  t.is(same.headers.etag, '"gz-1-decoded"')
  t.is(same.headers.vary, 'Accept-Encoding')
  const other = await raw(t, 'gzip', 'GET', { 'Accept-Encoding': 'identity', 'If-None-Match': '"gz-1"' })
  t.is(other.status, 200)
  t.deepEqual(other.body, csv)
  // deflate and br, stored so, decoded alike.
  for (const [coding, bytes] of [['deflate', deflateSync(csv)], ['br', brotliCompressSync(csv)]] as const) {
    const res = await raw(t, coding, 'GET', { 'Accept-Encoding': 'identity' }, bytes)
    t.is(res.status, 200, coding)
    t.deepEqual(res.body, csv, coding)
    t.is(res.headers['content-encoding'], undefined, coding)
  }
})

/** The stored gzip bytes as stored: their coding, length and ETag, and Vary: Accept-Encoding. */
async function assertSentAsStored (t: ExecutionContext, acceptEncoding: string): Promise<void> {
  const res = await raw(t, 'gzip', 'GET', { 'Accept-Encoding': acceptEncoding })
  t.is(res.status, 200, acceptEncoding)
  t.deepEqual(res.body, gz, acceptEncoding)
  t.is(res.headers['content-encoding'], 'gzip', acceptEncoding)
  t.is(res.headers['content-length'], String(gz.length), acceptEncoding)
  t.is(res.headers.etag, '"gz-1"', acceptEncoding)
  t.is(res.headers.vary, 'Accept-Encoding', acceptEncoding)
}

test('a client that accepts the stored coding gets the stored bytes, with Vary: Accept-Encoding', async t => {
  for (const acceptEncoding of ['gzip', 'gzip, deflate, br', 'x-gzip', '*', 'gzip;q=0.5, identity', 'GZIP;Q=1']) await assertSentAsStored(t, acceptEncoding)
})

test('a client that refuses the stored coding and identity too (identity;q=0, or *;q=0 with no identity member) has its field disregarded: the stored bytes as stored (RFC 9110 §12.1, §12.5.3)', async t => {
  for (const acceptEncoding of ['identity;q=0', 'deflate, *;q=0', 'identity;q=0, *;q=0', 'gzip;q=0, identity;q=0', 'br, IDENTITY ; q=0.000']) await assertSentAsStored(t, acceptEncoding)
})

test('stored bytes that are not what their coding says: a clean 502 before the headers for a client that needs them decoded (gzip, deflate and br alike)', async t => {
  for (const coding of ['gzip', 'deflate', 'br']) {
    const res = await raw(t, coding, 'GET', { 'Accept-Encoding': 'identity' }, Buffer.from('this is not compressed at all, not even close, and long enough to be read'))
    t.is(res.status, 502, coding)
    t.is(res.headers['content-disposition'], undefined, coding)
    t.is(res.headers.etag, undefined, coding)
  }
})

test('stored deflate or br bytes followed by bytes that are not part of them: refused like any bytes that do not decode (zlib alone would drop them and end well), before the headers or by cutting the transfer', async t => {
  const junk = Buffer.from('--not part of the compressed stream--')
  for (const [coding, coded] of [['deflate', deflateSync(csv)], ['br', brotliCompressSync(csv)]] as const) {
    // In the source's first chunk: judged before the headers.
    const small = coding === 'br' ? brotliCompressSync('id,name\n') : deflateSync('id,name\n')
    const res = await raw(t, coding, 'GET', { 'Accept-Encoding': 'identity' }, Buffer.concat([small, junk]))
    t.is(res.status, 502, coding)
    t.is(res.headers['content-disposition'], undefined, coding)
    // The junk arriving after the headers: the transfer is cut, never a complete-looking body.
    const { url, errors } = await liveSource(t, coding, [coded, junk])
    const late = await new Promise<{ status: number, complete: boolean, body: Buffer }>((resolve) => {
      httpRequest(url, { headers: { 'Accept-Encoding': 'identity' } }, (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () => { resolve({ status: response.statusCode ?? 0, complete: response.complete, body: Buffer.concat(chunks) }) })
        response.on('error', () => { resolve({ status: response.statusCode ?? 0, complete: false, body: Buffer.concat(chunks) }) })
      }).on('error', () => { resolve({ status: 0, complete: false, body: Buffer.alloc(0) }) }).end()
    })
    t.is(late.status, 200, coding)
    t.false(late.complete, coding)
    while (errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    t.is(errors[0]?.status, 502, coding)
    t.is((errors[0] as { code?: unknown }).code, 'ERR_TRAILING_JUNK_AFTER_STREAM_END', coding)
  }
  // Without the junk, the same bytes decode whole.
  for (const [coding, coded] of [['deflate', deflateSync(csv)], ['br', brotliCompressSync(csv)]] as const) {
    const res = await raw(t, coding, 'GET', { 'Accept-Encoding': 'identity' }, coded)
    t.is(res.status, 200, coding)
    t.true(res.body.equals(csv), coding)
  }
})

test('a gzip object of several members (RFC 1952 allows them, as concatenated files make them) is decoded whole for a client that needs it decoded', async t => {
  const members = Buffer.concat([gzipSync(csv.subarray(0, 500)), gzipSync(csv.subarray(500))])
  const res = await raw(t, 'gzip', 'GET', { 'Accept-Encoding': 'identity' }, members)
  t.is(res.status, 200)
  t.true(res.body.equals(csv))
})

/** An app serving `bytes` stored with `coding` from a source still open when the decoder reads them (a storage stream: the rest is yet to come), and the errors Koa reports. */
async function liveSource (t: ExecutionContext, coding: string, chunks: Buffer[]): Promise<{ url: string, errors: Array<Error & { status?: number }> }> {
  const errors: Array<Error & { status?: number }> = []
  const size = chunks.reduce((total, chunk) => total + chunk.length, 0)
  const app = downloadApp((ctx) => {
    ctx.body = download({
      name: 'report.csv',
      stat: async () => ({ size, etag: '"live"', contentEncoding: coding }),
      open: async () => {
        let next = 0
        return new Readable({ read () { setTimeout(() => { this.push(next < chunks.length ? chunks[next++] : null) }, 5) } })
      }
    })
  })
  app.on('error', (error: Error & { status?: number }) => { errors.push(error) })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, errors }
}

test('stored bytes that do not decode, from a source still open (a storage stream), are the storage\'s 502 too, not a 500: the decoder\'s failure reaches the source as well, and is still the decoder\'s', async t => {
  const notCoded = Buffer.from('this is not compressed at all, not even close, and long enough to be read')
  for (const coding of ['gzip', 'deflate', 'br']) {
    const { url, errors } = await liveSource(t, coding, [notCoded, notCoded, notCoded])
    const res = await fetch(url, { headers: { 'Accept-Encoding': 'identity' } })
    await res.arrayBuffer()
    t.is(res.status, 502, coding)
    t.is(errors[0]?.status, 502, coding)
  }
})

test('stored bytes that stop decoding after the headers: the transfer is cut, and Koa reports the decoder\'s failure as the storage\'s (502), not the app\'s', async t => {
  const coded = gzipSync(Buffer.alloc(300_000, 'a'))
  const broken = Buffer.from(coded.subarray(0, coded.length - 8))
  broken[broken.length - 20] = (broken[broken.length - 20] as number) ^ 0xff
  const { url, errors } = await liveSource(t, 'gzip', [broken.subarray(0, 20), broken.subarray(20), coded.subarray(coded.length - 8)])
  const res = await new Promise<{ status: number, complete: boolean }>((resolve) => {
    httpRequest(url, { headers: { 'Accept-Encoding': 'identity' } }, (response) => {
      response.resume()
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, complete: response.complete }) })
      response.on('error', () => { resolve({ status: response.statusCode ?? 0, complete: false }) })
    }).end()
  })
  t.is(res.status, 200)
  t.false(res.complete)
  while (errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  t.is(errors[0]?.status, 502)
  t.regex(String((errors[0] as { code?: unknown }).code), /^Z_/)
})

test('a source failing before its first bytes, for a client that needs them decoded, keeps its own meaning: the storage\'s 404 or 503 (changed since stat), not a 502 of the decoding', async t => {
  for (const [failure, status] of [[Object.assign(new Error('gone'), { code: 'ENOENT' }), 404], [new DownloadError('E_CHANGED', 'replaced'), 503], [new Error('reset'), 500]] as const) {
    const server = downloadApp((ctx) => {
      const stat: FileStat = { size: gz.length, etag: '"gz-1"', contentEncoding: 'gzip' }
      ctx.body = download({
        name: 'report.csv',
        stat: async () => stat,
        open: async () => new Readable({ read () { this.destroy(failure) } })
      })
    }).listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => { server.close() })
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers: { 'Accept-Encoding': 'identity' } })
    await res.arrayBuffer()
    t.is(res.status, status, failure.message)
  }
})

test('a Vary the app set (CORS\'s Origin) keeps its fields beside Accept-Encoding, on 200 and 304', async t => {
  const server = downloadApp((ctx) => {
    ctx.vary('Origin')
    ctx.body = download(stored('gzip'))
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  for (const headers of [{ 'Accept-Encoding': 'gzip' }, { 'Accept-Encoding': 'identity' }, { 'Accept-Encoding': 'gzip', 'If-None-Match': '"gz-1"' }]) {
    const res = await fetch(url, { headers })
    await res.arrayBuffer()
    t.is(res.headers.get('vary'), 'Origin, Accept-Encoding', JSON.stringify(headers))
  }
})

test('acceptsCoding: RFC 9110 §12.5.3 — no field accepts anything, an empty one nothing, the own member or * with q > 0', t => {
  t.true(acceptsCoding(undefined, 'gzip'))
  t.false(acceptsCoding('', 'gzip'))
  t.true(acceptsCoding('gzip', 'gzip'))
  t.true(acceptsCoding('x-gzip', 'gzip'))
  t.true(acceptsCoding('gzip', 'x-gzip'))
  t.true(acceptsCoding('deflate, gzip;q=0.001', 'gzip'))
  t.false(acceptsCoding('gzip;q=0', 'gzip'))
  t.false(acceptsCoding('gzip;q=0.000, *', 'gzip'), 'its own member wins over *')
  t.true(acceptsCoding('*', 'br'))
  t.false(acceptsCoding('*;q=0', 'br'))
  t.false(acceptsCoding('identity', 'gzip'))
  t.false(acceptsCoding('gzip;q=2', 'gzip'), 'an invalid qvalue: the member is skipped')
  t.true(acceptsCoding(['deflate', 'gzip'], 'gzip'))
})
