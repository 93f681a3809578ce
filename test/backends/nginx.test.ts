import test from 'ava'
import { accelExpires, nginx } from '../../source/backends/nginx.ts'
import type { DownloadFile } from '../../source/types.ts'

const file = (where: { path?: string, url?: string }): DownloadFile => ({
  name: 'x', ...where, stat: async () => ({}), open: async () => { throw new Error('never opened') }
})
const get = { method: 'GET', headers: {} }

test('nginx(): exposes its normalised configuration for the config generator', (t) => {
  const rule = nginx({ sourceDir: '/srv/files/', destinationUrl: '/protected', buffering: false, limitRate: 1024, expires: 60, charset: 'utf-8' })
  t.is(rule.backend, 'nginx')
  t.is(rule.sourceDir, '/srv/files')
  t.is(rule.sourceUrl, undefined)
  t.is(rule.destinationUrl, '/protected/')
  t.false(rule.remote)
  t.false(rule.forwardQuery)
  t.false(rule.buffering)
  t.is(rule.limitRate, 1024)
  t.is(rule.expires, 60)
  t.is(rule.charset, 'utf-8')
  t.false(rule.proxyRefusesSymlinks)
  t.true(nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', proxyRefusesSymlinks: true }).proxyRefusesSymlinks)
  const remote = nginx({ remote: true, destinationUrl: '/_remote/' })
  t.true(remote.remote)
  t.true(remote.forwardQuery, 'remote offload always carries the query (it is the signature)')
})

test('nginx(): every bad option → TypeError naming nginx() and the option', (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ sourceDir: '/s' }, /destinationUrl is required/],
    [{ destinationUrl: '/p/' }, /sourceDir or sourceUrl is required/],
    [{ sourceDir: 'relative', destinationUrl: '/p/' }, /sourceDir must be an absolute/],
    [{ sourceDir: '/s', destinationUrl: 'http://h/p/' }, /destinationUrl must be an absolute URL path/],
    [{ sourceDir: '/s', destinationUrl: '/dl%20files/' }, /destinationUrl must not contain "%"/],
    [{ sourceDir: '/s', destinationUrl: '/p/?x' }, /destinationUrl/],
    [{ sourceDir: '/s', destinationUrl: '/p/../q/' }, /destinationUrl/],
    [{ sourceDir: '/s', destinationUrl: '/p/', limitRate: -1 }, /limitRate must be an integer ≥ 0/],
    [{ sourceDir: '/s', destinationUrl: '/p/', limitRate: 1.5 }, /limitRate/],
    [{ sourceDir: '/s', destinationUrl: '/p/', limitRate: 'off' }, /limitRate/],
    [{ sourceDir: '/s', destinationUrl: '/p/', expires: -5 }, /expires must be/],
    [{ sourceDir: '/s', destinationUrl: '/p/', expires: true }, /expires/],
    [{ sourceDir: '/s', destinationUrl: '/p/', expires: 'off' }, /expires/],
    [{ sourceDir: '/s', destinationUrl: '/p/', expires: new Date(Number.NaN) }, /expires/],
    [{ sourceDir: '/s', destinationUrl: '/p/', buffering: 'no' }, /buffering must be a boolean/],
    [{ sourceDir: '/s', destinationUrl: '/p/', charset: 'utf 8' }, /charset must be/],
    [{ sourceDir: '/s', destinationUrl: '/p/', charset: true }, /charset/],
    [{ sourceDir: '/s', destinationUrl: '/p/', remote: 1 }, /remote must be a boolean/],
    [{ sourceDir: '/s', destinationUrl: '/_remote/', remote: true }, /sourceDir cannot be combined with remote/],
    [{ sourceDir: '/s', destinationUrl: '/p/', forwardQuery: 'yes' }, /forwardQuery must be a boolean/],
    [{ sourceDir: '/s', destinationUrl: '/p/', destinationURL: '/p/' }, /unknown option "destinationURL"/],
    [{ sourceDir: '/s', destinationUrl: '/p/', proxyRefusesSymlinks: 'yes' }, /proxyRefusesSymlinks must be a boolean/],
    [{ sourceUrl: 'https://h/m/', destinationUrl: '/p/', proxyRefusesSymlinks: true }, /proxyRefusesSymlinks needs a sourceDir/],
    [{ remote: true, destinationUrl: '/_remote/', proxyRefusesSymlinks: true }, /proxyRefusesSymlinks needs a sourceDir/],
    [null, /options must be an object/]
  ]
  for (const [options, message] of bad) {
    const error = t.throws(() => nginx(options as never), { instanceOf: TypeError }, JSON.stringify(options))
    t.regex(error?.message ?? '', /^nginx\(\): /)
    t.regex(error?.message ?? '', message)
  }
})

test('nginx: X-Accel-Redirect value is the destination + the encoded segments below sourceDir', (t) => {
  const rule = nginx({ sourceDir: '/srv/files', destinationUrl: '/protected/' })
  t.is(rule.match(file({ path: '/srv/files/a b%20c ü.txt' }), get)?.value, '/protected/a%20b%2520c%20%C3%BC.txt')
  t.is(rule.match(file({ path: '/srv/files/q?x/h#x.txt' }), get)?.value, '/protected/q%3Fx/h%23x.txt')
  t.is(rule.match(file({ path: '/srv/filesx/a.txt' }), get), undefined)
  t.is(rule.match(file({ url: 'https://h.example/srv/files/a.txt' }), get), undefined, 'a sourceDir rule ignores urls')
})

