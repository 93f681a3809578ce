import test from 'ava'
import fc from 'fast-check'
import path from 'node:path'
import { apache } from '../source/backends/apache.ts'
import { caddy } from '../source/backends/caddy.ts'
import { nginx } from '../source/backends/nginx.ts'
import { decodeSegments, destinationConflict, matchSource, normalizeDestinationUrl, normalizeSource, unsafeSegment } from '../source/offload-rule.ts'
import type { DownloadFile } from '../source/types.ts'

const file = (where: { path?: string, url?: string }): DownloadFile => ({
  name: 'x',
  ...where,
  stat: async () => ({}),
  open: async () => { throw new Error('never opened') }
})

test('sourceDir: normalised to an absolute path without trailing slash', (t) => {
  t.deepEqual(normalizeSource('f()', { sourceDir: '/srv/media/' }), { sourceDir: '/srv/media' })
  t.deepEqual(normalizeSource('f()', { sourceDir: '/srv/./x/../media//' }), { sourceDir: '/srv/media' })
  t.deepEqual(normalizeSource('f()', { sourceDir: '/' }), { sourceDir: '/' })
})

test('sourceUrl: normalised to origin + path with a trailing slash, encoding canonical', (t) => {
  t.deepEqual(normalizeSource('f()', { sourceUrl: 'HTTPS://CDN.Example.com:443/media' }), { sourceUrl: 'https://cdn.example.com/media/' })
  t.deepEqual(normalizeSource('f()', { sourceUrl: 'http://h.example:8080/m%c3%a9dia/' }), { sourceUrl: 'http://h.example:8080/m%C3%A9dia/' })
  t.deepEqual(normalizeSource('f()', { sourceUrl: 'https://h.example' }), { sourceUrl: 'https://h.example/' })
})

test('sourceUrl: a "+" or ";" of its path keeps the spelling written (the proxy sends it as is, and some origins tell the two apart)', (t) => {
  t.deepEqual(normalizeSource('f()', { sourceUrl: 'http://o.example/a+b/c;d' }), { sourceUrl: 'http://o.example/a+b/c;d/' })
  t.deepEqual(normalizeSource('f()', { sourceUrl: 'http://o.example/a%2bb/c%3bd/' }), { sourceUrl: 'http://o.example/a%2Bb/c%3Bd/' })
  t.deepEqual(normalizeSource('f()', { sourceUrl: 'http://o.example/+%2B;%3B/%252B$|/' }), { sourceUrl: 'http://o.example/+%2B;%3B/%252B%24%7C/' }, 'each in its own spelling; the other characters as before')
})

test('source options: relative sourceDir, bad sourceUrl or neither → TypeError naming the function and option', (t) => {
  t.throws(() => normalizeSource('nginx()', {}), { instanceOf: TypeError, message: /^nginx\(\): sourceDir or sourceUrl is required/ })
  t.throws(() => normalizeSource('nginx()', { sourceDir: 'media' }), { instanceOf: TypeError, message: /^nginx\(\): sourceDir must be an absolute/ })
  t.throws(() => normalizeSource('nginx()', { sourceDir: '' }), { instanceOf: TypeError, message: /sourceDir/ })
  t.throws(() => normalizeSource('nginx()', { sourceDir: '/a\nb' }), { instanceOf: TypeError, message: /sourceDir/ })
  for (const sourceUrl of ['/media/', 'ftp://h/x/', 'https://u:p@h/x/', 'https://h/x/?a=1', 'https://h/x/#f', 'https://h/x?', 'https://h/a%2Fb/', 'not a url']) {
    t.throws(() => normalizeSource('caddy()', { sourceUrl }), { instanceOf: TypeError, message: /^caddy\(\): sourceUrl must/ }, sourceUrl)
  }
})

