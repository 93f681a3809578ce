import test from 'ava'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import type { DownloadFile } from '../../source/types.ts'

const file = (where: { path?: string, url?: string }): DownloadFile => ({
  name: 'x', ...where, stat: async () => ({}), open: async () => { throw new Error('never opened') }
})
const get = { method: 'GET', headers: {} }

test('internalRedirect(): exposes backend internal-redirect, sources and destinationUrl', (t) => {
  const rule = internalRedirect({ sourceDir: '/srv/files', destinationUrl: '/private' })
  t.is(rule.backend, 'internal-redirect')
  t.is(rule.sourceDir, '/srv/files')
  t.is(rule.destinationUrl, '/private/')
  t.false(rule.forwardQuery)
})

test('internalRedirect(): missing or non-path destinationUrl, no source → TypeError', (t) => {
  t.throws(() => internalRedirect({ sourceDir: '/s' } as never), { instanceOf: TypeError, message: /^internalRedirect\(\): destinationUrl is required/ })
  t.throws(() => internalRedirect({ sourceDir: '/s', destinationUrl: 'private/' }), { instanceOf: TypeError, message: /^internalRedirect\(\): destinationUrl must be/ })
  t.throws(() => internalRedirect({ sourceDir: '/s', destinationUrl: '//evil.example/x/' }), { instanceOf: TypeError, message: /^internalRedirect\(\): destinationUrl must be/ })
  t.throws(() => internalRedirect({ sourceDir: '/s', destinationUrl: '/a%20b/' }), { instanceOf: TypeError, message: /^internalRedirect\(\): destinationUrl must not contain "%"/ })
  t.throws(() => internalRedirect({ destinationUrl: '/p/' }), { instanceOf: TypeError, message: /^internalRedirect\(\): sourceDir or sourceUrl is required/ })
})

test('internalRedirect: Location with pchar-escaped segments (RFC 3875 §6.3.2)', (t) => {
  const rule = internalRedirect({ sourceDir: '/srv/files', destinationUrl: '/private/' })
  t.deepEqual(rule.match(file({ path: '/srv/files/a b/ü?#.txt' }), get), { header: 'Location', value: '/private/a%20b/%C3%BC%3F%23.txt', validators: false })
  t.is(rule.match(file({ path: '/srv/other/x' }), get), undefined)
})

test('internalRedirect sourceUrl with forwardQuery: the query goes into Location with "{" and "}" escaped (Caddy, which executes such redirects, would expand them as placeholders)', (t) => {
  const rule = internalRedirect({ sourceUrl: 'https://o.example/m/', destinationUrl: '/_origin/', forwardQuery: true })
  t.is(rule.match(file({ url: 'https://o.example/m/k.bin?sig=1&label={env.HOME}' }), get)?.value, '/_origin/k.bin?sig=1&label=%7Benv.HOME%7D')
})
