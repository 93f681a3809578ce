import test from 'ava'
import type { ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream, readFileSync } from 'node:fs'
import type { ReadStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer as createHttpServer, get } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import Koa from 'koa'
import { Minipass } from 'minipass'
import request from 'supertest'
import { download } from '../source/download.ts'
import { downloads } from '../source/downloads.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import type { VirtualContent, VirtualFileOptions } from '../source/virtual-file.ts'
import { assertErrorResponse } from './helpers/error-response.ts'
import { rawRequest } from './helpers/file-contract.ts'
import { downloadApp } from './helpers/koa.ts'
import { fetchBytes, listen } from './helpers/listen.ts'

// readable-stream 3 has no types of its own: the part of its Readable these tests use.
const RSReadable = createRequire(import.meta.url)('readable-stream').Readable as new (options: { read: (this: Readable) => void }) => Readable

const tlsFixture = {
  key: readFileSync(new URL('./fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('./fixtures/tls/cert.pem', import.meta.url))
}

// Multi-byte on purpose: 2-, 3- and 4-byte UTF-8 sequences, so characters ≠ bytes.
const text = 'Grüße, 世界! 😀\n'
const textBytes = Buffer.from(text, 'utf8')

/** The jshttp/etag format, computed independently: `"<length hex>-<sha1 base64, no padding>"`. */
function expectedEtag (bytes: Buffer): string {
  return `"${bytes.length.toString(16)}-${createHash('sha1').update(bytes).digest('base64').replace(/=+$/, '')}"`
}

/** An app whose handler serves a bare VirtualFile made by `make` on each request. */
async function appOf (t: ExecutionContext, make: () => VirtualFile): Promise<string> {
  return await listen(t, downloadApp((ctx) => { ctx.body = make() }))
}

/** An app serving the same VirtualFile instance on every request. */
async function appServing (t: ExecutionContext, file: VirtualFile): Promise<{ url: string, errors: Error[] }> {
  const errors: Error[] = []
  const app = downloadApp((ctx) => { ctx.body = file })
  app.on('error', (error: Error) => { errors.push(error) })
  return { url: await listen(t, app), errors }
}

test('virtual-file: a string is sent as UTF-8 with Content-Length in bytes, not characters', async t => {
  t.not(text.length, textBytes.length)
  const url = await appOf(t, () => new VirtualFile(text, { name: 'greeting.txt' }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.true((res.body as Buffer).equals(textBytes))
  t.is(res.headers['content-length'], String(textBytes.length))
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(res.headers['content-disposition'], 'attachment; filename="greeting.txt"')
  t.is(res.headers['accept-ranges'], 'bytes')
  t.is(res.headers['last-modified'], undefined, 'no Last-Modified unless given')
})

test('virtual-file: in-memory content has a strong content-hash ETag', async t => {
  const url = await appOf(t, () => new VirtualFile(text, { name: 'greeting.txt' }))
  const res = await fetchBytes(url, '/')
  t.is(res.headers.etag, expectedEtag(textBytes))
  t.false(String(res.headers.etag).startsWith('W/'))
})

test('virtual-file: the content hash is taken only when the ETag is read: never under serve({ etag: false }) (GET, HEAD, a range, a conditional), once by default', async t => {
  // stat() describes the ETag lazily; a wrapper counts who reads it.
  const descriptor = Object.getOwnPropertyDescriptor(await new VirtualFile(textBytes, { name: 'a.bin' }).stat(), 'etag')
  t.is(typeof descriptor?.get, 'function', 'not hashed by stat() itself')
  let reads = 0
  class Watched extends VirtualFile {
    override async stat (): ReturnType<VirtualFile['stat']> {
      const stat = await super.stat()
      return new Proxy(stat, { get (target, key, receiver) { if (key === 'etag') reads++; return Reflect.get(target, key, receiver) as unknown } })
    }
  }
  const quiet = await listen(t, downloadApp((ctx) => { ctx.body = new Watched(textBytes, { name: 'a.bin' }) }, { etag: false }))
  for (const [method, headers] of [['GET', {}], ['HEAD', {}], ['GET', { Range: 'bytes=0-3' }], ['GET', { 'If-None-Match': expectedEtag(textBytes), Range: 'bytes=0-3', 'If-Range': expectedEtag(textBytes) }]] as const) {
    const res = await fetch(quiet, { method, headers })
    await res.arrayBuffer()
    t.is(res.headers.get('etag'), null)
  }
  t.is(reads, 0, 'serve({ etag: false }) never read the ETag')
  const usual = await listen(t, downloadApp((ctx) => { ctx.body = new Watched(textBytes, { name: 'a.bin' }) }))
  const res = await fetch(usual)
  await res.arrayBuffer()
  t.is(res.headers.get('etag'), expectedEtag(textBytes))
  t.true(reads > 0)
  // A subclass that sets its own tag on the stat (a version from a database) still can.
  class Versioned extends VirtualFile {
    override async stat (): ReturnType<VirtualFile['stat']> {
      const stat = await super.stat()
      stat.etag = '"v42"'
      return Object.assign(stat, { lastModified: new Date(0) })
    }
  }
  const versioned = await fetch(await listen(t, downloadApp((ctx) => { ctx.body = new Versioned(textBytes, { name: 'a.bin' }) })))
  await versioned.arrayBuffer()
  t.is(versioned.status, 200)
  t.is(versioned.headers.get('etag'), '"v42"')
})

test('virtual-file: same content → same ETag (string, Buffer, Uint8Array alike); different content → different ETag', async t => {
  const etags: string[] = []
  for (const content of [text, Buffer.from(text), new Uint8Array(Buffer.from(text)), 'Grüße, 世界! 😁\n']) {
    const url = await appOf(t, () => new VirtualFile(content, { name: 'a.txt' }))
    etags.push(String((await fetchBytes(url, '/')).headers.etag))
  }
  t.is(etags[0], etags[1])
  t.is(etags[0], etags[2])
  t.not(etags[0], etags[3])
})

test('virtual-file: a Range on a string is served from the bytes (206 with Content-Range)', async t => {
  const url = await appOf(t, () => new VirtualFile(text, { name: 'greeting.txt' }))
  const res = await fetchBytes(url, '/').set('Range', 'bytes=2-8')
  t.is(res.status, 206)
  t.is(res.headers['content-range'], `bytes 2-8/${textBytes.length}`)
  t.is(res.headers['content-length'], '7')
  t.true((res.body as Buffer).equals(textBytes.subarray(2, 9)))
})

test('virtual-file: several ranges of in-memory content → multipart/byteranges with exact parts', async t => {
  const content = '0123456789'.repeat(100)
  const url = await appOf(t, () => new VirtualFile(content, { name: 'digits.txt' }))
  const res = await fetchBytes(url, '/').set('Range', 'bytes=0-1,900-902')
  t.is(res.status, 206)
  const type = String(res.headers['content-type'])
  const boundary = /^multipart\/byteranges; boundary=([0-9A-Za-z]+)$/.exec(type)?.[1]
  t.truthy(boundary)
  const body = (res.body as Buffer).toString('latin1')
  t.is(res.headers['content-length'], String(res.body.length))
  t.true(body.includes('Content-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/1000\r\n\r\n01\r\n'))
  t.true(body.includes('Content-Range: bytes 900-902/1000\r\n\r\n012\r\n'))
  t.true(body.endsWith(`--${boundary ?? ''}--\r\n`))
})

test('virtual-file: a Uint8Array view sends only its own bytes (offset and length respected)', async t => {
  const backing = new Uint8Array([0x00, 0x01, 0x02, 0x41, 0x42, 0x43, 0x44, 0x05, 0x06])
  const view = new Uint8Array(backing.buffer, 3, 4)
  const url = await appOf(t, () => new VirtualFile(view, { name: 'view.bin' }))
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString('latin1'), 'ABCD')
  t.is(res.headers['content-length'], '4')
  t.is(res.headers['content-type'], 'application/octet-stream')
  t.is(res.headers.etag, expectedEtag(Buffer.from('ABCD')))
})

test('virtual-file: a Buffer is sent as is', async t => {
  const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x0d, 0x0a])
  const url = await appOf(t, () => new VirtualFile(bytes, { name: 'raw.bin' }))
  const res = await fetchBytes(url, '/')
  t.true((res.body as Buffer).equals(bytes))
  t.is(res.headers['content-length'], '5')
})

test('virtual-file: an empty string → 200, Content-Length 0, a Range ignored', async t => {
  const url = await appOf(t, () => new VirtualFile('', { name: 'empty.txt' }))
  const res = await fetchBytes(url, '/').set('Range', 'bytes=0-0')
  t.is(res.status, 200)
  t.is(res.headers['content-length'], '0')
  t.is((res.body as Buffer).length, 0)
})

test('virtual-file: the given etag, lastModified and contentType are used verbatim', async t => {
  const url = await appOf(t, () => new VirtualFile(text, { name: 'a.txt', etag: 'W/"given"', lastModified: new Date('2024-05-06T07:08:09.999Z'), contentType: 'text/plain; charset=iso-8859-1' }))
  const res = await fetchBytes(url, '/')
  t.is(res.headers.etag, 'W/"given"')
  t.is(res.headers['last-modified'], 'Mon, 06 May 2024 07:08:09 GMT')
  t.is(res.headers['content-type'], 'text/plain; charset=iso-8859-1')
})

test('virtual-file: a .json name is application/json with charset; download() contentType wins over the VirtualFile one', async t => {
  const json = await appOf(t, () => new VirtualFile('{}', { name: 'data.json' }))
  t.is((await fetchBytes(json, '/')).headers['content-type'], 'application/json; charset=utf-8')
  const url = await listen(t, downloadApp((ctx) => {
    ctx.body = download(new VirtualFile('{}', { name: 'data.json', contentType: 'text/x-declared' }), { contentType: 'application/x-explicit' })
  }))
  t.is((await fetchBytes(url, '/')).headers['content-type'], 'application/x-explicit')
})

test('virtual-file: an in-memory ETag answers If-None-Match with 304 and no body', async t => {
  const url = await appOf(t, () => new VirtualFile(text, { name: 'greeting.txt' }))
  const res = await fetchBytes(url, '/').set('If-None-Match', expectedEtag(textBytes))
  t.is(res.status, 304)
  t.is(res.headers.etag, expectedEtag(textBytes))
  t.is((res.body as Buffer).length, 0)
  t.is(res.headers['content-length'], undefined)
})

// ——— Streams ———

const chunks = ['Grüße ', '世界 ', '😀', '\n']
const streamBytes = Buffer.from(chunks.join(''), 'utf8')

const streams: Array<[string, () => VirtualContent]> = [
  ['a Node Readable', () => Readable.from(chunks.map((chunk) => Buffer.from(chunk)))],
  ['a web ReadableStream', () => new ReadableStream<Uint8Array>({
    start (controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk))
      controller.close()
    }
  })],
  ['an async generator of strings', () => (async function * () { for (const chunk of chunks) yield chunk })()],
  ['an async generator of bytes', () => (async function * () { for (const chunk of chunks) yield new TextEncoder().encode(chunk) })()]
]