test('destinationUrl: normalised to start and end with /; schemes, hosts, queries and dot segments → TypeError', (t) => {
  t.is(normalizeDestinationUrl('f()', '/protected'), '/protected/')
  t.is(normalizeDestinationUrl('f()', '/protected/'), '/protected/')
  t.is(normalizeDestinationUrl('f()', "/a/b-c_d~e!$&'()*+,;=:@/"), "/a/b-c_d~e!$&'()*+,;=:@/")
  t.is(normalizeDestinationUrl('f()', '/'), '/')
  for (const bad of ['protected/', 'http://h/protected/', '//h/p/', '/p?x=1', '/p#f', '/a/../b/', '/a/./b', '/a//b/', '/a b/', '/ü/', '', 42]) {
    t.throws(() => normalizeDestinationUrl('nginx()', bad), { instanceOf: TypeError, message: /^nginx\(\): destinationUrl must be an absolute URL path/ }, String(bad))
  }
})

test('destinationUrl: a "%" is refused, naming the option and a plain alternative (the proxy decodes the value, not its location)', (t) => {
  for (const bad of ['/dl%20files/', '/a/%2e%2e/b', '/p%zz/', '/%']) {
    t.throws(() => normalizeDestinationUrl('caddy()', bad), {
      instanceOf: TypeError,
      message: /^caddy\(\): destinationUrl must not contain "%" .*use a prefix of plain characters, e\.g\. '\/dl-files\/' instead of '\/dl%20files\/'$/
    }, bad)
  }
})

