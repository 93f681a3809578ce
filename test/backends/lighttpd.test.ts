import test from 'ava'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import type { DownloadFile } from '../../source/types.ts'

const file = (where: { path?: string, url?: string }): DownloadFile => ({
  name: 'x', ...where, stat: async () => ({}), open: async () => { throw new Error('never opened') }
})
const get = { method: 'GET', headers: {} }

test('lighttpd(): exposes backend, sources and destinationDir, normalised', (t) => {
  const rule = lighttpd({ sourceDir: '/srv/files/', sourceUrl: 'http://h.example:8080/m', destinationDir: '/var/www/' })
  t.is(rule.backend, 'lighttpd')
  t.is(rule.sourceDir, '/srv/files')
  t.is(rule.sourceUrl, 'http://h.example:8080/m/')
  t.is(rule.destinationDir, '/var/www')
})

test('lighttpd(): missing or relative destinationDir, no source → TypeError naming the option', (t) => {
  t.throws(() => lighttpd({ sourceDir: '/s' } as never), { instanceOf: TypeError, message: /^lighttpd\(\): destinationDir is required/ })
  t.throws(() => lighttpd({ sourceDir: '/s', destinationDir: './d' }), { instanceOf: TypeError, message: /^lighttpd\(\): destinationDir must be an absolute/ })
  t.throws(() => lighttpd({ destinationDir: '/d' }), { instanceOf: TypeError, message: /^lighttpd\(\): sourceDir or sourceUrl is required/ })
  t.throws(() => lighttpd({ sourceUrl: 'https://h/x?y', destinationDir: '/d' }), { instanceOf: TypeError, message: /^lighttpd\(\): sourceUrl must be/ })
})

test('lighttpd: X-Sendfile with the whole path percent-encoded (it decodes once), validators requested', (t) => {
  const rule = lighttpd({ sourceDir: '/srv/files', destinationDir: '/var/my www' })
  t.deepEqual(rule.match(file({ path: '/srv/files/a b%20c ü.txt' }), get), { header: 'X-Sendfile', value: '/var/my%20www/a%20b%2520c%20%C3%BC.txt', validators: true })
  t.is(rule.match(file({ path: '/srv/files/q?x.txt' }), get)?.value, '/var/my%20www/q%3Fx.txt')
  t.is(rule.match(file({ path: '/srv/filesx/a' }), get), undefined)
})

test('lighttpd: a sourceUrl match maps decoded segments onto the directory and drops the query', (t) => {
  const rule = lighttpd({ sourceUrl: 'https://h.example/m/', destinationDir: '/d' })
  t.is(rule.match(file({ url: 'https://h.example/m/x%20y/%C3%BC.txt?v=2' }), get)?.value, '/d/x%20y/%C3%BC.txt')
})
