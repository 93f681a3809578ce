import { execFile } from 'node:child_process'
import { once } from 'node:events'
import http2 from 'node:http2'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import request from 'supertest'
import { negotiated, parseMapping } from '../../source/backends/negotiated.ts'
import type { NegotiatedOptions } from '../../source/backends/negotiated.ts'
import { PathFile } from '../../source/path-file.ts'
import type { OffloadRequest } from '../../source/offload-rule.ts'
import type { DownloadFile } from '../../source/types.ts'
import { downloadApp, fixtureRoot } from '../helpers/koa.ts'

const file = (path: string): DownloadFile => ({
  name: 'x', path, stat: async () => ({}), open: async () => { throw new Error('never opened') }
})
/** A request as Koa's: its headers, and the Node request's raw lines (an array value: several lines). */
const req = (headers: Record<string, string | string[]>): OffloadRequest & { req: { rawHeaders: string[] } } => ({
  method: 'GET',
  headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, name === 'set-cookie' || !Array.isArray(value) ? value : value.join(', ')])),
  req: { rawHeaders: Object.entries(headers).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).flatMap((line) => [name, line])) }
})
const hello = (): PathFile => new PathFile(`${fixtureRoot}/hello.txt`)

test('negotiated(): allow must list only X-Accel-Redirect / X-Sendfile; bad mapping and trust combinations → TypeError', (t) => {
  t.throws(() => negotiated({} as never), { instanceOf: TypeError, message: /^negotiated\(\): allow must be a non-empty array/ })
  t.throws(() => negotiated({ allow: [] }), { instanceOf: TypeError, message: /^negotiated\(\): allow must be/ })
  t.throws(() => negotiated({ allow: ['Content-Type' as never] }), { instanceOf: TypeError, message: /allow may only contain .* not "Content-Type"/ })
  t.throws(() => negotiated({ allow: ['X-LIGHTTPD-send-file' as never] }), { instanceOf: TypeError, message: /allow may only contain/ })
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { relative: '/p/' } }), { instanceOf: TypeError, message: /mapping key must be an absolute/ })
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/s': 'p' } }), { instanceOf: TypeError, message: /destinationUrl must be/ })
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/s': '/p/' }, trustMappingHeader: true }), { instanceOf: TypeError, message: /trustMappingHeader needs/ })
  t.throws(() => negotiated({ allow: ['X-Sendfile'], trustMappingHeader: true }), { instanceOf: TypeError, message: /trustMappingHeader needs/ })
  t.throws(() => negotiated({ allow: ['X-Sendfile'], sendfile: 'decoded' as never }), { instanceOf: TypeError, message: /sendfile must be/ })
})

test('negotiated(): two mapping entries on one location, or one inside another → TypeError naming both', (t) => {
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/public': '/p/', '/srv/secret': '/p/sub/' } }), {
    instanceOf: TypeError,
    message: 'negotiated(): mapping "/srv/public" → /p/ and "/srv/secret" → /p/sub/ have nested destinations, so the proxy would serve one directory\'s files for the other\'s: give each directory its own location, neither inside another'
  })
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/a': '/q/', '/srv/public': '/p', '/srv/secret': '/p/' } }),
    { instanceOf: TypeError, message: /^negotiated\(\): mapping "\/srv\/public" → \/p\/ and "\/srv\/secret" → \/p\/ have the same destination/ })
  t.notThrows(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/a': '/p/', '/srv/a/': '/p', '/srv/b': '/pp/' } }), 'the same directory twice; a prefix that is not a whole segment')
})

/** What `script` (an ES module run by a child process with NODE_DEBUG=koa-downloads) writes to stderr. */
async function debugOutput (script: string): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_DEBUG: 'koa-downloads' } }, (error, _out, err) => {
      if (error) reject(error); else resolve(err)
    })
  })
}
const negotiatedUrl = JSON.stringify(new URL('../../source/backends/negotiated.ts', import.meta.url).href)