test('destinationConflict: equal destinations with different targets, or nested ones, in one URL space', (t) => {
  const dir = (sourceDir: string, destinationUrl: string, backend = 'nginx'): object => ({ backend, sourceDir, destinationUrl })
  t.is(destinationConflict([dir('/a', '/p/'), dir('/a', '/p/')]), undefined, 'an identical duplicate is harmless')
  t.is(destinationConflict([dir('/a', '/p/'), { backend: 'nginx', sourceDir: '/a', sourceUrl: 'https://h/a/', destinationUrl: '/p/' }]), undefined, 'the same directory, also by URL')
  t.is(destinationConflict([dir('/a', '/p/'), dir('/b', '/q/'), dir('/c', '/pp/')]), undefined, 'siblings, and a prefix that is not a whole segment')
  t.is(destinationConflict([dir('/a', '/p/'), { backend: 'caddy', sourceDir: '/b', destinationUrl: '/p/', header: 'X-Other' }, dir('/c', '/p/', 'internal-redirect')]), undefined, 'different headers')
  // nginx() and caddy() on X-Accel-Redirect send the same header: whichever proxy is in front
  // dispatches both rules' values (found by an outside audit: Caddy served the other rule's file).
  t.regex(destinationConflict([dir('/a', '/p/'), dir('/b', '/p/', 'caddy')]) ?? '', /^rules\[0\] \(sourceDir \/a → \/p\/\) and rules\[1\] \(sourceDir \/b → \/p\/\) have the same destinationUrl/)
  t.regex(destinationConflict([dir('/b', '/p/sub/', 'caddy'), dir('/a', '/p/')]) ?? '', /nested destinationUrls/)
  // …also for the same directory: nginx() percent-encodes the path, caddy() sends it as it is, so the
  // proxy in front reads the other rule's values as other names (a decoy `a b` for `a%20b`).
  t.regex(destinationConflict([dir('/a', '/p/'), dir('/a', '/p/', 'caddy')]) ?? '', /^rules\[0\] \(sourceDir \/a → \/p\/, the path percent-encoded\) and rules\[1\] \(sourceDir \/a → \/p\/, the path as it is\) send the same header to the same destinationUrl, spelling file names differently/)
  t.regex(destinationConflict([{ backend: 'negotiated', allow: ['X-Accel-Redirect'], mapping: [{ sourceDir: '/a', destinationUrl: '/p/' }] }, dir('/a', '/p/', 'caddy')]) ?? '', /spelling file names differently/)
  t.is(destinationConflict([{ backend: 'negotiated', allow: ['X-Accel-Redirect'], mapping: [{ sourceDir: '/a', destinationUrl: '/p/' }] }, dir('/a', '/p/')]), undefined, 'negotiated() and nginx() spell it alike')
  t.is(destinationConflict([dir('/a', '/p/', 'caddy'), { backend: 'caddy', sourceDir: '/b', destinationUrl: '/p/', header: 'X-Other' }]), undefined, 'Caddy matchers on different headers')
  // apache() and lighttpd() both send X-Sendfile, raw and percent-encoded: not for one directory.
  t.regex(destinationConflict([{ backend: 'apache', sourceDir: '/a', destinationDir: '/a' }, { backend: 'lighttpd', sourceDir: '/a', destinationDir: '/a' }]) ?? '', /^rules\[0\] \(apache\(\), sourceDir \/a\/ → \/a\/\) and rules\[1\] \(lighttpd\(\), sourceDir \/a\/ → \/a\/\) both send X-Sendfile for one directory, spelling file names differently/)
  t.regex(destinationConflict([{ backend: 'lighttpd', sourceDir: '/a', destinationDir: '/srv/a/sub' }, { backend: 'apache', sourceDir: '/b', destinationDir: '/srv/a' }]) ?? '', /both send X-Sendfile/, 'nested')
  t.is(destinationConflict([{ backend: 'apache', sourceDir: '/a', destinationDir: '/a' }, { backend: 'apache', sourceDir: '/a/sub', destinationDir: '/a/sub' }, { backend: 'lighttpd', sourceDir: '/b', destinationDir: '/ab' }]), undefined, 'one backend nested; another directory')
  t.regex(destinationConflict([dir('/a', '/p/'), dir('/b', '/p/')]) ?? '', /^rules\[0\] \(sourceDir \/a → \/p\/\) and rules\[1\] \(sourceDir \/b → \/p\/\) have the same destinationUrl/)
  // One kind of X-Sendfile rule: two sources onto one directory, or nested directories that are not
  // the same place below the other's source (a copy-pasted rule whose destinationDir was not changed).
  const sendfile = (backend: string, sourceDir: string, destinationDir: string): object => ({ backend, sourceDir, destinationDir })
  for (const backend of ['apache', 'lighttpd']) {
    t.regex(destinationConflict([sendfile(backend, '/srv/tenant-a', '/srv/tenant-a'), sendfile(backend, '/srv/tenant-b', '/srv/tenant-a')]) ?? '', /^rules\[0\] \(\w+\(\), sourceDir \/srv\/tenant-a\/ → \/srv\/tenant-a\/\) and rules\[1\] \(\w+\(\), sourceDir \/srv\/tenant-b\/ → \/srv\/tenant-a\/\) send X-Sendfile for the same directory with sources that are not the same place/, backend)
    t.regex(destinationConflict([sendfile(backend, '/b', '/srv/a/sub'), sendfile(backend, '/a', '/srv/a')]) ?? '', /send X-Sendfile for nested directories/, backend)
    t.is(destinationConflict([sendfile(backend, '/a', '/srv/a'), sendfile(backend, '/a/sub/', '/srv/a/sub'), sendfile(backend, '/a', '/srv/a/')]), undefined, `${backend}: the same place below, and a duplicate`)
    t.is(destinationConflict([sendfile(backend, '/a', '/srv/a'), sendfile(backend, '/b', '/srv/ab')]), undefined, `${backend}: a prefix that is not a whole segment`)
  }
  // A caddy() rule whose own header is X-Sendfile sends into the same header as apache() and lighttpd().
  const caddySendfile = (sourceDir: string, destinationUrl: string): object => ({ backend: 'caddy', sourceDir, destinationUrl, header: 'X-Sendfile' })
  t.regex(destinationConflict([caddySendfile('/d', '/d/'), sendfile('lighttpd', '/d', '/d')]) ?? '', /^rules\[0\] \(caddy\(\), sourceDir \/d\/ → \/d\/\) and rules\[1\] \(lighttpd\(\), sourceDir \/d\/ → \/d\/\) both send X-Sendfile for one directory, spelling file names differently/)
  t.regex(destinationConflict([sendfile('apache', '/x2/apache-files', '/x2/apache-files'), caddySendfile('/x2/other', '/x2/')]) ?? '', /send X-Sendfile for nested directories/)
  t.regex(destinationConflict([sendfile('apache', '/a', '/srv/a'), { backend: 'caddy', sourceDir: '/b', destinationUrl: '/srv/a/', header: 'x-sendfile' }]) ?? '', /send X-Sendfile for the same directory/, 'the header in any case')
  t.is(destinationConflict([sendfile('apache', '/a', '/srv/a'), caddySendfile('/a', '/srv/a/')]), undefined, 'Apache and Caddy read the same raw path for the same directory')
  t.is(destinationConflict([sendfile('apache', '/a', '/srv/a'), { backend: 'caddy', sourceDir: '/b', destinationUrl: '/srv/a/', header: 'X-Other' }]), undefined, 'another header')
  t.regex(destinationConflict([caddySendfile('/a', '/p/'), caddySendfile('/b', '/p/')]) ?? '', /have the same destinationUrl/, 'two caddy() rules: the matcher space')
  t.is(destinationConflict([sendfile('apache', '/srv/files', '/srv/files'), caddySendfile('/srv/files/sub', '/srv/files/sub/')]), undefined, 'Apache and Caddy nested alike')
  // Rules known by sourceUrl: compared by it, as nginx's are; a sourceUrl for a sourceDir's files belongs in that rule.
  const byUrl = (backend: string, sourceUrl: string, destinationDir: string): object => ({ backend, sourceUrl, destinationDir })
  t.regex(destinationConflict([byUrl('apache', 'https://a.example/files/', '/srv/x'), byUrl('apache', 'https://b.example/files/', '/srv/x')]) ?? '', /^rules\[0\] \(apache\(\), sourceUrl https:\/\/a\.example\/files\/ → \/srv\/x\/\) and rules\[1\] .* send X-Sendfile for the same directory/)
  t.regex(destinationConflict([byUrl('apache', 'https://a.example/files/', '/srv/x/sub'), byUrl('apache', 'https://a.example/other/', '/srv/x')]) ?? '', /send X-Sendfile for nested directories/)
  t.regex(destinationConflict([byUrl('apache', 'https://a.example/files/', '/srv/x'), { backend: 'caddy', sourceUrl: 'https://b.example/', destinationUrl: '/srv/x/', header: 'X-Sendfile' }]) ?? '', /send X-Sendfile for the same directory/)
  t.is(destinationConflict([byUrl('lighttpd', 'https://a.example/files/', '/srv/x'), byUrl('lighttpd', 'https://a.example/files/', '/srv/x/'), byUrl('lighttpd', 'https://a.example/files/m%C3%A4rz%20a/', '/srv/x/märz a')]), undefined, 'the same URL, and the same place below it')
  t.is(destinationConflict([sendfile('apache', '/srv/a', '/srv/x'), byUrl('apache', 'https://a.example/files/', '/srv/x'), byUrl('apache', 'https://a.example/files/sub/', '/srv/x/sub')]), undefined, 'a directory and a URL are not compared: the origin may publish it')
  t.is(destinationConflict([{ backend: 'apache', sourceDir: '/srv/a', sourceUrl: 'https://a.example/files/', destinationDir: '/srv/x' }, sendfile('apache', '/srv/a', '/srv/x')]), undefined, 'one rule with both, and its directory alone')
  t.regex(destinationConflict([dir('/a', '/p/sub/'), dir('/x', '/q/'), dir('/a', '/p/')]) ?? '', /^rules\[0\] .* and rules\[2\] .* have nested destinationUrls/, 'nested, even over the same directory')
  t.regex(destinationConflict([dir('/a', '/p/', 'caddy'), { backend: 'caddy', sourceDir: '/b', destinationUrl: '/p/s/', header: 'x-accel-redirect' }]) ?? '', /nested/)
  t.regex(destinationConflict([dir('/a', '/p/', 'internal-redirect'), dir('/b', '/p/', 'internal-redirect')]) ?? '', /same destinationUrl/)
  t.regex(destinationConflict([{ backend: 'nginx', remote: true, destinationUrl: '/_remote/' }, dir('/a', '/_remote/https/')]) ?? '', /any origin → \/_remote\/.*nested/)
  t.regex(destinationConflict([{ backend: 'nginx', sourceUrl: 'https://h/a/', destinationUrl: '/o/' }, { backend: 'nginx', sourceUrl: 'https://h/b/', destinationUrl: '/o' }]) ?? '', /same destinationUrl/)
})