for (const [title, make] of streams) {
  test(`virtual-file: ${title} of unknown size is sent chunked, without ETag, with Accept-Ranges: none`, async t => {
    const url = await appOf(t, () => new VirtualFile(make(), { name: 'stream.txt' }))
    const res = await fetchBytes(url, '/')
    t.is(res.status, 200)
    t.true((res.body as Buffer).equals(streamBytes))
    t.is(res.headers['content-length'], undefined)
    t.is(res.headers['transfer-encoding'], 'chunked')
    t.is(res.headers['accept-ranges'], 'none')
    t.is(res.headers.etag, undefined)
    t.is(res.headers['last-modified'], undefined)
    t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  })

  test(`virtual-file: ${title} ignores Range (200 with every byte, no Content-Range)`, async t => {
    const url = await appOf(t, () => new VirtualFile(make(), { name: 'stream.txt' }))
    const res = await fetchBytes(url, '/').set('Range', 'bytes=0-3')
    t.is(res.status, 200)
    t.is(res.headers['content-range'], undefined)
    t.true((res.body as Buffer).equals(streamBytes))
  })

  test(`virtual-file: ${title} with a given size, etag and lastModified sends them (and still no ranges)`, async t => {
    const url = await appOf(t, () => new VirtualFile(make(), { name: 'stream.txt', size: streamBytes.length, etag: '"gen-1"', lastModified: new Date('2024-01-02T03:04:05Z') }))
    const res = await fetchBytes(url, '/').set('Range', 'bytes=0-3')
    t.is(res.status, 200)
    t.true((res.body as Buffer).equals(streamBytes))
    t.is(res.headers['content-length'], String(streamBytes.length))
    t.is(res.headers['transfer-encoding'], undefined)
    t.is(res.headers.etag, '"gen-1"')
    t.is(res.headers['last-modified'], 'Tue, 02 Jan 2024 03:04:05 GMT')
    t.is(res.headers['accept-ranges'], 'none')
  })
}