test('negotiated: a mapping to "/" is refused, as nginx() refuses it (behind nginx it loops back into the app\'s location /): the option → TypeError, the header → ignored with a debug line', async (t) => {
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/files/': '/' } }), {
    instanceOf: TypeError,
    message: 'negotiated(): the location of mapping "/srv/files" cannot be "/": it would take every URL of the server, the app\'s too; use a prefix of its own, e.g. \'/protected/\''
  })
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/other': '/o/', '/srv/files': '/' } }), { instanceOf: TypeError, message: /^negotiated\(\): the location of mapping "\/srv\/files" cannot be "\/"/ })
  const rule = negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true, accel: 'encoded' })
  const ask = (mapping: string): string | undefined => rule.match(file('/srv/files/x'), req({ 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': mapping }))?.value
  t.is(ask('/srv/files/=/'), undefined)
  t.is(ask('/srv/files=/'), undefined)
  t.is(ask('/srv/files/=/protected/, /srv/=/'), undefined, 'the whole header, not only that entry')
  t.is(ask('/srv/files/=/protected/'), '/protected/x')
  const stderr = await debugOutput(`
    const { negotiated } = await import(${negotiatedUrl})
    const file = { name: 'x', path: '/srv/files/x', stat: async () => ({}), open: async () => { throw new Error('never opened') } }
    const headers = { 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': '/srv/files/=/' }
    negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true }).match(file, { method: 'GET', headers, req: { rawHeaders: ['X-Accel-Mapping', '/srv/files/=/'] } })
  `)
  t.regex(stderr, /offload: negotiated\(\) does not cover "\/srv\/files\/x": X-Accel-Mapping "\/srv\/files\/=\/" maps to "\/", which would take every URL of the server, the app's too\n/)
})

test('negotiated: the canonical configured header is sent, whatever the case of the request value', (t) => {
  const rule = negotiated({ allow: ['x-accel-redirect' as never, 'X-Sendfile'], mapping: { '/srv/files': '/protected/' } })
  t.deepEqual(rule.allow, ['X-Accel-Redirect', 'X-Sendfile'])
  t.deepEqual(rule.match(file('/srv/files/a b.txt'), req({ 'x-sendfile-type': 'X-ACCEL-REDIRECT' })), { header: 'X-Accel-Redirect', value: '/protected/a b.txt', validators: false, sameValidators: true })
  t.deepEqual(rule.match(file('/srv/files/a b.txt'), req({ 'x-sendfile-type': 'x-sendfile' })), { header: 'X-Sendfile', value: '/srv/files/a b.txt', validators: true })
  const encoded = negotiated({ allow: ['X-Sendfile'], sendfile: 'encoded' })
  t.is(encoded.match(file('/srv/files/a b.txt'), req({ 'x-sendfile-type': 'X-Sendfile' }))?.value, '/srv/files/a%20b.txt')
})

test('negotiated: by default a value both servers of a header read alike (raw: spaces and UTF-8 work on all four), and a path with "%" (or "?" for X-Accel-Redirect) is streamed; accel/sendfile name the server to offload those too', (t) => {
  const value = (options: Partial<NegotiatedOptions>, path: string, type: string): string | undefined =>
    negotiated({ allow: ['X-Accel-Redirect', 'X-Sendfile'], mapping: { '/srv/files': '/protected/' }, ...options }).match(file(path), req({ 'x-sendfile-type': type }))?.value
  const latin1 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1')
  t.is(value({}, '/srv/files/ü b.txt', 'X-Accel-Redirect'), latin1('/protected/ü b.txt'))
  t.is(value({}, '/srv/files/ü b.txt', 'X-Sendfile'), latin1('/srv/files/ü b.txt'))
  // nginx reads `a%20b.txt` as "a b.txt", Caddy as "a%20b.txt"; lighttpd and Apache likewise.
  t.is(value({}, '/srv/files/a%20b.txt', 'X-Accel-Redirect'), undefined)
  t.is(value({}, '/srv/files/a%20b.txt', 'X-Sendfile'), undefined)
  // nginx and Caddy cut the value at "?"; Apache and lighttpd take it as part of the name.
  t.is(value({}, '/srv/files/q?x.txt', 'X-Accel-Redirect'), undefined)
  t.is(value({}, '/srv/files/q?x.txt', 'X-Sendfile'), '/srv/files/q?x.txt')
  t.is(value({ accel: 'encoded' }, '/srv/files/a%20b.txt', 'X-Accel-Redirect'), '/protected/a%2520b.txt')
  t.is(value({ accel: 'encoded' }, '/srv/files/q?x.txt', 'X-Accel-Redirect'), '/protected/q%3Fx.txt')
  t.is(value({ accel: 'raw' }, '/srv/files/a%20b.txt', 'X-Accel-Redirect'), '/protected/a%20b.txt')
  t.is(value({ accel: 'raw' }, '/srv/files/q?x.txt', 'X-Accel-Redirect'), undefined, 'Caddy cannot serve a "?"')
  t.is(value({ sendfile: 'raw' }, '/srv/files/a%20b.txt', 'X-Sendfile'), '/srv/files/a%20b.txt')
  t.is(value({ sendfile: 'encoded' }, '/srv/files/a%20b.txt', 'X-Sendfile'), '/srv/files/a%2520b.txt')
  t.throws(() => negotiated({ allow: ['X-Accel-Redirect'], accel: 'decoded' as never }), { instanceOf: TypeError, message: /accel must be/ })
})

test('negotiated: an X-Sendfile path too long for mod_xsendfile (PATH_MAX with its XSendFilePath) is streamed, as apache() streams it', (t) => {
  const rule = negotiated({ allow: ['X-Sendfile'], sourceDir: '/srv/files' })
  const path = (length: number): string => `/srv/files/deep/${'n'.repeat(length - '/srv/files/deep/'.length)}`
  // The longest XSendFilePath is the file's own directory with a slash (/srv/files/deep/, 16 bytes): 16 + path + 4 ≤ 4096.
  t.is(rule.match(file(path(4076)), req({ 'x-sendfile-type': 'X-Sendfile' }))?.value, path(4076))
  t.is(rule.match(file(path(4077)), req({ 'x-sendfile-type': 'X-Sendfile' })), undefined)
})

test('negotiated: a value outside the allow-list never becomes a response header (Symfony #65683)', (t) => {
  const rule = negotiated({ allow: ['X-Sendfile'] })
  for (const type of ['Content-Type', 'Content-Disposition', 'X-Accel-Redirect', 'X-LIGHTTPD-send-file', 'X-Sendfile\r\nX-Evil: 1', '']) {
    t.is(rule.match(file('/srv/files/a'), req({ 'x-sendfile-type': type })), undefined, JSON.stringify(type))
  }
  t.is(rule.match(file('/srv/files/a'), req({})), undefined, 'no header → no offload')
  t.is(rule.match(file('/srv/files/a'), req({ 'x-sendfile-type': ['X-Sendfile', 'X-Sendfile'] })), undefined)
})

test('negotiated: X-Accel-Mapping from the request is ignored unless trustMappingHeader (CVE-2025-61780)', (t) => {
  const own = negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/files': '/protected/' } })
  const target = own.match(file('/srv/files/x'), req({ 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': '/srv/=/internal-admin/' }))
  t.is(target?.value, '/protected/x')
  const none = negotiated({ allow: ['X-Accel-Redirect'] })
  t.is(none.match(file('/srv/files/x'), req({ 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': '/srv/=/internal-admin/' })), undefined)
  const trusting = negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })
  t.is(trusting.match(file('/srv/files/x y'), req({ 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': '/srv/files/=/protected/' }))?.value, '/protected/x y')
})

test('negotiated: the mapping is a literal prefix on whole segments, never a regular expression (CVE-2026-34830)', (t) => {
  const rule = negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })
  const ask = (path: string, mapping: string): string | undefined => rule.match(file(path), req({ 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': mapping }))?.value
  t.is(ask('/srv/files/x', '/srv/.*=/p/'), undefined, '.* is not a pattern')
  t.is(ask('/srv/filesfoo/x', '/srv/files=/p/'), undefined, 'segment boundary')
  t.is(ask('/srv/files/x', '/srv/files=/p/$1'), '/p/$1/x', '$1 is taken literally, never as a back-reference')
  t.is(ask('/srv/files/x', '/srv/files=/p/../admin/'), undefined, 'a malformed URI prefix rejects the whole header')
  t.is(ask('/srv/files/x', '/srv/files=//evil.example/'), undefined)
  t.is(ask('/srv/files/x', '/other/=/o/, /srv/files/=/p/'), '/p/x')
  t.is(ask('/srv/files/x', 'garbage'), undefined)
})

test('negotiated through Koa: several X-Accel-Mapping lines (the client\'s, then an appending proxy\'s) are refused, not read as one joined mapping', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = hello() }, { rules: [negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })] })
  const server = app.listen(0, '127.0.0.1')
  t.teardown(() => { server.close() })
  await once(server, 'listening')
  // Raw lines: HTTP clients merge or refuse repeated headers themselves.
  const ask = async (mapping: string[]): Promise<string> => {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
    // Not end(): the app stops a download whose client has gone; Connection: close ends it.
    socket.write(['GET / HTTP/1.1', 'Host: app', 'X-Sendfile-Type: X-Accel-Redirect', ...mapping.map((m) => `X-Accel-Mapping: ${m}`), 'Connection: close', '', ''].join('\r\n'))
    let text = ''
    for await (const chunk of socket) text += String(chunk)
    return text
  }
  const twice = await ask([`${fixtureRoot}/=/attacker-chosen/`, `${fixtureRoot}/=/protected/`])
  t.regex(twice, /^HTTP\/1\.1 200 OK\r\n/)
  t.notRegex(twice, /x-accel-redirect/i)
  t.true(twice.endsWith('\r\n\r\nHello, world!\n'), 'streamed by Node instead')
  const single = await ask([`${fixtureRoot}/=/protected/`])
  t.regex(single, /\r\nX-Accel-Redirect: \/protected\/hello\.txt\r\n/i, 'one line is still honoured')
})

test('negotiated: X-Accel-Mapping lines are counted in the Node request\'s rawHeaders (any case), not in the joined headers; without rawHeaders a mapping is refused', (t) => {
  const rule = negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })
  const f = file('/srv/files/x')
  const joined = '/srv/=/attacker-chosen/, /srv/files/=/protected/'
  const headers = { 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': joined }
  // What Koa hands over for two lines: headers joined by Node, rawHeaders as received.
  const twoLines = { method: 'GET', headers, req: { rawHeaders: ['X-Sendfile-Type', 'X-Accel-Redirect', 'X-Accel-Mapping', '/srv/=/attacker-chosen/', 'x-accel-mapping', '/srv/files/=/protected/'] } }
  t.is(rule.match(f, twoLines), undefined)
  // The same joined value sent as one line by the proxy is its own mapping: both entries apply.
  const oneLine = { method: 'GET', headers, req: { rawHeaders: ['X-Sendfile-Type', 'X-Accel-Redirect', 'X-Accel-Mapping', joined] } }
  t.is(rule.match(f, oneLine)?.value, '/attacker-chosen/files/x')
  t.is(rule.match(f, { method: 'GET', headers }), undefined, 'no rawHeaders: one line or several cannot be told apart')
  const noRaw = { method: 'GET', headers, req: {} }
  t.is(rule.match(f, noRaw), undefined)
  t.is(rule.match(f, { method: 'GET', headers: { 'x-sendfile-type': 'X-Accel-Redirect' } }), undefined, 'no mapping at all')
})

test('negotiated over HTTP/2 (h2c): several X-Accel-Mapping lines are refused as over HTTP/1.1 (Http2ServerRequest has no headersDistinct); one line is honoured', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = hello() }, { rules: [negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })] })
  const server = http2.createServer(app.callback())
  t.teardown(() => { server.close() })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const ask = async (mapping: string[]): Promise<{ headers: http2.IncomingHttpHeaders, body: string }> => {
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    try {
      // The raw form sends each line on its own, as an appending proxy does.
      const stream = session.request([':method', 'GET', ':path', '/', 'x-sendfile-type', 'X-Accel-Redirect', ...mapping.flatMap((m) => ['x-accel-mapping', m])] as unknown as http2.OutgoingHttpHeaders)
      const [headers] = await once(stream, 'response') as [http2.IncomingHttpHeaders]
      let body = ''
      for await (const chunk of stream) body += String(chunk)
      return { headers, body }
    } finally { session.close() }
  }
  const twice = await ask([`${fixtureRoot}/=/attacker-chosen/`, `${fixtureRoot}/=/protected/`])
  t.is(Number(twice.headers[':status']), 200)
  t.is(twice.headers['x-accel-redirect'], undefined)
  t.is(twice.body, 'Hello, world!\n', 'streamed by Node instead')
  const single = await ask([`${fixtureRoot}/=/protected/`])
  t.is(single.headers['x-accel-redirect'], '/protected/hello.txt', 'one line is still honoured')
  t.is(single.body, '')
})

test('negotiated: a trusted X-Accel-Mapping is read as UTF-8 bytes (Node gives them one character per byte), so a non-ASCII directory matches; bytes that are not UTF-8 are ignored', (t) => {
  const rule = negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true, accel: 'encoded' })
  const ask = (mapping: string): string | undefined => rule.match(file('/srv/dätä/a b.txt'), req({ 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': mapping }))?.value
  // What Node reads for nginx's `proxy_set_header X-Accel-Mapping "/srv/dätä/=/protected/";`
  t.is(ask(Buffer.from('/srv/dätä/=/protected/', 'utf8').toString('latin1')), '/protected/a%20b.txt')
  t.is(ask(Buffer.from('/other/=/o/, /srv/dätä/=/protected/', 'utf8').toString('latin1')), '/protected/a%20b.txt')
  // The latin1 bytes of "ä" (0xE4) are not UTF-8: no directory of this process is named by them.
  t.is(ask('/srv/d\u00e4t\u00e4/=/protected/'), undefined)
  t.is(ask('/srv/\u2603/=/protected/'), undefined, 'above U+00FF: no header byte, a request built by hand')
  t.is(ask('/srv/=/p/'), '/p/d%C3%A4t%C3%A4/a%20b.txt')
})

test('negotiated through Koa: X-Accel-Mapping naming a non-ASCII directory in UTF-8 (as nginx sends it) offloads files below it', async (t) => {
  const nested = new PathFile(`${fixtureRoot}/snow ☃/nested.txt`)
  const app = downloadApp((ctx) => { ctx.body = nested }, { rules: [negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })] })
  const server = app.listen(0, '127.0.0.1')
  t.teardown(() => { server.close() })
  await once(server, 'listening')
  const ask = async (mapping: Buffer): Promise<string> => {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
    socket.write(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: app\r\nX-Sendfile-Type: X-Accel-Redirect\r\nConnection: close\r\nX-Accel-Mapping: '), mapping, Buffer.from('\r\n\r\n')]))
    let text = ''
    for await (const chunk of socket) text += String(chunk)
    return text
  }
  t.regex(await ask(Buffer.from(`${fixtureRoot}/snow ☃/=/protected/`, 'utf8')), /\r\nX-Accel-Redirect: \/protected\/nested\.txt\r\n/i)
  const latin1 = await ask(Buffer.from(`${fixtureRoot}/snow ä/=/protected/`, 'latin1'))
  t.notRegex(latin1, /x-accel-redirect/i)
})

test('negotiated: the debug line shows the mapping as read (UTF-8) when none covers the file, and says when the header is not UTF-8', async (t) => {
  const stderr = await debugOutput(`
    const { negotiated } = await import(${negotiatedUrl})
    const file = { name: 'x', path: '/srv/data/x', stat: async () => ({}), open: async () => { throw new Error('never opened') } }
    const ask = (line) => negotiated({ allow: ['X-Accel-Redirect'], trustMappingHeader: true })
      .match(file, { method: 'GET', headers: { 'x-sendfile-type': 'X-Accel-Redirect', 'x-accel-mapping': line }, req: { rawHeaders: ['X-Accel-Mapping', line] } })
    ask(Buffer.from('/srv/dätä/=/protected/, /srv/x/=/x/', 'utf8').toString('latin1'))
    ask('/srv/d\\u00e4t\\u00e4/=/protected/')
    negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/other': '/o/' } }).match(file, { method: 'GET', headers: { 'x-sendfile-type': 'X-Accel-Redirect' } })
  `)
  const lines = stderr.split('\n').filter((line) => line.includes('does not cover')).map((line) => line.replace(/^KOA-DOWNLOADS \d+: /, ''))
  t.deepEqual(lines, [
    'offload: negotiated(X-Accel-Redirect) does not cover "/srv/data/x": no mapping covers "/srv/data/x" (X-Accel-Mapping: "/srv/dätä" → /protected/, "/srv/x" → /x/)',
    'offload: negotiated() does not cover "/srv/data/x": X-Accel-Mapping "/srv/dätä/=/protected/" is not UTF-8',
    'offload: negotiated(X-Accel-Redirect) does not cover "/srv/data/x": no mapping covers "/srv/data/x" (mapping: "/srv/other" → /o/)'
  ])
})

test('parseMapping: pairs, or undefined for any malformed entry', (t) => {
  const f = file('/x')
  t.deepEqual(parseMapping('/a/=/p/, /b=/q', f), [{ sourceDir: '/a', destinationUrl: '/p/' }, { sourceDir: '/b', destinationUrl: '/q/' }])
  t.deepEqual(parseMapping(undefined, f), [])
  t.is(parseMapping('/a/=/p/, nope', f), undefined)
  t.is(parseMapping(['/a=/p/', '/b=/q/'], f), undefined)
})

test('negotiated through Koa: without the proxy\'s X-Sendfile-Type the file is streamed; with it, offloaded', async (t) => {
  const app = downloadApp((ctx) => { ctx.body = hello() }, { rules: [negotiated({ allow: ['X-Accel-Redirect'], mapping: { [fixtureRoot]: '/protected/' } })] })
  const plain = await request(app.callback()).get('/')
  t.is(plain.text, 'Hello, world!\n')
  t.is(plain.headers['x-accel-redirect'], undefined)
  const asked = await request(app.callback()).get('/').set('X-Sendfile-Type', 'X-Accel-Redirect')
  t.is(asked.headers['x-accel-redirect'], '/protected/hello.txt')
  t.is(asked.headers['content-length'], '0')
  const injected = await request(app.callback()).get('/').set('X-Sendfile-Type', 'Content-Type')
  t.is(injected.text, 'Hello, world!\n')
  t.is(injected.headers['content-type'], 'text/plain; charset=utf-8')
})

test('negotiated: sourceDir restricts which files may be offloaded', (t) => {
  const rule = negotiated({ allow: ['X-Sendfile'], sourceDir: '/srv/files' })
  t.is(rule.sourceDir, '/srv/files')
  t.is(rule.match(file('/etc/passwd'), req({ 'x-sendfile-type': 'X-Sendfile' })), undefined)
  t.is(rule.match(file('/srv/files/a'), req({ 'x-sendfile-type': 'X-Sendfile' }))?.value, '/srv/files/a')
})