test('destinationConflict: a negotiated() mapping is an X-Accel-Redirect destination, for nginx and for Caddy\'s X-Accel-Redirect matchers', (t) => {
  const neg = (mapping: Array<[string, string]>, allow = ['X-Accel-Redirect']): object =>
    ({ backend: 'negotiated', allow, mapping: mapping.map(([sourceDir, destinationUrl]) => ({ sourceDir, destinationUrl })) })
  t.is(destinationConflict([{ backend: 'nginx', sourceDir: '/secret', destinationUrl: '/p/' }, neg([['/public', '/p/']])]),
    'rules[0] (sourceDir /secret → /p/) and rules[1] mapping (sourceDir /public → /p/) have the same destinationUrl on the same proxy, so it would serve one rule\'s files for the other\'s: ' +
    'give each source its own destinationUrl, neither inside another (or merge rules for the same files into one rule)')
  t.regex(destinationConflict([neg([['/public', '/p/']]), { backend: 'caddy', sourceDir: '/secret', destinationUrl: '/p/sub/' }]) ?? '',
    /^rules\[0\] mapping \(sourceDir \/public → \/p\/\) and rules\[1\] \(sourceDir \/secret → \/p\/sub\/\) have nested destinationUrls/)
  t.regex(destinationConflict([neg([['/public', '/p/'], ['/secret', '/p/sub/']])]) ?? '', /^rules\[0\] mapping .* and rules\[0\] mapping .* have nested/, 'within one mapping')
  t.regex(destinationConflict([neg([['/a', '/p/']]), neg([['/b', '/p/']])]) ?? '', /^rules\[0\] mapping .* and rules\[1\] mapping .* have the same destinationUrl/)
  t.is(destinationConflict([{ backend: 'nginx', sourceDir: '/a', destinationUrl: '/p/' }, neg([['/a', '/p/']])]), undefined, 'the same directory on the same location')
  t.is(destinationConflict([{ backend: 'nginx', sourceDir: '/a', destinationUrl: '/p/' }, neg([['/b', '/q/']])]), undefined)
  t.is(destinationConflict([{ backend: 'caddy', sourceDir: '/a', destinationUrl: '/p/', header: 'X-Other' }, { backend: 'internal-redirect', sourceDir: '/a', destinationUrl: '/p/' }, neg([['/b', '/p/']])]), undefined,
    'negotiated() never sends another matcher header nor a Location')
  t.is(destinationConflict([{ backend: 'nginx', sourceDir: '/a', destinationUrl: '/p/' }, neg([['/b', '/p/']], ['X-Sendfile'])]), undefined,
    'without X-Accel-Redirect allowed, the mapping is never sent')
})

