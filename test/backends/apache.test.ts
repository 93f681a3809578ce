import { once } from 'node:events'
import type { Server } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import { apache } from '../../source/backends/apache.ts'
import type { DownloadFile } from '../../source/types.ts'
import { downloadApp } from '../helpers/koa.ts'

const file = (path: string): DownloadFile => ({
  name: 'x', path, stat: async () => ({ etag: '"e1"', lastModified: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)) }), open: async () => { throw new Error('never opened') }
})
const get = { method: 'GET', headers: {} }

/** The raw bytes of the response head, as the proxy reads them. */
async function rawHead (server: Server): Promise<Buffer> {
  const { port } = server.address() as AddressInfo
  const socket = connect(port, '127.0.0.1')
  socket.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const chunks: Buffer[] = []
  for await (const chunk of socket) chunks.push(chunk as Buffer)
  const all = Buffer.concat(chunks)
  return all.subarray(0, all.indexOf('\r\n\r\n'))
}

test('apache(): exposes backend, sourceDir and destinationDir, normalised', (t) => {
  const rule = apache({ sourceDir: '/srv/files/', destinationDir: '/var/www/files/' })
  t.is(rule.backend, 'apache')
  t.is(rule.sourceDir, '/srv/files')
  t.is(rule.destinationDir, '/var/www/files')
})

test('apache(): missing or relative destinationDir, no source, unknown option → TypeError naming the option', (t) => {
  t.throws(() => apache({ sourceDir: '/s' } as never), { instanceOf: TypeError, message: /^apache\(\): destinationDir is required/ })
  t.throws(() => apache({ sourceDir: '/s', destinationDir: 'files' }), { instanceOf: TypeError, message: /^apache\(\): destinationDir must be an absolute/ })
  t.throws(() => apache({ destinationDir: '/d' }), { instanceOf: TypeError, message: /^apache\(\): sourceDir or sourceUrl is required/ })
  t.throws(() => apache({ sourceDir: 's', destinationDir: '/d' }), { instanceOf: TypeError, message: /^apache\(\): sourceDir must be an absolute/ })
  t.throws(() => apache({ sourceDir: '/s', destinationDir: '/d', destinationUrl: '/x/' } as never), { instanceOf: TypeError, message: /^apache\(\): unknown option "destinationUrl"/ })
})

test('apache: the raw path below destinationDir, asking for validators; sourceUrl segments decoded', (t) => {
  const rule = apache({ sourceDir: '/srv/files', sourceUrl: 'https://h.example/media/', destinationDir: '/var/www' })
  t.deepEqual(rule.match(file('/srv/files/a%20b.txt'), get), { header: 'X-Sendfile', value: '/var/www/a%20b.txt', validators: true })
  const viaUrl: DownloadFile = { ...file('/elsewhere/x'), url: 'https://h.example/media/sub/a%20b.txt?sig=1' }
  t.is(rule.match(viaUrl, get)?.value, '/var/www/sub/a b.txt', 'decoded, and the query never goes into a file path')
})

test('apache: names a raw header cannot carry (controls, trailing space) are not offloaded', (t) => {
  const rule = apache({ sourceDir: '/s', destinationDir: '/d' })
  t.is(rule.match(file('/s/tab\there'), get), undefined)
  t.is(rule.match(file('/s/trailing '), get), undefined)
  t.is(rule.match(file('/s/esc\x1b[31m'), get), undefined)
})

test('apache: a path mod_xsendfile cannot open (its XSendFilePath and the path past PATH_MAX: Apache\'s 404) is not offloaded, the app streams it', (t) => {
  const rule = apache({ sourceDir: '/s', destinationDir: '/srv/protected' }) // 14 bytes
  const name = (bytes: number): string => '/s/' + 'd'.repeat(200) + '/' + 'n'.repeat(bytes - 204)
  // 14 + the value ('/srv/protected/' + the rest: 12 more bytes than the name) + 4 ≤ 4096
  t.truthy(rule.match(file(name(4096 - 4 - 14 - 12)), get))
  t.is(rule.match(file(name(4096 - 4 - 14 - 12 + 1)), get), undefined)
  // UTF-8 bytes count, not characters
  t.is(rule.match(file('/s/' + 'é'.repeat(2100)), get), undefined)
})

test('apache: a UTF-8 name reaches the wire as its UTF-8 bytes, not latin1 (proxies.md §2)', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = file('/srv/files/snow ☃/ü.txt') }, { rules: [apache({ sourceDir: '/srv/files', destinationDir: '/srv/files' })] })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const head = await rawHead(server)
  const expected = Buffer.concat([Buffer.from('\r\nX-Sendfile: '), Buffer.from('/srv/files/snow ☃/ü.txt', 'utf8'), Buffer.from('\r\n')])
  t.true(head.includes(expected), head.toString('latin1'))
  t.true(head.includes('\r\nETag: "e1"\r\n'))
  t.true(head.includes('\r\nLast-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\n'))
  t.true(head.includes('\r\nContent-Length: 0\r\n'))
})