test('virtual-file: a stream is consumed once; serving the same VirtualFile again is a clean 500', async t => {
  const file = new VirtualFile(Readable.from([Buffer.from('once')]), { name: 'once.txt' })
  const { url, errors } = await appServing(t, file)
  const first = await fetchBytes(url, '/')
  t.is(first.status, 200)
  t.is((first.body as Buffer).toString(), 'once')
  const second = await fetchBytes(url, '/')
  assertErrorResponse(t, second, 500)
  t.is(errors.length, 1)
  t.regex(String((errors[0] as Error & { cause?: Error }).cause?.message), /only once/)
  // A HEAD answers as the GET would (RFC 9110 §9.3.2), not with a 200 the GET cannot send.
  const head = await fetchBytes(url, '/', 'head')
  t.is(head.status, 500)
  t.is(head.headers['content-disposition'], undefined)
  t.is(errors.length, 2)
})

test('virtual-file: HEAD on a bare generated stream does not start or consume it, and sends no Content-Length (not that of its JSON); a GET gets every byte', async t => {
  let started = 0
  async function * generate (): AsyncGenerator<string> {
    started++
    yield 'generated '
    yield 'bytes\n'
  }
  const url = await appOf(t, () => new VirtualFile(generate(), { name: 'gen.txt' }))
  const head = await fetchBytes(url, '/', 'head')
  t.is(head.status, 200)
  t.is(head.headers['content-length'], undefined, 'unknown size: no Content-Length on HEAD either')
  t.is(head.headers['accept-ranges'], 'none')
  t.is(head.headers['content-disposition'], 'attachment; filename="gen.txt"')
  t.is(started, 0, 'HEAD did not start the generator')
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), 'generated bytes\n')
  t.is(started, 1)
})

test('virtual-file: HEAD on a sized stream sends its Content-Length', async t => {
  const url = await appOf(t, () => new VirtualFile(Readable.from([Buffer.from('12345')]), { name: 'five.bin', size: 5 }))
  const head = await fetchBytes(url, '/', 'head')
  t.is(head.headers['content-length'], '5')
  t.is((await fetchBytes(url, '/')).body.toString(), '12345')
})

test('virtual-file: a stream belongs to the response it was given to, as a Koa stream body does: after a HEAD, the same instance is not sent again', async t => {
  const file = new VirtualFile(Readable.from([Buffer.from('12345')]), { name: 'five.bin', size: 5 })
  const { url, errors } = await appServing(t, file)
  t.is((await fetchBytes(url, '/', 'head')).status, 200)
  const res = await fetchBytes(url, '/')
  assertErrorResponse(t, res, 500)
  t.regex((errors[0]?.cause as Error | undefined)?.message ?? '', /^VirtualFile: a generated stream can be sent only once$/)
})

test('virtual-file: a sized stream that ends early, before the headers are committed → a clean 502, never a complete-looking 200', async t => {
  // A Node stream, an async generator and a web stream: the last two end a few microtasks after
  // their first chunk, which used to be after serve() had handed the body to Koa (no status line at all).
  const makers = [
    () => Readable.from([Buffer.from('12345')]),
    () => (async function * () { yield Buffer.from('12345') })(),
    () => new ReadableStream<Uint8Array>({ start (controller) { controller.enqueue(Buffer.from('12345')); controller.close() } })
  ]
  for (const [index, make] of makers.entries()) {
    const url = await appOf(t, () => new VirtualFile(make(), { name: 'short.bin', size: 10 }))
    const res = await fetchBytes(url, '/')
    assertErrorResponse(t, res, 502)
    t.false(res.body.toString().includes('12345'), `maker ${index}`)
  }
})