test('sourceDir matching: whole segments only (/media/nginx never covers /media/nginxfoo/x)', (t) => {
  const source = { sourceDir: '/media/nginx' }
  t.deepEqual(matchSource(source, file({ path: '/media/nginx/a/b.txt' })), { via: 'path', segments: ['a', 'b.txt'], search: '' })
  t.regex(matchSource(source, file({ path: '/media/nginxfoo/x' })) as string, /not below sourceDir/)
  t.regex(matchSource(source, file({ path: '/media/nginx' })) as string, /not below sourceDir/)
  t.regex(matchSource(source, file({ path: '/media' })) as string, /not below sourceDir/)
})

test('sourceDir matching: the path is resolved first, so .. cannot climb out and never reaches the value', (t) => {
  const source = { sourceDir: '/media/nginx' }
  t.regex(matchSource(source, file({ path: '/media/nginx/../secret.txt' })) as string, /not below sourceDir/)
  t.deepEqual(matchSource(source, file({ path: '/media/nginx/a/../b.txt' })), { via: 'path', segments: ['b.txt'], search: '' })
  t.deepEqual(matchSource({ sourceDir: '/' }, file({ path: '/etc/x' })), { via: 'path', segments: ['etc', 'x'], search: '' })
})

test('sourceDir matching: NUL, CR or LF in the path never match', (t) => {
  for (const path of ['/m/a\0b', '/m/a\rb', '/m/a\nb']) {
    t.regex(matchSource({ sourceDir: '/m' }, file({ path })) as string, /NUL, CR or LF/)
  }
})

