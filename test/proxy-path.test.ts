import test from 'ava'
import fc from 'fast-check'
import { caddyPath, encodedFilePath, encodedPath, rawFilePath, rawPath, remotePath } from '../source/proxy-path.ts'

/** The bytes Node's setHeader writes for a header value (one byte per char ≤ U+00FF). */
const wire = (value: string): string => Buffer.from(value, 'latin1').toString('hex')
const utf8 = (value: string): string => Buffer.from(value, 'utf8').toString('hex')

// reference/proxies.md §2: nginx and lighttpd need the encoded form, Apache and Caddy the raw one.
const table: Array<[name: string, encoded: string]> = [
  ['a b%20c ü.txt', 'a%20b%2520c%20%C3%BC.txt'],
  ['a%20b.txt', 'a%2520b.txt'],
  ['a b.txt', 'a%20b.txt'],
  ['ü.txt', '%C3%BC.txt'],
  ['q?x.txt', 'q%3Fx.txt'],
  ['h#x.txt', 'h%23x.txt'],
  ['%41.txt', '%2541.txt'],
  ['snow ☃', 'snow%20%E2%98%83'],
  ['emoji😀.txt', 'emoji%F0%9F%98%80.txt'],
  ['semi;colon&amp=1+2.txt', 'semi%3Bcolon%26amp%3D1%2B2.txt'],
  ["it's (1)!~*.txt", "it's%20(1)!~*.txt"]
]

for (const [name, encoded] of table) {
  test(`nginx/lighttpd encoding: ${JSON.stringify(name)} → ${encoded}`, (t) => {
    t.is(encodedPath('/protected/', [name]), `/protected/${encoded}`)
    t.is(encodedFilePath('/srv/files', [name]), `/srv/files/${encoded}`)
    t.is(decodeURIComponent(encoded), name, 'one decode (what nginx and lighttpd do) gives the name back')
  })
  test(`Apache raw value: ${JSON.stringify(name)} goes out as its UTF-8 bytes`, (t) => {
    const value = rawFilePath('/srv/files', [name])
    t.is(typeof value, 'string')
    t.is(wire(value ?? ''), utf8(`/srv/files/${name}`))
    t.is(Buffer.from(value ?? '', 'latin1').toString('utf8'), `/srv/files/${name}`, 'the header\'s bytes read as UTF-8 give the path back')
  })
}

test('Caddy raw value: UTF-8 bytes, % kept literally', (t) => {
  t.is(wire(caddyPath('/protected/', ['a b%20c ü.txt']) ?? ''), utf8('/protected/a b%20c ü.txt'))
  t.is(caddyPath('/protected/', ['h#x.txt']), '/protected/h#x.txt')
})

test('Caddy cannot take a name with "?": no value (the file is streamed)', (t) => {
  t.is(caddyPath('/protected/', ['q?x.txt']), undefined)
  t.is(caddyPath('/protected/', ['dir?', 'x.txt']), undefined)
})

test('segments are joined with / and each encoded on its own', (t) => {
  t.is(encodedPath('/p/', ['snow ☃', 'a/b']), '/p/snow%20%E2%98%83/a%2Fb')
  t.is(encodedFilePath('/', ['x y']), '/x%20y')
  t.is(rawFilePath('/', ['x y']), '/x y')
})

test('lighttpd values refuse control characters and DEL (lighttpd reads each as "_"), nginx ones keep them encoded', (t) => {
  for (const name of ['a\x01b.txt', 'a\tb.txt', 'a\x7fb.txt', 'a\x1bb.txt']) {
    t.is(encodedFilePath('/srv/files', [name]), undefined, JSON.stringify(name))
    t.is(encodedPath('/p/', [name]), '/p/' + encodeURIComponent(name))
  }
  t.is(encodedFilePath('/srv/fi\x01les', ['x.txt']), undefined, 'in the directory too')
})

test('raw values refuse what a header cannot carry intact: controls, DEL, trailing white space', (t) => {
  t.is(rawPath('/p/', ['a\tb.txt']), undefined)
  t.is(rawPath('/p/', ['a\x01b.txt']), undefined)
  t.is(rawPath('/p/', ['a\x7fb.txt']), undefined)
  t.is(rawPath('/p/', ['trailing ']), undefined)
  t.is(rawPath('/p/', ['lone\uD800']), undefined)
  t.is(rawPath('/p/', ['inner space.txt']), '/p/inner space.txt')
})

test('encoded values are printable ASCII without CR, LF, NUL for any name, and refuse lone surrogates', (t) => {
  for (const name of ['a\r\nb', 'nul\0', 'tab\t', 'del\x7f', 'ü']) {
    t.regex(encodedPath('/p/', [name]) ?? '', /^[\x21-\x7e]+$/)
  }
  t.is(encodedPath('/p/', ['x\uDC00']), undefined)
})

test('encodedPath is encodeURIComponent of each segment, joined with / (its fast path for plain names included), or undefined for a lone surrogate', (t) => {
  const segment = fc.oneof(fc.string({ unit: 'grapheme-ascii' }), fc.string({ unit: 'binary' }), fc.constantFrom('', 'a', "it's(1)!~*", 'a b', '%', 'x\uD800', '\uDC00'))
  fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), (segments) => {
    const expected = segments.every((s) => s.isWellFormed()) ? '/p/' + segments.map(encodeURIComponent).join('/') : undefined
    t.is(encodedPath('/p/', segments), expected)
  }), { numRuns: 2000 })
})

test('nginx remote path: scheme/host[:port], % doubled in the path, query unchanged (proxies.md §9)', (t) => {
  t.is(remotePath('/_remote/', new URL('https://b.s3.example/k%20x?X-Amz-Signature=ab%2Fc&X-Amz-Date=1')),
    '/_remote/https/b.s3.example/k%2520x?X-Amz-Signature=ab%2Fc&X-Amz-Date=1')
  t.is(remotePath('/_remote/', new URL('http://127.0.0.1:9000/bucket/ü q.txt')),
    '/_remote/http/127.0.0.1:9000/bucket/%25C3%25BC%2520q.txt')
  t.is(remotePath('/_remote/', new URL('https://h.example/a?')), '/_remote/https/h.example/a')
  t.is(remotePath('/_remote/', new URL('https://h.example:443/a#frag')), '/_remote/https/h.example/a', 'default port and fragment dropped')
})

test('nginx remote path: URLs nginx would rewrite (//, dot segments, directories) and non-http(s) give no value', (t) => {
  t.is(remotePath('/_remote/', new URL('https://h.example/a//b')), undefined)
  t.is(remotePath('/_remote/', new URL('https://h.example/dir/')), undefined)
  t.is(remotePath('/_remote/', new URL('https://h.example/')), undefined)
  t.is(remotePath('/_remote/', new URL('ftp://h.example/a')), undefined)
  t.is(remotePath('/_remote/', new URL('https://u:p@h.example/a')), undefined)
  t.is(remotePath('/_remote/', new URL('https://h.example/a/%2e%2e/b')), '/_remote/https/h.example/b', 'WHATWG resolves encoded dot segments first')
})