test('virtual-file: a sized stream that ends early after the headers were sent aborts the response', async t => {
  async function * slow (): AsyncGenerator<Buffer> {
    yield Buffer.from('12345')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const file = new VirtualFile(slow(), { name: 'short.bin', size: 10 })
  const { url } = await appServing(t, file)
  const result = await rawRequest(url)
  t.is(result.status, 200)
  t.false(result.complete)
  t.is(result.body.toString(), '12345')
})

test('virtual-file: a stream of unknown size that fails mid-body, to an HTTP/1.0 client (nginx\'s default upstream protocol): the connection is reset, never closed as a complete body; one that ends is closed normally', async t => {
  // HTTP/1.0 has no chunked framing: the body ends with the connection, so a FIN after a failure
  // would read as the whole file (RFC 9112 §6.3). HTTP/1.1 gets chunks, whose missing end shows it.
  async function * failing (): AsyncGenerator<Buffer> {
    yield Buffer.alloc(100_000, 0x61)
    await new Promise((resolve) => setTimeout(resolve, 50))
    // The code a wrapped upstream's reset carries, which a client's own reset carries too: the
    // failure is still the source's, and reported.
    throw Object.assign(new Error('the export\'s upstream was reset'), { code: 'ECONNRESET' })
  }
  async function * whole (): AsyncGenerator<Buffer> {
    yield Buffer.alloc(100_000, 0x61)
    await new Promise((resolve) => setTimeout(resolve, 50))
    yield Buffer.from('end')
  }
  for (const [make, expected] of [[failing, 'ECONNRESET'], [whole, 'FIN']] as const) {
    const { url, errors } = await appServing(t, new VirtualFile(make(), { name: 'export.csv' }))
    const { hostname, port } = new URL(url)
    const { ending, bytes } = await new Promise<{ ending: string, bytes: Buffer }>((resolve) => {
      const socket = connect(Number(port), hostname, () => { socket.write('GET / HTTP/1.0\r\n\r\n') })
      const chunks: Buffer[] = []
      let ending = 'FIN'
      socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
      socket.on('error', (error: NodeJS.ErrnoException) => { ending = error.code ?? error.message })
      socket.on('close', () => { resolve({ ending, bytes: Buffer.concat(chunks) }) })
    })
    const head = bytes.subarray(0, bytes.indexOf('\r\n\r\n')).toString('latin1')
    t.regex(head, /^HTTP\/1\.1 200 OK\r\n/, make.name)
    t.notRegex(head, /content-length|transfer-encoding/i, make.name)
    t.is(ending, expected, make.name)
    if (make === whole) t.true(bytes.subarray(-3).equals(Buffer.from('end')))
    // Koa reports the failure once its pipeline has settled, a little after the reset.
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.deepEqual(errors.map((error) => error.message), make === failing ? ['the export\'s upstream was reset'] : [], make.name)
  }
})

test('virtual-file: the same failure to an HTTP/1.0 client over TLS or a Unix socket (no TCP handle to reset) closes the connection without crashing the process, and is reported once', async t => {
  async function * failing (): AsyncGenerator<Buffer> {
    yield Buffer.alloc(70_000, 0x61)
    await new Promise((resolve) => setTimeout(resolve, 50))
    throw new Error('the export failed')
  }
  const unixPath = join(await mkdtemp(join(tmpdir(), 'kd-unix-')), 'app.sock')
  t.teardown(async () => { await rm(dirname(unixPath), { recursive: true, force: true }) })
  for (const kind of ['tls', 'unix'] as const) {
    const errors: Error[] = []
    const app = downloadApp((ctx) => { ctx.body = new VirtualFile(failing(), { name: 'export.csv' }) })
    app.on('error', (error: Error) => { errors.push(error) })
    const server = kind === 'tls' ? createHttpsServer(tlsFixture, app.callback()) : createHttpServer(app.callback())
    await new Promise<void>((resolve) => { if (kind === 'tls') server.listen(0, '127.0.0.1', resolve); else server.listen(unixPath, resolve) })
    t.teardown(() => { server.closeAllConnections(); server.close() })
    const bytes = await new Promise<Buffer>((resolve) => {
      const port = (server.address() as AddressInfo).port
      const socket = kind === 'tls'
        ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => { socket.write('GET / HTTP/1.0\r\n\r\n') })
        : connect(unixPath, () => { socket.write('GET / HTTP/1.0\r\n\r\n') })
      const chunks: Buffer[] = []
      socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
      socket.on('error', () => {})
      socket.on('close', () => { resolve(Buffer.concat(chunks)) })
    })
    t.regex(bytes.subarray(0, 17).toString('latin1'), /^HTTP\/1\.1 200 OK/, kind)
    t.true(bytes.length > 70_000 && bytes.length < 71_000, `${kind}: ${bytes.length} bytes`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.deepEqual(errors.map((error) => error.message), ['the export failed'], kind)
  }
})

test('virtual-file: a sized stream longer than its size, found out after the headers: the client never gets all of Content-Length (the last byte waits for the source\'s end)', async t => {
  async function * long (): AsyncGenerator<Buffer> {
    yield Buffer.from('1234567890')
    await new Promise((resolve) => setTimeout(resolve, 50))
    yield Buffer.from('HTTP/1.1 200 OK\r\n')
  }
  const url = await appOf(t, () => new VirtualFile(long(), { name: 'long.bin', size: 10 }))
  const { head, rest } = await rawExchange(url)
  t.regex(head, /\r\ncontent-length: 10\r\n/i)
  // Not even the tenth byte: with all ten the client would hold a complete response (the overrun,
  // found 50 ms later, could then only close a connection already done with).
  t.is(rest.toString(), '123456789')
  const result = await rawRequest(url)
  t.deepEqual({ status: result.status, complete: result.complete, body: result.body.toString() }, { status: 200, complete: false, body: '123456789' })
})

test('virtual-file: a sized stream longer than its size, found out before the headers → a clean 502', async t => {
  const file = new VirtualFile(Readable.from([Buffer.from('1234567890'), Buffer.from('HTTP/1.1 200 OK\r\n')]), { name: 'long.bin', size: 10 })
  const { url } = await appServing(t, file)
  const res = await fetchBytes(url, '/')
  t.is(res.status, 502)
  t.false(res.body.toString().includes('HTTP/1.1'))
})

/** The raw bytes of a GET / on a keep-alive connection, split into the header block and what follows it. */
async function rawExchange (url: string): Promise<{ head: string, rest: Buffer }> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
    })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    // The server keeps the connection open after a complete response: stop listening once it is quiet.
    let timer = setTimeout(() => socket.destroy(), 1000)
    socket.on('data', () => { clearTimeout(timer); timer = setTimeout(() => socket.destroy(), 300) })
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      const all = Buffer.concat(chunks)
      const end = all.indexOf('\r\n\r\n')
      resolve({ head: all.subarray(0, end).toString('latin1'), rest: all.subarray(end + 4) })
    })
  })
}

/** Requests `url`, reads the first chunk of the body, then destroys the connection. */
async function abortAfterFirstChunk (url: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = get(url, { agent: false }, (res) => {
      res.once('data', () => {
        req.destroy()
        resolve()
      })
    })
    req.on('error', (error: NodeJS.ErrnoException) => { if (error.code !== 'ECONNRESET') reject(error) })
  })
}

/** Resolves when `promise` does, or fails the test after `ms` (a deadline, not a timing assertion). */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} did not happen within ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

test('virtual-file: a client abort stops an endless async generator (its finally runs)', async t => {
  let finished!: () => void
  const stopped = new Promise<void>((resolve) => { finished = resolve })
  async function * endless (): AsyncGenerator<Buffer> {
    try {
      for (;;) yield Buffer.alloc(64 * 1024, 0x7a)
    } finally {
      finished()
    }
  }
  const { url } = await appServing(t, new VirtualFile(endless(), { name: 'endless.bin' }))
  await abortAfterFirstChunk(url)
  await within(stopped, 5000, 'the generator cleanup')
  t.pass()
})

test('virtual-file: a client that leaves while the first bytes are being prepared is no app error, whether it closes (FIN) or resets (RST) the connection', async t => {
  for (const leave of ['end', 'resetAndDestroy'] as const) {
    let started!: () => void
    const running = new Promise<void>((resolve) => { started = resolve })
    let finished!: () => void
    const stopped = new Promise<void>((resolve) => { finished = resolve })
    async function * late (): AsyncGenerator<Buffer> {
      try {
        started()
        await new Promise((resolve) => setTimeout(resolve, 300))
        yield Buffer.from('late')
      } finally {
        finished()
      }
    }
    const { url, errors } = await appServing(t, new VirtualFile(late(), { name: 'late.txt' }))
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname)
    socket.on('error', () => {})
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    // The app waits for the generator's first bytes: the client leaves then.
    await within(running, 5000, 'the generator start')
    if (leave === 'end') socket.destroy()
    else socket.resetAndDestroy()
    // The generator ends once its await does (300 ms), long after Koa saw the connection go.
    await within(stopped, 5000, 'the generator cleanup')
    // Koa passed the socket's ECONNRESET on before the response closed: it logged it with a stack.
    t.deepEqual(errors.map((error) => (error as { code?: string }).code ?? error.message), [], leave)
  }
})

test('virtual-file: a client abort cancels an endless web ReadableStream', async t => {
  let cancelled!: () => void
  const stopped = new Promise<void>((resolve) => { cancelled = resolve })
  const stream = new ReadableStream<Uint8Array>({
    pull (controller) { controller.enqueue(new Uint8Array(64 * 1024)) },
    cancel () { cancelled() }
  })
  const { url } = await appServing(t, new VirtualFile(stream, { name: 'endless.bin' }))
  await abortAfterFirstChunk(url)
  await within(stopped, 5000, 'the stream cancel')
  t.pass()
})