test('sourceUrl matching: same scheme, host and port, whole decoded segments, query kept apart', (t) => {
  const source = { sourceUrl: 'https://cdn.example/media/' }
  t.deepEqual(matchSource(source, file({ url: 'https://cdn.example/media/a%20b/%C3%BC.txt?sig=1' })),
    { via: 'url', segments: ['a b', 'ü.txt'], search: '?sig=1', rawSegments: ['a%20b', '%C3%BC.txt'] })
  t.deepEqual(matchSource(source, file({ url: 'https://CDN.example:443/media/x.txt' })), { via: 'url', segments: ['x.txt'], search: '', rawSegments: ['x.txt'] })
  t.regex(matchSource(source, file({ url: 'https://cdn.example/mediafoo/x.txt' })) as string, /not below sourceUrl/)
  t.regex(matchSource(source, file({ url: 'http://cdn.example/media/x.txt' })) as string, /origin/)
  t.regex(matchSource(source, file({ url: 'https://cdn.example:8443/media/x.txt' })) as string, /origin/)
  t.regex(matchSource(source, file({ url: 'https://evil.example/media/x.txt' })) as string, /origin/)
  t.regex(matchSource(source, file({ url: 'https://u:p@cdn.example/media/x.txt' })) as string, /credentials/)
  t.regex(matchSource(source, file({ url: 'https://cdn.example/media/dir/' })) as string, /directory/)
})

test('sourceUrl matching: percent-encoding case and non-encoded characters compare equal', (t) => {
  const source = { sourceUrl: 'https://h.example/m%C3%A9dia/' }
  t.deepEqual(matchSource(source, file({ url: 'https://h.example/m%c3%a9dia/x' })), { via: 'url', segments: ['x'], search: '', rawSegments: ['x'] })
  t.deepEqual(matchSource(source, file({ url: 'https://h.example/média/x' })), { via: 'url', segments: ['x'], search: '', rawSegments: ['x'] })
})

test('sourceUrl matching: a "+" or ";" of the source\'s own path spelled otherwise than in the sourceUrl → no raw segments, so a proxy fetching the URL refuses it', (t) => {
  const source = { sourceUrl: 'https://h.example/a+b/c%3Bd/' }
  t.deepEqual(matchSource(source, file({ url: 'https://h.example/a+b/c%3bd/p+q.txt' })), { via: 'url', segments: ['p+q.txt'], search: '', rawSegments: ['p+q.txt'] })
  for (const url of ['https://h.example/a%2Bb/c%3Bd/p+q.txt', 'https://h.example/a+b/c;d/p+q.txt', 'https://h.example/a%2bb/c;d/p+q.txt']) {
    t.deepEqual(matchSource(source, file({ url })), { via: 'url', segments: ['p+q.txt'], search: '', rawSegments: [] }, url)
    t.is(nginx({ ...source, destinationUrl: '/_o/' }).match(file({ url }), { method: 'GET', headers: {} }), undefined, `nginx, ${url}`)
    t.is(caddy({ ...source, destinationUrl: '/_o/' }).match(file({ url }), { method: 'GET', headers: {} }), undefined, `caddy, ${url}`)
    // served from a directory: the URL's spelling never reaches an origin
    t.is(apache({ ...source, destinationDir: '/srv/o' }).match(file({ url }), { method: 'GET', headers: {} })?.value, '/srv/o/p+q.txt', `apache, ${url}`)
  }
  t.is(nginx({ ...source, destinationUrl: '/_o/' }).match(file({ url: 'https://h.example/a+b/c%3Bd/p+q.txt' }), { method: 'GET', headers: {} })?.value, '/_o/p%2Bq.txt')
})