test('nginx: no value ever contains .., NUL, CR or LF', (t) => {
  const rule = nginx({ sourceDir: '/srv/files', sourceUrl: 'https://h.example/f/', destinationUrl: '/protected/' })
  const hostile = ['/srv/files/../etc/passwd', '/srv/files/a\0b', '/srv/files/a\r\nX-Evil: 1', '/srv/files/x/../../etc']
  for (const path of hostile) {
    const value = rule.match(file({ path }), get)?.value ?? ''
    t.false(/\.\.|[\0\r\n]/.test(value), JSON.stringify(value))
  }
  for (const url of ['https://h.example/f/%2e%2e/x', 'https://h.example/f/a%0d%0ab', 'https://h.example/f/a%00', 'https://h.example/f/..%2Fx']) {
    const value = rule.match(file({ url }), get)?.value ?? ''
    t.false(/\.\.|[\0\r\n]|%2e%2e/i.test(value), `${url} → ${value}`)
  }
  t.is(rule.match(file({ path: '/srv/files/a..b.txt' }), get)?.value, '/protected/a..b.txt', 'dots inside a name are just a name')
})

test('nginx remote: only http(s) URLs, optionally restricted by sourceUrl', (t) => {
  const any = nginx({ remote: true, destinationUrl: '/_remote/' })
  t.is(any.match(file({ url: 'https://b.s3.example/k?sig=1' }), get)?.value, '/_remote/https/b.s3.example/k?sig=1')
  t.is(any.match(file({ path: '/srv/x' }), get), undefined)
  t.is(any.match(file({ url: 'https://b.s3.example/a//b' }), get), undefined)
  const restricted = nginx({ remote: true, sourceUrl: 'https://b.s3.example/bucket/', destinationUrl: '/_remote/' })
  t.is(restricted.match(file({ url: 'https://b.s3.example/bucket/k' }), get)?.value, '/_remote/https/b.s3.example/bucket/k')
  t.is(restricted.match(file({ url: 'https://evil.example/bucket/k' }), get), undefined)
  t.is(restricted.match(file({ url: 'https://b.s3.example/bucketx/k' }), get), undefined)
})

test('nginx controls: X-Accel-Charset only when the rule sets a charset (the Content-Type keeps its own)', (t) => {
  t.is(nginx({ sourceDir: '/s', destinationUrl: '/p/' }).match(file({ path: '/s/a' }), get)?.controls, undefined)
  t.is(nginx({ sourceDir: '/s', destinationUrl: '/p/', charset: false }).match(file({ path: '/s/a' }), get)?.controls, undefined)
  const fixed = nginx({ sourceDir: '/s', destinationUrl: '/p/', charset: 'koi8-r', limitRate: 0 }).match(file({ path: '/s/a' }), get)
  t.deepEqual(fixed?.controls, { 'X-Accel-Limit-Rate': '0', 'X-Accel-Charset': 'koi8-r' })
})

test('accelExpires: seconds, @epoch from a Date, 0 for false; never "off"', (t) => {
  t.is(accelExpires(0), '0')
  t.is(accelExpires(86400), '86400')
  t.is(accelExpires(false), '0')
  t.is(accelExpires(new Date(1_700_000_000_999)), '@1700000000')
})

test('rules are frozen: the configuration the generator reads is the one match() uses', (t) => {
  const rule = nginx({ sourceDir: '/srv/files', destinationUrl: '/protected/' })
  t.true(Object.isFrozen(rule))
  t.throws(() => { (rule as { sourceDir: string }).sourceDir = '/' }, { instanceOf: TypeError })
  t.is(rule.sourceDir, '/srv/files')
})

test('nginx sourceUrl: a name whose URL escapes "+" or ";" is streamed (nginx sends them unescaped: another URL at some origins); other sub-delimiters stay offloaded', (t) => {
  const rule = nginx({ sourceUrl: 'https://cdn.example/b/', destinationUrl: '/_o/' })
  const value = (url: string): string | undefined => rule.match(file({ url }), get)?.value
  // nginx decodes the value and re-escapes the path for proxy_pass (measured with nginx 1.22)
  t.is(value('https://cdn.example/b/p%2Bq.txt'), undefined)
  t.is(value('https://cdn.example/b/semi%3Bcolon.txt'), undefined)
  t.is(value('https://cdn.example/b/p+q;a=1&it\'s(1)!*:@.txt'), '/_o/p%2Bq%3Ba%3D1%26it\'s(1)!*%3A%40.txt')
  // as flydrive's storage URLs and encodeURIComponent write common names: every origin decodes these
  t.is(value('https://cdn.example/b/report%20%281%29.pdf'), '/_o/report%20(1).pdf')
  t.is(value('https://cdn.example/b/it%27s%20a%26b%2Cc%3Dd%3Ae%40f%21.txt'), '/_o/it\'s%20a%26b%2Cc%3Dd%3Ae%40f!.txt')
  // escapes of unreserved characters, hex case and characters no URI holds literally do not count
  t.is(value('https://cdn.example/b/%41%7e%c3%bc%7C|%20.txt'), '/_o/A~%C3%BC%7C%7C%20.txt')
  t.is(nginx({ sourceDir: '/srv', sourceUrl: 'https://cdn.example/b/', destinationUrl: '/_o/' }).match(file({ path: '/srv/p+q.txt' }), get)?.value, '/_o/p%2Bq.txt', 'a path match is not concerned')
  t.is(nginx({ remote: true, destinationUrl: '/_remote/' }).match(file({ url: 'https://cdn.example/b/p%2Bq.txt' }), get)?.value, '/_remote/https/cdn.example/b/p%252Bq.txt', 'the remote form carries the URL as written')
})