test('virtual-file: bad constructor arguments are TypeErrors naming the option', t => {
  const bad = (content: unknown, options: unknown): VirtualFile => new VirtualFile(content as VirtualContent, options as VirtualFileOptions)
  t.throws(() => bad('x', undefined), { instanceOf: TypeError, message: /options\.name must be a string/ })
  t.throws(() => bad('x', {}), { instanceOf: TypeError, message: /options\.name must be a string/ })
  t.throws(() => bad('x', { name: 'a', size: -1 }), { instanceOf: TypeError, message: /size must be a non-negative integer/ })
  t.throws(() => bad('x', { name: 'a', size: 1.5 }), { instanceOf: TypeError, message: /size/ })
  t.throws(() => bad('x', { name: 'a', etag: 'unquoted' }), { instanceOf: TypeError, message: /etag must be a quoted entity-tag/ })
  t.throws(() => bad('x', { name: 'a', etag: '"a\r\nb"' }), { instanceOf: TypeError, message: /etag/ })
  t.throws(() => bad('x', { name: 'a', lastModified: new Date('nope') }), { instanceOf: TypeError, message: /lastModified must be a valid Date/ })
  t.throws(() => bad('x', { name: 'a', contentType: 1 }), { instanceOf: TypeError, message: /contentType must be a string/ })
  // Node refuses such header values: at setup, not as a 500 on every request.
  for (const contentType of ['', 'text/plain; name=日本', 'text/plain\r\nX-Injected: 1', 'text/plain\u0000']) {
    t.throws(() => bad('x', { name: 'a', contentType }), { instanceOf: TypeError, message: /^VirtualFile: contentType must be a non-empty header value without control characters$/ }, JSON.stringify(contentType))
  }
  t.throws(() => bad(42, { name: 'a' }), { instanceOf: TypeError, message: /content must be/ })
  t.throws(() => bad(null, { name: 'a' }), { instanceOf: TypeError, message: /content must be/ })
})

test('virtual-file: an unknown option (a misspelt contentType) → TypeError naming it', t => {
  t.throws(() => new VirtualFile('x', { name: 'x.txt', contenType: 'text/csv' } as unknown as { name: string }), {
    instanceOf: TypeError,
    message: /^VirtualFile: unknown option "contenType" \(allowed: name, contentType, size, lastModified, etag\)$/
  })
})

test('virtual-file: a stream that is never sent (HEAD, 304, 412) is destroyed, not left holding its descriptor', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-unsent-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'source.txt')
  await writeFile(path, 'x'.repeat(1000))
  const streams: ReadStream[] = []
  const url = await listen(t, downloadApp((ctx) => {
    const stream = createReadStream(path)
    streams.push(stream)
    ctx.body = download(new VirtualFile(stream, { name: 'a.txt', size: 1000, etag: '"v1"' }))
  }))
  const cases = [
    { status: 200, send: () => request(url).head('/') },
    { status: 304, send: () => request(url).get('/').set('If-None-Match', '"v1"') },
    { status: 412, send: () => request(url).get('/').set('If-Match', '"other"') },
    { status: 412, send: () => request(url).head('/').set('If-Match', '"other"') }
  ]
  for (const [index, { status, send }] of cases.entries()) {
    t.is((await send()).status, status, `case ${index}`)
    const stream = streams[index]
    if (stream === undefined) throw new Error('no stream')
    if (!stream.closed) await once(stream, 'close')
    t.true(stream.destroyed, `case ${index}`)
    t.is(stream.bytesRead, 0, `case ${index}`)
  }
  // A GET sends it: read whole, then closed by the pipe.
  const res = await fetchBytes(url, '/')
  t.is(res.status, 200)
  t.is(res.body.length, 1000)
})

test('virtual-file: a generator or web stream never sent is finished or cancelled', async t => {
  let finished = 0
  let cancelled = 0
  const url = await listen(t, downloadApp((ctx) => {
    if (ctx.path === '/generator') {
      ctx.body = new VirtualFile((async function * () { try { yield 'never' } finally { finished++ } })(), { name: 'g.txt' })
    } else {
      ctx.body = new VirtualFile(new ReadableStream({ pull (controller) { controller.enqueue(new Uint8Array(1)) }, cancel () { cancelled++ } }), { name: 'w.txt' })
    }
  }))
  t.is((await request(url).head('/generator')).status, 200)
  t.is((await request(url).head('/web')).status, 200)
  // The generator had not started: return() finishes it without running its body.
  t.is(finished, 0)
  t.is(cancelled, 1)
  // One that had started (a generator the app primed) runs its finally block.
  const primed = (async function * () { try { yield 'first'; yield 'second' } finally { finished++ } })()
  await primed.next()
  const file = new VirtualFile(primed, { name: 'p.txt' })
  file[Symbol.dispose]()
  await new Promise((resolve) => setImmediate(resolve))
  t.is(finished, 1)
  // Disposing twice, or after the stream was sent, does nothing.
  file[Symbol.dispose]()
  t.is(finished, 1)
})

test('virtual-file: a download whose body the route or an error handler replaces releases its stream (no descriptor left open); one that is sent is not released twice', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-replaced-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'data.bin'), Buffer.alloc(1000, 0x62))
  const streams: ReadStream[] = []
  let disposed = 0
  const app = new Koa()
  app.silent = true
  // The usual error handler: a page of its own instead of the failed route's body.
  app.use(async (ctx, next) => {
    try {
      await next()
    } catch {
      ctx.status = 500
      ctx.body = 'error page'
    }
  })
  app.use(downloads())
  app.use(async (ctx) => {
    const stream = createReadStream(join(dir, 'data.bin'))
    streams.push(stream)
    const file = new VirtualFile(stream, { name: 'data.bin', size: 1000 })
    const dispose = file[Symbol.dispose].bind(file)
    file[Symbol.dispose] = () => { disposed++; dispose() }
    ctx.body = download(file)
    if (ctx.path === '/replaced') ctx.body = { replaced: true }
    if (ctx.path === '/thrown') throw new Error('the route failed after choosing the download')
  })
  const url = await listen(t, app)
  const replaced = await request(url).get('/replaced')
  t.is(replaced.status, 200)
  t.deepEqual(replaced.body, { replaced: true })
  const thrown = await fetch(url + '/thrown')
  t.is(thrown.status, 500)
  t.is(await thrown.text(), 'error page')
  for (const stream of streams) {
    if (!stream.closed) await once(stream, 'close')
    t.true(stream.destroyed)
    t.is(stream.bytesRead, 0)
  }
  t.is(disposed, 2)
  // Sent: the bytes arrive and nothing disposes the file after open() took its stream.
  const sent = await fetchBytes(url, '/sent')
  t.is(sent.status, 200)
  t.is(sent.body.length, 1000)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.is(disposed, 2)
})