test('sourceUrl matching: encoded /, NUL, CR, LF, empty segments and bad UTF-8 never match', (t) => {
  const source = { sourceUrl: 'https://h.example/m/' }
  t.regex(matchSource(source, file({ url: 'https://h.example/m/a%2Fb' })) as string, /encoded "\/"/)
  t.regex(matchSource(source, file({ url: 'https://h.example/m/a%00b' })) as string, /NUL, CR or LF/)
  t.regex(matchSource(source, file({ url: 'https://h.example/m/a%0D%0Ab' })) as string, /NUL, CR or LF/)
  t.regex(matchSource(source, file({ url: 'https://h.example/m//b' })) as string, /empty path segment/)
  t.regex(matchSource(source, file({ url: 'https://h.example/m/%FF' })) as string, /UTF-8/)
  t.regex(matchSource(source, file({ url: 'https://h.example/m/%2e%2e/x' })) as string, /not below/, 'WHATWG resolves %2e%2e before matching')
})

test('files with neither path nor url never match; both sources are tried', (t) => {
  const source = { sourceDir: '/m', sourceUrl: 'https://h.example/m/' }
  t.regex(matchSource(source, file({})) as string, /no path; the file has no url/)
  t.deepEqual(matchSource(source, file({ path: '/other/x', url: 'https://h.example/m/x' })), { via: 'url', segments: ['x'], search: '', rawSegments: ['x'] })
})

test('unsafeSegment names every refused form; decodeSegments refuses bad escapes', (t) => {
  t.is(unsafeSegment('ok.txt'), undefined)
  t.truthy(unsafeSegment(''))
  t.truthy(unsafeSegment('.'))
  t.truthy(unsafeSegment('..'))
  t.truthy(unsafeSegment('a\0'))
  t.truthy(unsafeSegment('a/b'))
  t.is(unsafeSegment('...'), undefined)
  t.deepEqual(decodeSegments('/a%20b/c/'), ['a b', 'c'])
  t.is(decodeSegments('/a%zz'), undefined)
})

test('sourceDir matching of any path equals matching its path.resolve() (normalised paths skip the resolve), on whole segments', (t) => {
  const segment = fc.constantFrom('a', 'b c', '.', '..', '', '.x', '..y', 'x.', 'ü', 'x\uD800')
  const filePath = fc.tuple(fc.constantFrom('/', '/a/', 'a/', '//'), fc.array(segment, { maxLength: 6 }), fc.constantFrom('', '/', '/.', '/..'))
    .map(([lead, segments, tail]) => lead + segments.join('/') + tail)
  for (const sourceDir of ['/a', '/']) {
    fc.assert(fc.property(filePath, (p) => {
      const resolved = path.resolve(p)
      const prefix = sourceDir === '/' ? '/' : sourceDir + '/'
      const rest = resolved.startsWith(prefix) ? resolved.slice(prefix.length) : undefined
      const found = matchSource({ sourceDir }, file({ path: p }))
      if (rest === undefined || rest === '' || !rest.isWellFormed()) t.is(typeof found, 'string', p)
      else t.deepEqual(found, { via: 'path', segments: rest.split('/'), search: '' }, p)
    }), { numRuns: 3000 })
  }
})