test('virtual-file: a stream that failed, was destroyed or was read to its end before serve() got it is a clean error at once, not a request left hanging with no status line', async t => {
  // The route awaited something (a database write) while the stream's source failed.
  const errors: Error[] = []
  const app = downloadApp(async (ctx) => {
    const size = ctx.query.size === undefined ? {} : { size: Number(ctx.query.size) }
    let stream: Readable
    if (ctx.path === '/errored') {
      stream = new Readable({ read () {} })
      stream.on('error', () => {})
      stream.destroy(new Error('the upstream failed early'))
    } else if (ctx.path === '/missing') {
      stream = createReadStream(join(tmpdir(), 'kd-no-such-dir', 'report.pdf'))
      stream.on('error', () => {})
    } else if (ctx.path === '/destroyed') {
      stream = new Readable({ read () {} })
      stream.destroy()
    } else if (ctx.path === '/errored-kept') {
      // With autoDestroy off, a failure leaves the stream errored but not destroyed.
      stream = new Readable({ autoDestroy: false, read () { this.push(1 as unknown as Buffer) } })
      stream.on('error', () => {})
      stream.read()
    } else if (ctx.path === '/errored-kept-buffered') {
      // The same, with bytes still buffered from before the failure: the failure comes first.
      stream = new Readable({ autoDestroy: false, read () {} })
      stream.on('error', () => {})
      stream.push('abc')
      stream.push(1 as unknown as Buffer)
    } else {
      // Not destroyed at its end (autoDestroy off), so only its 'end', long past, tells.
      stream = new Readable({ autoDestroy: false, read () { this.push('abc'); this.push(null) } })
      for await (const chunk of stream) t.is(String(chunk), 'abc')
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
    ctx.body = new VirtualFile(stream, { name: 'a.bin', ...size })
  })
  app.on('error', (error: Error) => { errors.push(error) })
  const url = await listen(t, app)
  const cases: Array<[string, number]> = [
    ['/errored', 500], ['/errored?size=3', 500], ['/errored-kept', 500], ['/errored-kept?size=3', 500],
    ['/errored-kept-buffered', 500], ['/errored-kept-buffered?size=3', 500],
    // The source's own error keeps its meaning: a file that is not there is a 404.
    ['/missing', 404], ['/missing?size=3', 404],
    ['/destroyed', 502], ['/destroyed?size=3', 502],
    // Its bytes went elsewhere: a declared size is not met, and without one an empty 200 would
    // still pass for the whole file.
    ['/ended?size=3', 502], ['/ended', 502]
  ]
  for (const [path, status] of cases) {
    const res = await fetchBytes(url, path)
    assertErrorResponse(t, res, status)
  }
  t.true(errors.some((error) => (error.cause as Error | undefined)?.message === 'the upstream failed early'))
  t.true(errors.some((error) => (error.cause as { code?: string } | undefined)?.code === 'ERR_INVALID_ARG_TYPE'))
})

test('virtual-file: a stream that is empty and already at its end when serve() gets it (nothing read from it) is an empty 200, complete, not a 502', async t => {
  const errors: Array<Error & { status?: number }> = []
  const app = downloadApp((ctx) => {
    const size = ctx.query.size === undefined ? {} : { size: Number(ctx.query.size) }
    let stream: Readable
    if (ctx.path === '/passthrough') {
      // An export written into a PassThrough that found no rows.
      const rows = new PassThrough()
      rows.end()
      stream = rows
    } else {
      stream = new Readable({ read () {} })
      stream.push(null)
    }
    ctx.body = new VirtualFile(stream, { name: 'rows.csv', ...size })
  })
  app.on('error', (error: Error) => { errors.push(error) })
  const url = await listen(t, app)
  for (const path of ['/passthrough', '/pushed-null', '/passthrough?size=0', '/pushed-null?size=0']) {
    const res = await rawRequest(url + path)
    t.is(res.status, 200, path)
    t.true(res.complete, path)
    t.is(res.body.length, 0, path)
    t.is(res.headers['content-type'], 'text/csv; charset=utf-8', path)
    if (path.endsWith('size=0')) t.is(res.headers['content-length'], '0', path)
    else t.is(res.headers['transfer-encoding'], 'chunked', path)
  }
  // A declared size the empty stream does not meet is still the 502 of a source that broke its word.
  const short = await fetchBytes(url, '/passthrough?size=3')
  assertErrorResponse(t, short, 502)
  t.deepEqual(errors.map((error) => error.status), [502])
})

test('virtual-file: a readable-stream, minipass or web stream that failed, was closed or was read before serve() got it is a clean error, not an empty 200 or a request left hanging', async t => {
  const errors: Array<Error & { status?: number }> = []
  const ended = async (stream: { resume: () => unknown, once: (event: string, listener: () => void) => unknown }): Promise<void> => {
    stream.resume()
    await new Promise<void>((resolve) => { stream.once('end', () => { setImmediate(resolve) }) })
  }
  const makers: Record<string, () => Promise<VirtualContent>> = {
    'rs-errored': async () => {
      const stream = new RSReadable({ read () {} })
      stream.on('error', () => {})
      stream.destroy(new Error('the upstream failed early'))
      return stream
    },
    'rs-destroyed': async () => {
      const stream = new RSReadable({ read () {} })
      stream.destroy()
      return stream
    },
    'rs-ended': async () => {
      const stream = new RSReadable({ read () { this.push('abc'); this.push(null) } })
      await ended(stream)
      return stream
    },
    'rs-sent': async () => new RSReadable({ read () { this.push('abc'); this.push(null) } }),
    'mp-destroyed': async () => {
      const stream = new Minipass<Buffer>()
      stream.destroy()
      return stream
    },
    'mp-ended': async () => {
      const stream = new Minipass<Buffer>()
      stream.end(Buffer.from('abc'))
      await ended(stream)
      return stream
    },
    'mp-sent': async () => {
      const stream = new Minipass<Buffer>()
      stream.end(Buffer.from('abc'))
      return stream
    },
    // readable-stream 4 keeps its error, as node:stream does: that error, not a 502.
    'errored-like-rs4': async () => Object.assign((async function * () { yield Buffer.from('abc') })(), { destroyed: true, errored: new Error('kept by the stream') }),
    'web-read': async () => {
      const stream = new ReadableStream<Uint8Array>({ start (controller) { controller.enqueue(new Uint8Array([0x61])); controller.enqueue(new Uint8Array([0x62])); controller.close() } })
      const reader = stream.getReader()
      await reader.read()
      reader.releaseLock()
      return stream
    },
    'web-cancelled': async () => {
      const stream = new ReadableStream<Uint8Array>({ pull (controller) { controller.enqueue(new Uint8Array([0x61])) } })
      await stream.cancel()
      return stream
    },
    'web-sent': async () => new ReadableStream<Uint8Array>({ start (controller) { controller.enqueue(new Uint8Array([0x61, 0x62, 0x63])); controller.close() } }),
    // Legitimately empty: closed, but never read.
    'web-empty': async () => new ReadableStream<Uint8Array>({ start (controller) { controller.close() } })
  }
  const app = downloadApp(async (ctx) => {
    const make = makers[ctx.path.slice(1)]
    if (make !== undefined) ctx.body = new VirtualFile(await make(), { name: 'a.bin' })
  })
  app.on('error', (error: Error) => { errors.push(error) })
  const url = await listen(t, app)
  const failures: Array<[string, number, string]> = [
    // readable-stream 3 keeps no error once destroyed with one: a source closed before it was sent.
    ['rs-errored', 502, 'the source was closed before it was sent'],
    ['rs-destroyed', 502, 'the source was closed before it was sent'],
    ['rs-ended', 502, 'the source had been read to its end before it was sent'],
    ['mp-destroyed', 502, 'the source was closed before it was sent'],
    ['mp-ended', 502, 'the source had been read to its end before it was sent'],
    ['errored-like-rs4', 500, 'kept by the stream'],
    ['web-read', 502, 'VirtualFile: the web stream had been read or cancelled before it was sent'],
    ['web-cancelled', 502, 'VirtualFile: the web stream had been read or cancelled before it was sent']
  ]
  for (const [name, status, message] of failures) {
    errors.length = 0
    assertErrorResponse(t, await fetchBytes(url, '/' + name), status)
    t.deepEqual(errors.map((error) => [error.status, (error.cause as Error | undefined)?.message]), [[status, message]], name)
  }
  for (const [name, body] of [['rs-sent', 'abc'], ['mp-sent', 'abc'], ['web-sent', 'abc'], ['web-empty', '']] as const) {
    const res = await rawRequest(`${url}/${name}`)
    t.is(res.status, 200, name)
    t.true(res.complete, name)
    t.is(res.body.toString(), body, name)
  }
})

test('virtual-file: an object-mode stream of numbers or objects is a clean 500 before the headers, not a connection closed with no status line; one of buffers and strings is sent', async t => {
  const errors: Error[] = []
  const app = downloadApp((ctx) => {
    if (ctx.path === '/numbers') ctx.body = new VirtualFile(Readable.from([1, 2, 3]), { name: 'n.txt' })
    else if (ctx.path === '/objects') ctx.body = new VirtualFile(Readable.from([{ row: 1 }]), { name: 'o.txt' })
    else ctx.body = new VirtualFile(Readable.from([Buffer.from('ab'), 'cd', new Uint8Array([0x65])]), { name: 'b.txt' })
  })
  app.on('error', (error: Error) => { errors.push(error) })
  const url = await listen(t, app)
  assertErrorResponse(t, await fetchBytes(url, '/numbers'), 500)
  assertErrorResponse(t, await fetchBytes(url, '/objects'), 500)
  t.is(errors.length, 2)
  t.deepEqual(errors.map((error) => (error.cause as Error | undefined)?.message), ['VirtualFile: a stream chunk must be bytes or a string, not number', 'VirtualFile: a stream chunk must be bytes or a string, not object'])
  const res = await fetchBytes(url, '/bytes')
  t.is(res.status, 200)
  t.is(res.body.toString(), 'abcde')
})

test('virtual-file: a generator that throws before its first chunk is the app\'s 500 with or without a declared size, its ENOENT a 404 (a wrong length stays a 502)', async t => {
  const url = await appOf(t, () => new VirtualFile((async function * () { throw new Error('the export failed') })(), { name: 'e.csv', size: 10 }))
  assertErrorResponse(t, await fetchBytes(url, '/'), 500)
  const unsized = await appOf(t, () => new VirtualFile((async function * () { throw new Error('the export failed') })(), { name: 'e.csv' }))
  assertErrorResponse(t, await fetchBytes(unsized, '/'), 500)
  // One that cannot find its input keeps that meaning.
  const missing = await appOf(t, () => new VirtualFile((async function * () { throw Object.assign(new Error('no such row file'), { code: 'ENOENT' }) })(), { name: 'e.csv', size: 10 }))
  assertErrorResponse(t, await fetchBytes(missing, '/'), 404)
  const short = await appOf(t, () => new VirtualFile((async function * () { yield Buffer.from('12345') })(), { name: 'e.csv', size: 10 }))
  assertErrorResponse(t, await fetchBytes(short, '/'), 502)
})

test('virtual-file: a stream of another library (not a node:stream Readable, but with destroy()) is destroyed when it is never sent (HEAD, 304, 412)', async t => {
  // What readable-stream and minipass objects look like to VirtualFile: an async iterable with destroy().
  let destroyed = 0
  function foreign (): AsyncIterable<Buffer> & { destroy: () => void } {
    return {
      destroy () { destroyed++ },
      async * [Symbol.asyncIterator] () { yield Buffer.from('abc') }
    }
  }
  const url = await listen(t, downloadApp((ctx) => { ctx.body = new VirtualFile(foreign(), { name: 'f.txt', etag: '"v1"' }) }))
  t.is((await request(url).head('/')).status, 200)
  t.is((await request(url).get('/').set('If-None-Match', '"v1"')).status, 304)
  t.is((await request(url).get('/').set('If-Match', '"v2"')).status, 412)
  t.is(destroyed, 3)
  const res = await fetchBytes(url, '/')
  t.is(res.body.toString(), 'abc')
  t.is(destroyed, 3)
})

test('virtual-file: an object-mode stream waiting for its next row is destroyed when the client leaves, before its first row or after some', async (t) => {
  const sources: Readable[] = []
  const url = await listen(t, downloadApp((ctx) => {
    const source = new Readable({ objectMode: true, read () {} })
    sources.push(source)
    if (ctx.path === '/after') source.push(Buffer.alloc(100_000, 0x61))
    ctx.body = new VirtualFile(source, { name: 'rows.csv' })
  }))
  for (const [index, path] of ['/before', '/after'].entries()) {
    const socket = connect(Number(new URL(url).port), '127.0.0.1')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
    if (path === '/after') await once(socket, 'data')
    else {
      // Until the route has made its source (a fixed 100 ms was too short under the loaded suite).
      for (let waited = 0; sources.length <= index && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    socket.destroy()
    const source = sources.at(-1)
    if (source === undefined) throw new Error('no source')
    if (!source.destroyed) await new Promise((resolve) => { source.once('close', resolve); setTimeout(resolve, 2000) })
    t.true(source.destroyed, path)
  }
})

test('virtual-file: an object-mode stream that fails after its first rows, or is closed before its end, cuts the transfer short and is reported once as the source\'s failure', async (t) => {
  const errors: Error[] = []
  const app = downloadApp((ctx) => {
    const source = new Readable({ objectMode: true, read () {} })
    source.push('row1\n')
    // After the first row has gone out: a failing cursor, or one closed without an error.
    setTimeout(() => { source.destroy(ctx.path === '/fails' ? new Error('the cursor failed') : undefined) }, 100)
    ctx.body = new VirtualFile(source, { name: 'rows.csv' })
  })
  app.on('error', (error: Error) => { errors.push(error) })
  const url = new URL(await listen(t, app))
  for (const path of ['/fails', '/closed']) {
    const outcome = await new Promise<{ status: number | undefined, body: string, complete: boolean }>((resolve, reject) => {
      get({ host: url.hostname, port: url.port, path }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
        const done = (): void => { resolve({ status: res.statusCode, body, complete: res.complete }) }
        res.on('end', done)
        res.on('error', done)
      }).on('error', reject)
    })
    t.deepEqual(outcome, { status: 200, body: 'row1\n', complete: false }, path)
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.is(errors.length, 2, errors.map((error) => error.message).join(' | '))
  t.regex(errors[0]?.message ?? '', /the cursor failed/)
  t.regex(errors[1]?.message ?? '', /Premature close|before its end/i)
})

test('virtual-file: an object-mode stream that emits an error after its end (a misbehaving source) has still sent its bytes: the response is whole, sized or not', async (t) => {
  const url = new URL(await listen(t, downloadApp((ctx) => {
    let n = 0
    const source = new Readable({ objectMode: true, read () { this.push(n++ < 30 ? Buffer.alloc(4096, 0x61) : null) } })
    source.on('end', () => { setImmediate(() => source.emit('error', new Error('error after end'))) })
    ctx.body = new VirtualFile(source, { name: 'x.bin', size: ctx.query.sized === '1' ? 30 * 4096 : undefined })
  })))
  for (const sized of ['0', '1']) {
    const outcome = await new Promise<string>((resolve, reject) => {
      get({ host: url.hostname, port: url.port, path: `/?sized=${sized}` }, (res) => {
        let bytes = 0
        res.on('data', (chunk: Buffer) => { bytes += chunk.length })
        // A slow client: the source has ended (and failed) before the body is read.
        res.pause()
        setTimeout(() => res.resume(), 300)
        res.on('end', () => { resolve(`${res.statusCode ?? 0} ${bytes} ${String(res.complete)}`) })
        res.on('error', () => { resolve(`${res.statusCode ?? 0} ${bytes} error`) })
      }).on('error', reject)
    })
    t.is(outcome, `200 ${30 * 4096} true`, `sized=${sized}`)
  }
})

test('virtual-file: a stream never sent (HEAD, 412, a route\'s 204, a 304) that errors while it is released does not end the process: an fs stream of a deleted file, a readable-stream one that fails its destroy', async t => {
  const missing = join(tmpdir(), 'kd-no-such-dir', 'deleted-upload.bin')
  const app = downloadApp(async (ctx) => {
    // No 'error' listener of the route's own, as in an app that builds the stream and hands it over.
    const stream = ctx.query.kind === 'rs'
      ? new (createRequire(import.meta.url)('readable-stream').Readable as new (options: object) => Readable)({
        read () {},
        destroy (_error: Error | null, callback: (error: Error) => void) { callback(new Error('the upstream connection failed while closing')) }
      })
      : createReadStream(missing)
    if (ctx.query.status !== undefined) ctx.status = Number(ctx.query.status)
    ctx.body = download(new VirtualFile(stream, { name: 'report.pdf', etag: '"v1"' }))
  })
  const url = await listen(t, app)
  for (const kind of ['fs', 'rs']) {
    const head = await fetch(`${url}/?kind=${kind}`, { method: 'HEAD' })
    t.is(head.status, 200, kind)
    t.is(head.headers.get('etag'), '"v1"', kind)
    t.is((await fetch(`${url}/?kind=${kind}`, { headers: { 'if-match': '"v0"' } })).status, 412, kind)
    t.is((await fetch(`${url}/?kind=${kind}`, { headers: { 'if-none-match': '"v1"' } })).status, 304, kind)
    t.is((await fetch(`${url}/?kind=${kind}&status=204`)).status, 204, kind)
    // The errors of the released streams have had their turn; the server still answers.
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const get = await fetch(`${url}/?kind=fs`)
  t.is(get.status, 404)
  t.is(await get.text(), 'Not Found')
})

test('virtual-file: a Node stream read from before it was handed over is sent from where it is — whole when the chunk was put back (unshift, a type sniffer\'s way); with its size, a chunk dropped fails the response (502) instead of passing for the file', async t => {
  const content = 'HEADER,LINE\nrow1\nrow2\n'
  const sniffed = async (putBack: boolean): Promise<Readable> => {
    const stream = Readable.from([Buffer.from('HEADER,LINE\n'), Buffer.from('row1\nrow2\n')], { objectMode: false })
    await once(stream, 'readable')
    const first = stream.read(12) as Buffer
    if (putBack) stream.unshift(first)
    return stream
  }
  const app = downloadApp(async (ctx) => {
    const stream = await sniffed(ctx.query.back === '1')
    ctx.body = new VirtualFile(stream, { name: 'export.csv', size: ctx.query.sized === '1' ? Buffer.byteLength(content) : undefined })
  })
  const server = app.listen(0, '127.0.0.1')
  t.teardown(() => { server.close() })
  await once(server, 'listening')
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const whole = await fetch(`${base}/?back=1`)
  t.is(await whole.text(), content)
  const rest = await fetch(`${base}/`)
  t.is(await rest.text(), 'row1\nrow2\n', 'unsized: the rest, as a Node stream cannot tell')
  // sized: what is left is short of it (here at once, so before any header: 502), never the file
  const sized = await fetch(`${base}/?sized=1`)
  t.is(sized.status, 502)
  t.is(await sized.text(), 'Bad Gateway')
})
