import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import test from 'ava'
import { apache } from '../source/backends/apache.ts'
import { caddy } from '../source/backends/caddy.ts'
import { internalRedirect } from '../source/backends/internal-redirect.ts'
import { lighttpd } from '../source/backends/lighttpd.ts'
import { nginx } from '../source/backends/nginx.ts'
import { renderServerConfig } from '../source/server-config.ts'
import { isEntityTagList } from '../source/etag.ts'
import { ENTITY_TAG_LIST } from '../source/server-config/caddy.ts'
import type { ConfigRule, ServerName } from '../source/server-config.ts'
import { ORIGIN_SITE_HEADERS, STORAGE_RESPONSE_HEADERS } from '../source/server-config/shared.ts'

const run = promisify(execFile)
const full = { listen: '127.0.0.1:8080', upstream: '127.0.0.1:3000', prefix: '/tmp/kd-x' }

/** The non-comment lines, trimmed: what the server actually reads. */
const directives = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))

// nginx drops the app's X-Content-Type-Options with the X-Accel-Redirect: every internal location adds it back
const nosniff = 'add_header X-Content-Type-Options nosniff always;'

test('nginx: a sourceDir rule becomes an internal location aliased to the directory', (t) => {
  const text = renderServerConfig('nginx', [nginx({ sourceDir: '/srv/files', destinationUrl: '/protected' })])
  t.deepEqual(directives(text), [
    'location ^~ /protected/ {', 'internal;', 'alias /srv/files/;', nosniff, 'max_ranges 100;', 'if (-d $request_filename) { return 404; }', ...fileErrorPages, '}',
    ...errorLocation(403, 404)
  ])
})

// nginx's own errors after an X-Accel-Redirect keep the app's Cache-Control: their pages add no-store.
const fileErrorPages = ['error_page 403 = @koa_downloads_403;', 'error_page 404 = @koa_downloads_404;']
const errorLocation = (...statuses: number[]): string[] => statuses.map((status) => `location @koa_downloads_${status} { add_header Cache-Control "no-store" always; return ${status}; }`)

test('nginx: a rule\'s charset is made known to nginx with source_charset (charset would append one to text types); without one, no line', (t) => {
  t.true(directives(renderServerConfig('nginx', [nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', charset: 'iso-8859-1' })])).includes('source_charset iso-8859-1;'))
  for (const options of [{}, { charset: false as const }]) {
    t.false(directives(renderServerConfig('nginx', [nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', ...options })])).some((line) => /charset/.test(line)))
  }
})

test('nginx: rules sharing a location must agree on charset when both set one (it has one source_charset line): TypeError, also for rules of separate offload() calls', (t) => {
  // an app-wide rule and a per-route one: offload() sees each alone, the config module has both
  const rules = [nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', charset: 'utf-8' }), nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', charset: 'iso-8859-1', limitRate: 1000 })]
  t.throws(() => renderServerConfig('nginx', rules), { instanceOf: TypeError, message: /^renderServerConfig\(\): rules\[0\] \(charset "utf-8"\) and rules\[1\] \(charset "iso-8859-1"\) share the nginx location \/p\// })
  t.notThrows(() => renderServerConfig('nginx', [rules[0]!, nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', limitRate: 1000 })]))
  // A rule without a charset sends none: the location takes the charset of the one that does, wherever it stands.
  const mixed = directives(renderServerConfig('nginx', [nginx({ sourceDir: '/srv/files', destinationUrl: '/p/' }), rules[1]!]))
  t.deepEqual(mixed.filter((line) => /charset/.test(line)), ['source_charset iso-8859-1;'])
})

test('nginx: a directory with spaces and quotes is quoted and escaped', (t) => {
  const text = renderServerConfig('nginx', [nginx({ sourceDir: '/srv/my "files"', destinationUrl: '/p/' })])
  t.true(directives(text).includes('alias "/srv/my \\"files\\"/";'))
})

test('nginx: a directory containing "$" is refused (nginx would read a variable)', (t) => {
  const error = t.throws(() => renderServerConfig('nginx', [nginx({ sourceDir: '/srv/$files', destinationUrl: '/p/' })]), { instanceOf: TypeError })
  t.regex(error.message, /"\$"/)
})

const originRequestLines = [
  'proxy_http_version 1.1;',
  'proxy_pass_request_headers off;',
  'proxy_set_header Range $http_range;',
  'proxy_set_header If-Range $http_if_range;',
  'proxy_set_header If-Match $http_if_match;',
  'proxy_set_header If-None-Match $http_if_none_match;',
  'proxy_set_header If-Modified-Since $http_if_modified_since;',
  'proxy_set_header If-Unmodified-Since $http_if_unmodified_since;',
  'proxy_set_header Accept-Encoding $http_accept_encoding;'
]

test('nginx: a fixed-origin rule proxies to the sourceUrl over HTTP/1.1 with only the client\'s Range, conditional and Accept-Encoding fields, and the header lines', (t) => {
  const text = renderServerConfig('nginx', [nginx({ sourceUrl: 'http://127.0.0.1:9000/bucket/', destinationUrl: '/_origin/' })])
  const lines = directives(text)
  // (the error_page lines: the next test)
  t.deepEqual(lines, [
    'location ^~ /_origin/ {',
    'internal;',
    ...originRequestLines,
    'proxy_ignore_headers X-Accel-Redirect X-Accel-Expires X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset;',
    'proxy_hide_header X-Sendfile;',
    'proxy_hide_header X-Lighttpd-Send-File;',
    'proxy_hide_header Content-Disposition;',
    'proxy_hide_header Content-Type;',
    'proxy_hide_header Cache-Control;',
    'proxy_hide_header Expires;',
    'proxy_hide_header Set-Cookie;',
    ...ORIGIN_SITE_HEADERS.map((name) => `proxy_hide_header ${name};`),
    'proxy_headers_hash_bucket_size 128;',
    ...STORAGE_RESPONSE_HEADERS.map((name) => `proxy_hide_header ${name};`),
    // the app's nosniff, which nginx drops on the handoff, instead of the origin's
    'proxy_hide_header X-Content-Type-Options;',
    nosniff,
    'proxy_intercept_errors on;',
    ...lines.filter((l) => l.startsWith('error_page ')),
    'proxy_pass http://127.0.0.1:9000/bucket/;',
    '}',
    ...errorLocations
  ])
})

// The origin's errors: nginx's own page instead of the origin's body, mapped as the app maps them when it streams.
const errorLocations = errorLocation(404, 502, 503, 504)
/** The `error_page` lines of a location, as code → named location. */
const errorPages = (lines: string[]): Map<number, string> => {
  const pages = new Map<number, string>()
  for (const line of lines.filter((l) => l.startsWith('error_page '))) {
    const [codes = '', target = ''] = line.replace(/^error_page |;$/g, '').split(' = ')
    for (const code of codes.split(' ').map(Number)) {
      if (pages.has(code)) throw new Error(`error_page ${code} twice`)
      pages.set(code, target)
    }
  }
  return pages
}

test('nginx: every status from 300 to 599 an origin may send is intercepted (a CDN\'s 520, a 418), except 304, 412 and 416 (the answers to the client\'s own headers) and 499 (nginx\'s own, which error_page refuses); the named locations come once', (t) => {
  const pages = errorPages(directives(renderServerConfig('nginx', [nginx({ sourceUrl: 'http://127.0.0.1:9000/a/', destinationUrl: '/_a/' })])))
  for (let code = 300; code < 600; code++) {
    const expected = [304, 412, 416, 499].includes(code)
      ? undefined
      : `@koa_downloads_${code === 404 || code === 410 ? 404 : code === 429 || code === 503 ? 503 : code === 408 || code === 504 ? 504 : 502}`
    t.is(pages.get(code), expected, String(code))
  }
  const both = directives(renderServerConfig('nginx', [
    nginx({ sourceUrl: 'http://127.0.0.1:9000/a/', destinationUrl: '/_a/' }),
    nginx({ remote: true, destinationUrl: '/_remote/' }),
    nginx({ sourceDir: '/srv/x', destinationUrl: '/x/' })
  ]))
  t.is(both.filter((line) => line === 'proxy_intercept_errors on;').length, 2)
  // the /_remote/ location has the same error_page lines as the fixed origin's
  const single = directives(renderServerConfig('nginx', [nginx({ sourceUrl: 'http://127.0.0.1:9000/a/', destinationUrl: '/_a/' })])).filter((line) => line.startsWith('error_page '))
  t.deepEqual(both.filter((line) => line.startsWith('error_page ')), [...single, ...single, ...fileErrorPages])
  // each named location once, for the origins' statuses and a local file's
  t.deepEqual(both.slice(-5), errorLocation(403, 404, 502, 503, 504))
  t.is(both.filter((line) => line.startsWith('location @')).length, 5)
  const local = directives(renderServerConfig('nginx', [nginx({ sourceDir: '/srv/x', destinationUrl: '/x/' })]))
  t.false(local.some((line) => line.startsWith('proxy_intercept_errors')), 'a local rule intercepts nothing')
  t.deepEqual(local.filter((line) => line.startsWith('error_page') || line.startsWith('location @')), [...fileErrorPages, ...errorLocation(403, 404)])
})

test('nginx: buffering: false writes proxy_buffering off into a location that fetches from an origin (X-Accel-Buffering acts only on the app\'s response), not into a local one', (t) => {
  const lines = directives(renderServerConfig('nginx', [
    nginx({ sourceUrl: 'http://127.0.0.1:9000/a/', destinationUrl: '/_a/', buffering: false }),
    nginx({ sourceUrl: 'http://127.0.0.1:9000/b/', destinationUrl: '/_b/' }),
    nginx({ remote: true, destinationUrl: '/_remote/', buffering: false }),
    nginx({ sourceDir: '/srv/x', destinationUrl: '/x/', buffering: false })
  ]))
  const blockOf = (start: string): string[] => lines.slice(lines.indexOf(start), lines.indexOf('}', lines.indexOf(start)))
  t.true(blockOf('location ^~ /_a/ {').includes('proxy_buffering off;'))
  t.false(blockOf('location ^~ /_b/ {').includes('proxy_buffering off;'))
  t.true(blockOf('location ^~ /_remote/ {').includes('proxy_buffering off;'))
  t.false(blockOf('location ^~ /x/ {').includes('proxy_buffering off;'))
  t.is(lines.filter((line) => line === 'proxy_buffering off;').length, 2)
})

test('nginx: a remote rule gets the generic location with every required line and its reason', (t) => {
  const text = renderServerConfig('nginx', [nginx({ remote: true, destinationUrl: '/_remote/' })])
  const lines = directives(text)
  // the regex nested in a ^~ prefix location: no regex location of the server is tried first
  t.deepEqual(lines.slice(0, 3), ['location ^~ /_remote/ {', 'internal;', 'location ~ "^/_remote/(?<rscheme>https?)/(?<rhost>[^/]+)/(?<rpath>.*)$" {'])
  t.deepEqual(lines.slice(-7, -4), ['}', 'return 404;', '}'])
  for (const line of ['internal;', 'proxy_set_header Host $rhost;', ...originRequestLines, 'proxy_hide_header Clear-Site-Data;', 'proxy_hide_header Access-Control-Allow-Origin;',
    'proxy_hide_header Content-Disposition;', 'proxy_hide_header Content-Type;', 'proxy_hide_header Cache-Control;', 'proxy_hide_header Set-Cookie;',
    'proxy_ignore_headers X-Accel-Redirect X-Accel-Expires X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset;', 'proxy_hide_header X-Sendfile;',
    'proxy_pass $rscheme://$rhost/$rpath$is_args$args;', 'proxy_intercept_errors on;', 'proxy_hide_header X-Content-Type-Options;', nosniff, ...errorLocations]) {
    t.true(lines.includes(line), line)
  }
  t.false(lines.includes('proxy_buffering off;'))
  t.regex(text, /# SigV4 signs the Host header/)
  t.regex(text, /open proxy to any host/)
  t.regex(text, /# resolver /)
})

test('nginx: https origins (a sourceUrl, any remote URL) get their certificate verified against the CA bundle (the system\'s, or trustedCertificate) and SNI; an http sourceUrl gets no TLS lines', (t) => {
  const tls = ['proxy_ssl_server_name on;', 'proxy_ssl_verify on;', 'proxy_ssl_verify_depth 4;']
  const lines = (text: string): string[] => text.split('\n').map((line) => line.trim())
  for (const rule of [nginx({ sourceUrl: 'https://bucket.example/files/', destinationUrl: '/_origin/' }), nginx({ remote: true, destinationUrl: '/_remote/' })]) {
    const system = lines(renderServerConfig('nginx', [rule]))
    for (const line of [...tls, 'proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;']) t.true(system.includes(line), line)
    const own = lines(renderServerConfig('nginx', [rule], { trustedCertificate: '/etc/pki/tls/certs/ca bundle.crt' }))
    t.true(own.includes('proxy_ssl_trusted_certificate "/etc/pki/tls/certs/ca bundle.crt";'))
  }
  const plain = renderServerConfig('nginx', [nginx({ sourceUrl: 'http://127.0.0.1:9000/files/', destinationUrl: '/_origin/' })])
  t.false(plain.includes('proxy_ssl'))
  t.throws(() => renderServerConfig('nginx', [nginx({ remote: true, destinationUrl: '/_remote/' })], { trustedCertificate: '/etc/$ca.pem' }), { instanceOf: TypeError })
  for (const bad of ['', 'certs/ca.pem']) {
    t.throws(() => renderServerConfig('nginx', [nginx({ remote: true, destinationUrl: '/_remote/' })], { trustedCertificate: bad }), { instanceOf: TypeError, message: /trustedCertificate must be an absolute path/ })
  }
  // nginx checks host names only: an https origin by IP could never be verified, so it is refused…
  for (const url of ['https://10.0.0.5:9000/files/', 'https://[::1]/files/']) {
    t.throws(() => renderServerConfig('nginx', [nginx({ sourceUrl: url, destinationUrl: '/_origin/' })]), { instanceOf: TypeError, message: /cannot verify the certificate of an https origin addressed by IP/ }, url)
    // …unless verification is turned off, on purpose
    const unverified = renderServerConfig('nginx', [nginx({ sourceUrl: url, destinationUrl: '/_origin/' })], { trustedCertificate: false })
    t.false(unverified.includes('proxy_ssl_verify'))
    t.true(unverified.includes('# https origins are NOT verified (trustedCertificate: false)'))
  }
  t.notThrows(() => renderServerConfig('nginx', [nginx({ sourceUrl: 'http://10.0.0.5:9000/files/', destinationUrl: '/_origin/' })]), 'http by IP')
})

test('nginx: rules that map one destination to the same directory give one location', (t) => {
  const text = renderServerConfig('nginx', [
    nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }),
    nginx({ sourceDir: '/srv/a', sourceUrl: 'https://cdn.example/a/', destinationUrl: '/p/' })
  ])
  t.deepEqual(directives(text).filter((l) => l.startsWith('location ^~') || l.startsWith('alias')), ['location ^~ /p/ {', 'alias /srv/a/;'])
})

test('config: rules whose destinations coincide or nest on the server are refused, naming both (it would serve one rule\'s files for the other\'s)', (t) => {
  // plain data, as a config module may hold: the generator checks it itself
  const cases: Array<[ServerName, ConfigRule[], RegExp]> = [
    ['nginx', [{ backend: 'nginx', sourceDir: '/srv/a', destinationUrl: '/p/' }, { backend: 'nginx', sourceDir: '/srv/b', destinationUrl: '/p' }], /rules\[0\] \(sourceDir \/srv\/a → \/p\/\) and rules\[1\] \(sourceDir \/srv\/b → \/p\/\) have the same destinationUrl/],
    ['nginx', [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }), nginx({ sourceDir: '/srv/c', destinationUrl: '/p/sub/' })], /have nested destinationUrls/],
    ['nginx', [nginx({ sourceUrl: 'http://127.0.0.1:9/a/', destinationUrl: '/o/' }), nginx({ sourceUrl: 'http://127.0.0.1:9/b/', destinationUrl: '/o/' })], /same destinationUrl/],
    ['caddy', [caddy({ sourceDir: '/srv/c', destinationUrl: '/p/sub/' }), caddy({ sourceDir: '/srv/a', destinationUrl: '/p/' })], /nested/],
    ['caddy', [internalRedirect({ sourceDir: '/srv/a', destinationUrl: '/p/' }), internalRedirect({ sourceUrl: 'https://h/x/', destinationUrl: '/p/' })], /same destinationUrl/]
  ]
  for (const [server, rules, message] of cases) {
    t.throws(() => renderServerConfig(server, rules), { instanceOf: TypeError, message: new RegExp('^renderServerConfig\\(\\): .*' + message.source) })
  }
  // Caddy: matchers on different headers never see each other's values
  t.notThrows(() => renderServerConfig('caddy', [caddy({ sourceDir: '/srv/a', destinationUrl: '/p/' }), internalRedirect({ sourceDir: '/srv/b', destinationUrl: '/p/' })]))
})

test('nginx: destinationUrl "/" is refused by the rule and by the generator (nginx -t: duplicate location "/", the app\'s own)', (t) => {
  for (const remote of [false, true]) {
    t.throws(() => nginx(remote ? { remote, destinationUrl: '/' } : { sourceDir: '/srv/a', destinationUrl: '/' }), { instanceOf: TypeError, message: /^nginx\(\): destinationUrl cannot be "\/": the internal location would take every URL of the server/ })
  }
  t.throws(() => renderServerConfig('nginx', [{ backend: 'nginx', sourceDir: '/srv/a', destinationUrl: '/' }]), { instanceOf: TypeError, message: /^renderServerConfig\(\): .*destinationUrl cannot be "\/"/ })
  // Caddy matches a header, not the server's URL space: "/" stays possible there
  t.notThrows(() => renderServerConfig('caddy', [caddy({ sourceDir: '/srv/a', destinationUrl: '/' })]))
})

test('config: a "%" in a plain-data destinationUrl is refused (the server decodes the value, or never matches it)', (t) => {
  t.throws(() => renderServerConfig('nginx', [{ backend: 'nginx', sourceDir: '/srv/a', destinationUrl: '/dl%20files/' }]), { instanceOf: TypeError, message: /destinationUrl must not contain "%"/ })
  t.throws(() => renderServerConfig('caddy', [{ backend: 'caddy', sourceDir: '/srv/a', destinationUrl: '/dl%20files/' }]), { instanceOf: TypeError, message: /destinationUrl must not contain "%"/ })
})

test('config: plain-data rules go through their factory: what caddy(), apache() … refuse is refused (naming the rule), and what they normalise is written normalised', (t) => {
  const refused: Array<[ServerName, Record<string, unknown>, RegExp]> = [
    ['caddy', { backend: 'caddy', sourceDir: '/srv/a', destinationUrl: '/a?b/' }, /^renderServerConfig\(\): rules\[0\] \(plain data for caddy\(\)\): caddy\(\): destinationUrl/],
    ['caddy', { backend: 'caddy', sourceDir: '/srv/a', destinationUrl: '/p/../q/' }, /caddy\(\): destinationUrl/],
    ['caddy', { backend: 'caddy', sourceDir: '/srv/a', destinationUrl: '/p/', header: 'Content-Type' }, /caddy\(\): header must be/],
    ['caddy', { backend: 'caddy', sourceUrl: 'https://user:secret@h.example/x/', destinationUrl: '/p/' }, /caddy\(\): sourceUrl/],
    ['apache', { backend: 'apache', destinationDir: '/srv/a' }, /apache\(\): .*sourceDir/],
    ['nginx', { backend: 'nginx', sourceDir: '/srv/a', destinationUrl: '/p/', unknown: 1 }, /nginx\(\): unknown option "unknown"/]
  ]
  for (const [server, rule, message] of refused) {
    t.throws(() => renderServerConfig(server, [rule as never]), { instanceOf: TypeError, message }, JSON.stringify(rule))
  }
  const apacheText = renderServerConfig('apache', [{ backend: 'apache', sourceDir: '/srv/x', destinationDir: '/srv/x/./y/..' }])
  t.true(directives(apacheText).includes('XSendFilePath "/srv/x"'))
  const lighttpdText = renderServerConfig('lighttpd', [{ backend: 'lighttpd', sourceDir: '/srv//y/', destinationDir: '/srv//y/' }])
  t.true(directives(lighttpdText).includes('"x-sendfile-docroot" => ( "/srv/y" )'))
  // A backend no server knows is another server's rule, whatever its name.
  for (const backend of ['hasOwnProperty', '__proto__', 'toString', 'nginxx']) {
    t.regex(renderServerConfig('nginx', [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }), { backend, sourceDir: '/srv/b' }]), /# 1 rule\(s\) for other servers skipped\n$/, backend)
  }
})

test('nginx: proxyRefusesSymlinks adds disable_symlinks to its location only (and to a location it shares)', (t) => {
  const text = renderServerConfig('nginx', [
    nginx({ sourceDir: '/srv/a', destinationUrl: '/a/', proxyRefusesSymlinks: true }),
    nginx({ sourceDir: '/srv/b', destinationUrl: '/b/' })
  ])
  t.deepEqual(directives(text), [
    'location ^~ /a/ {', 'internal;', 'alias /srv/a/;', nosniff, 'disable_symlinks on from=$document_root;', 'max_ranges 100;', 'if (-d $request_filename) { return 404; }', ...fileErrorPages, '}',
    'location ^~ /b/ {', 'internal;', 'alias /srv/b/;', nosniff, 'max_ranges 100;', 'if (-d $request_filename) { return 404; }', ...fileErrorPages, '}',
    ...errorLocation(403, 404)
  ])
  const shared = renderServerConfig('nginx', [
    nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }),
    nginx({ sourceDir: '/srv/a', destinationUrl: '/p/', proxyRefusesSymlinks: true })
  ])
  t.true(directives(shared).includes('disable_symlinks on from=$document_root;'))
})

test('nginx: an explicit charset adds a source_charset line to the location', (t) => {
  const text = renderServerConfig('nginx', [nginx({ sourceDir: '/srv/files', destinationUrl: '/p/', charset: 'utf-8' })])
  t.true(directives(text).includes('source_charset utf-8;'))
})

test('nginx full: listener, upstream, pid, logs and temp paths in the prefix', (t) => {
  const lines = directives(renderServerConfig('nginx', [nginx({ sourceDir: '/srv/files', destinationUrl: '/p/' })], { full }))
  for (const line of ['pid /tmp/kd-x/nginx.pid;', 'error_log stderr notice;', 'access_log /tmp/kd-x/access.log;', 'client_body_temp_path /tmp/kd-x/tmp/body;',
    'proxy_temp_path /tmp/kd-x/tmp/proxy;', 'listen 127.0.0.1:8080;', 'location ^~ /p/ {', 'user nobody nogroup;']) {
    t.true(lines.includes(line), line)
  }
  // the app's location: HTTP/1.1 to the app (process-death.test.ts: a killed app's cut export read
  // as complete without it), room for a long offload's response head (nginx.test.ts: 502 without)
  const app = lines.indexOf('location / {')
  t.deepEqual(lines.slice(app, app + 9), ['location / {', 'proxy_pass http://127.0.0.1:3000;', 'proxy_http_version 1.1;', 'proxy_set_header Host $host;', 'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;', 'proxy_set_header X-Forwarded-Proto $scheme;', 'proxy_buffer_size 16k;', 'proxy_busy_buffers_size 24k;', '}'])
})

test('apache: XSendFile On and one quoted XSendFilePath per destinationDir', (t) => {
  const text = renderServerConfig('apache', [
    apache({ sourceDir: '/srv/a b', destinationDir: '/data/a b' }),
    apache({ sourceDir: '/srv/a b', sourceUrl: 'http://cdn.example/x/', destinationDir: '/data/a b/' }),
    apache({ sourceDir: '/srv/c', destinationDir: '/data/c' })
  ])
  const lines = directives(text)
  t.deepEqual(lines.filter((l) => l.startsWith('XSendFile')), ['XSendFile On', 'XSendFilePath "/data/a b"', 'XSendFilePath "/data/c"'])
  // Apache's ranges are off for an If-Range that is not one entity-tag or HTTP-date (its lenient date parser would send one).
  t.deepEqual(lines.filter((l) => !l.startsWith('XSendFile')).map((l) => l.replace(/=~ m#.*#"/, '=~ m#…#"')), ['<If "-n req(\'If-Range\') && ! req(\'If-Range\') =~ m#…#">', 'MaxRanges none', '</If>'])
})

test('apache: the If-Range pattern takes one entity-tag or one HTTP-date in its three forms, and nothing else', (t) => {
  const line = directives(renderServerConfig('apache', [apache({ sourceDir: '/srv/a', destinationDir: '/srv/a' })])).find((l) => l.startsWith('<If ')) ?? ''
  // The regular expression as Apache's PCRE sees it (\x22 is a double quote).
  const pattern = new RegExp((/m#(.*)#"/.exec(line)?.[1] ?? '(?!)').replaceAll('\\x22', '"'))
  for (const valid of ['"abc"', 'W/"abc"', '""', 'Sun, 10 Mar 2024 12:30:15 GMT', 'Sunday, 10-Mar-24 12:30:15 GMT', 'Sun Mar 10 12:30:15 2024', 'Sun Mar  1 12:30:15 2024']) {
    t.true(pattern.test(valid), valid)
  }
  for (const malformed of ['Sun, 10 Mar 2024 12:30:15 GMT, Sun, 10 Mar 2024 12:30:15 GMT', 'Sun, 10 Mar 2024 12:30:15 GMTx', 'Sun, 10 Mar 2024 12:30:15 GMT "x"', '"a", "b"', 'abc', '*', 'W/abc', '10 Mar 2024']) {
    t.false(pattern.test(malformed), malformed)
  }
})

test('apache full: modules, pid, the proxy to the app and the sendfile lines in the vhost', (t) => {
  const lines = directives(renderServerConfig('apache', [apache({ sourceDir: '/srv/a', destinationDir: '/srv/a' })], { full }))
  for (const line of ['Listen 127.0.0.1:8080', 'PidFile "/tmp/kd-x/httpd.pid"', 'LoadModule xsendfile_module /usr/lib/apache2/modules/mod_xsendfile.so',
    '<VirtualHost 127.0.0.1:8080>', 'ProxyPass / http://127.0.0.1:3000/ disablereuse=On', 'XSendFile On', 'XSendFilePath "/srv/a"', '</VirtualHost>']) {
    t.true(lines.includes(line), line)
  }
})

test('lighttpd: x-sendfile enabled with every destinationDir as a docroot', (t) => {
  const text = renderServerConfig('lighttpd', [
    lighttpd({ sourceDir: '/srv/a', destinationDir: '/srv/a' }),
    lighttpd({ sourceDir: '/srv/"b"', destinationDir: '/srv/"b"' })
  ], { upstream: '127.0.0.1:4000' })
  t.deepEqual(directives(text), [
    'proxy.server = ( "" => ( (',
    '"host" => "127.0.0.1",',
    '"port" => 4000,',
    '"x-sendfile" => "enable",',
    '"x-sendfile-docroot" => ( "/srv/a", "/srv/\\"b\\"" )',
    ') ) )',
    'server.stream-response-body = 2',
    'server.stat-cache-engine := "disable"'
  ])
})

test('lighttpd: a backslash is written as is (its strings know only \\"); a path ending in one is refused', (t) => {
  const text = renderServerConfig('lighttpd', [lighttpd({ sourceDir: '/srv/we\\ird', destinationDir: '/srv/we\\i"rd' })])
  t.true(directives(text).includes('"x-sendfile-docroot" => ( "/srv/we\\i\\"rd" )'))
  t.throws(() => renderServerConfig('lighttpd', [lighttpd({ sourceDir: '/srv/end\\', destinationDir: '/srv/end\\' })]), {
    instanceOf: TypeError, message: /^renderServerConfig\(\): destinationDir ends with "\\", which a lighttpd string cannot express/
  })
})

test('apache: a path with "${" is refused (Apache expands it as a variable); "\\" and a lone "$" are quoted', (t) => {
  for (const dir of ['/srv/v${HOME}', '/srv/${X']) {
    t.throws(() => renderServerConfig('apache', [apache({ sourceDir: dir, destinationDir: dir })]), { instanceOf: TypeError, message: /^renderServerConfig\(\): destinationDir contains "\$\{", which Apache expands/ }, dir)
  }
  t.throws(() => renderServerConfig('apache', [apache({ sourceDir: '/srv', destinationDir: '/srv' })], { full: { ...full, prefix: '/tmp/${HOME}' } }), { instanceOf: TypeError, message: /prefix contains "\$\{"/ })
  t.deepEqual(directives(renderServerConfig('apache', [apache({ sourceDir: '/srv/$x\\', destinationDir: '/srv/$x\\' })])).at(-1), 'XSendFilePath "/srv/$x\\\\"')
})

test('caddy: a backslash stays literal (only \\" is an escape); one before a quote or at the end goes in a backquoted token', (t) => {
  const root = (dir: string): string | undefined => directives(renderServerConfig('caddy', [caddy({ sourceDir: dir, destinationUrl: '/p/' })])).find((l) => l.startsWith('root'))
  t.is(root('/srv/we\\i"rd'), 'root * "/srv/we\\i\\"rd"')
  t.is(root('/srv/end\\'), 'root * `/srv/end\\`')
  t.is(root('/srv/a\\"q'), 'root * `/srv/a\\"q`', 'a backslash right before a quote: "\\\\\\"" would be two backslashes in Caddy')
  t.throws(() => root('/srv/`x\\'), { instanceOf: TypeError, message: /no Caddyfile token can express/ })
})

test('caddy: the If-Range pattern (a Caddyfile string, RE2) takes one entity-tag or one HTTP-date in its three forms, and nothing else', (t) => {
  const line = directives(renderServerConfig('caddy', [caddy({ sourceDir: '/srv/a', destinationUrl: '/p/' })])).find((l) => l.startsWith('not header_regexp If-Range ')) ?? ''
  const pattern = new RegExp(JSON.parse(line.slice('not header_regexp If-Range '.length)) as string)
  for (const valid of ['"abc"', 'W/"abc"', '""', 'Sun, 10 Mar 2024 12:30:15 GMT', 'Sunday, 10-Mar-24 12:30:15 GMT', 'Sun Mar 10 12:30:15 2024', 'Sun Mar  1 12:30:15 2024']) {
    t.true(pattern.test(valid), valid)
  }
  for (const malformed of ['"a", "a"', '"a" x', '"a",', 'Sun, 10 Mar 2024 12:30:15 GMT, Sun, 10 Mar 2024 12:30:15 GMT', 'Sun, 10 Mar 2024 12:30:15 GMTx', 'abc', '*', 'W/abc']) {
    t.false(pattern.test(malformed), malformed)
  }
  t.false(directives(renderServerConfig('caddy', [caddy({ sourceUrl: 'https://cdn.example/a/', destinationUrl: '/p/' })])).some((l) => l.includes('If-Range')), 'an origin judges its own If-Range')
})

test('caddy: the If-None-Match / If-Match pattern (a CEL raw string, RE2) takes `*` or a list of entity-tags, as the app\'s isEntityTagList() does', (t) => {
  const lines = directives(renderServerConfig('caddy', [caddy({ sourceDir: '/srv/a', destinationUrl: '/p/' })]))
  for (const field of ['If-None-Match', 'If-Match']) {
    const line = lines.find((l) => l.startsWith(`@koa_downloads_1_${field.toLowerCase().replaceAll('-', '_')} expression`)) ?? ''
    // A CEL raw string in a backquoted Caddyfile token: RE2 gets the text as written.
    const pattern = new RegExp(/\.matches\(r'(.*)'\)`$/.exec(line)?.[1] ?? '(?!)')
    const valid = ['*', ' * ', '"abc"', 'W/"abc"', '""', '"a", "b"', '"a",W/"b" ,\t"c"', ', ,"a",', '', '"a,b"', '"\u00e9"']
    const malformed = ['*x', '*\u0080', '"a" junk', '"a" "b"', '"a", *', '* , "a"', 'abc', 'W/abc', '"a b"', '"a"x', 'w/"a"', '"a\u0001"']
    for (const value of valid) {
      t.true(pattern.test(value), `${field} ${JSON.stringify(value)}`)
      t.true(isEntityTagList(value), `isEntityTagList ${JSON.stringify(value)}`)
    }
    for (const value of malformed) {
      t.false(pattern.test(value), `${field} ${JSON.stringify(value)}`)
      t.false(isEntityTagList(value), `isEntityTagList ${JSON.stringify(value)}`)
    }
  }
  t.false(directives(renderServerConfig('caddy', [caddy({ sourceUrl: 'https://cdn.example/a/', destinationUrl: '/p/' })])).some((l) => l.includes('If-None-Match')), 'an origin judges its own')
})

test('caddy: a sourceDir rule becomes a handle_response rooted at the directory with strip_prefix', (t) => {
  const text = renderServerConfig('caddy', [caddy({ sourceDir: '/srv/files', destinationUrl: '/protected/', header: 'X-Offload' })], { upstream: '127.0.0.1:4000' })
  const lines = directives(text)
  t.deepEqual(lines, [
    'reverse_proxy 127.0.0.1:4000 {',
    '@koa_downloads_1 header X-Offload "/protected/*"',
    'handle_response @koa_downloads_1 {',
    'copy_response_headers {',
    'include Content-Type Content-Disposition Cache-Control X-Content-Type-Options Content-Security-Policy Vary',
    '}',
    'root * /srv/files',
    'rewrite * {rp.header.X-Offload}',
    'uri strip_prefix /protected',
    // a Range that does not start with `bytes=` exactly, or has a number past 64 bits: dropped (Go would answer 416)
    '@koa_downloads_1_range_refused expression `!{http.request.header.Range}.startsWith("bytes=") || {http.request.header.Range}.matches(r\'[1-9][0-9]{18}\')`',
    'request_header @koa_downloads_1_range_refused -Range',
    // a malformed If-Range: the Range is dropped (Go would read the first tag of a list)
    '@koa_downloads_1_if_range {',
    'header If-Range *',
    lines.find((l) => l.startsWith('not header_regexp If-Range "')) ?? 'not header_regexp If-Range',
    '}',
    'request_header @koa_downloads_1_if_range -Range',
    // a malformed If-None-Match or If-Match, its lines joined: dropped (Go would read `*x` as `*`)
    `@koa_downloads_1_if_none_match expression \`!{http.request.header.If-None-Match}.matches(r'${ENTITY_TAG_LIST}')\``,
    'request_header @koa_downloads_1_if_none_match -If-None-Match',
    `@koa_downloads_1_if_match expression \`!{http.request.header.If-Match}.matches(r'${ENTITY_TAG_LIST}')\``,
    'request_header @koa_downloads_1_if_match -If-Match',
    // a directory: 404, not its index.html nor a redirect adding "/"
    'file_server {',
    'index ""',
    'disable_canonical_uris',
    '}',
    '}',
    '}',
    // beside it in the site: Caddy's own errors lose the download's headers copied from the app
    'handle_errors {',
    'header -Content-Type',
    'header -Content-Disposition',
    'header -Cache-Control',
    'header -X-Content-Type-Options',
    'header -Content-Security-Policy',
    'header -Vary',
    'respond "" {err.status_code}',
    '}'
  ])
})

test('caddy: a sourceUrl rule proxies to the origin without the client credentials or the origin type', (t) => {
  const lines = directives(renderServerConfig('caddy', [caddy({ sourceUrl: 'https://cdn.example.com/media/', destinationUrl: '/_origin/' })]))
  for (const line of ['rewrite * {rp.header.X-Accel-Redirect}?', 'uri replace /_origin/ /media/ 1', 'reverse_proxy https://cdn.example.com {', 'header_up Host {upstream_hostport}',
    'header_up -Authorization', 'header_up -Cookie', 'header_up -Proxy-Authorization', 'header_up -Origin', 'header_up -X-*',
    // an upgrade the origin accepted (h2c) gave the client a tunnel to any of its files (audit)
    'header_up -Upgrade', 'header_up -Connection', 'compression off', 'header_down -Clear-Site-Data', 'header_down -CDN-Cache-Control', 'header_down -Content-Type', 'header_down -Content-Disposition',
    'header_down -Content-Type', 'header_down -Content-Disposition', 'header_down -X-Accel-Redirect', 'header_down -X-Accel-Limit-Rate', 'header_down -X-Sendfile']) {
    t.true(lines.includes(line), line)
  }
  // a custom offload header of the rule is the origin's own too when the origin sends it
  const custom = directives(renderServerConfig('caddy', [caddy({ sourceUrl: 'https://cdn.example.com/media/', destinationUrl: '/_origin/', header: 'X-Caddy-File' })]))
  t.true(custom.includes('header_down -X-Caddy-File'))
  // the origin's 412 and 416 are passed on without the download's headers; its other errors become
  // Caddy's, mapped as the app maps them when streaming (the first matching handle_response wins)
  const first = lines.indexOf('@koa_downloads_1_conditional status 412 416')
  const errors = lines.slice(first, lines.indexOf('error 502', first) + 2)
  t.deepEqual(errors, [
    '@koa_downloads_1_conditional status 412 416', 'handle_response @koa_downloads_1_conditional {',
    'header -Content-Type', 'header -Content-Disposition', 'header -Cache-Control', 'header -X-Content-Type-Options', 'header -Content-Security-Policy', 'header -Vary', 'copy_response', '}',
    '@koa_downloads_1_missing status 404 410', 'handle_response @koa_downloads_1_missing {', 'error 404', '}',
    '@koa_downloads_1_unavailable status 429 503', 'handle_response @koa_downloads_1_unavailable {', 'error 503', '}',
    '@koa_downloads_1_timeout status 408 504', 'handle_response @koa_downloads_1_timeout {', 'error 504', '}',
    `@koa_downloads_1_failed status ${[300, 301, 302, 303, ...Array.from({ length: 95 }, (_, i) => 305 + i)].join(' ')} 4xx 5xx`, 'handle_response @koa_downloads_1_failed {', 'error 502', '}'
  ])
})

test('caddy: an internalRedirect rule matches status 200 and Location', (t) => {
  const lines = directives(renderServerConfig('caddy', [internalRedirect({ sourceDir: '/srv/files', destinationUrl: '/private/' })]))
  t.deepEqual(lines.slice(1, 5), ['@koa_downloads_1 {', 'status 200', 'header Location "/private/*"', '}'])
  t.true(lines.includes('rewrite * {rp.header.Location}'))
  // Caddy does not decode the Location: a percent-encoded value gets 404, never a sibling file
  // (an error, so that handle_errors drops the download's headers from the 404)
  const block = lines.slice(lines.indexOf('uri strip_prefix /private') + 1, lines.indexOf('handle_errors {'))
  t.deepEqual(block.slice(0, 2), ['@koa_downloads_1_encoded expression `{rp.header.Location}.matches("^[^?]*%")`', 'error @koa_downloads_1_encoded 404'])
  // (then the Range, If-Range, If-None-Match and If-Match lines of every sourceDir block, and its file_server)
  t.deepEqual(block.slice(-7), ['request_header @koa_downloads_1_if_match -If-Match', 'file_server {', 'index ""', 'disable_canonical_uris', '}', '}', '}'])
})

test('caddy: an internalRedirect sourceUrl rule tests the Location for "%", not the path that uri replace made of it', (t) => {
  // The sourceUrl's own path may hold escapes: checked after `uri replace` (Caddy runs `error` after
  // `uri`), a "%" of `/o/%2541/` refused every file
  const lines = directives(renderServerConfig('caddy', [internalRedirect({ sourceUrl: 'http://127.0.0.1:1/o/%2541/', destinationUrl: '/p/' })]))
  t.true(lines.includes('uri replace /p/ /o/%2541/ 1'))
  t.true(lines.includes('@koa_downloads_1_encoded expression `{rp.header.Location}.matches("^[^?]*%")`'))
  t.false(lines.some((l) => l.includes('path_regexp')))
})

test('caddy: a directory with "{" is refused (Caddy would read a placeholder)', (t) => {
  t.throws(() => renderServerConfig('caddy', [caddy({ sourceDir: '/srv/{x}', destinationUrl: '/p/' })]), { instanceOf: TypeError, message: /placeholder/ })
})

test('caddy full: admin off, bind to the listen host, storage in the prefix', (t) => {
  const lines = directives(renderServerConfig('caddy', [caddy({ sourceDir: '/srv/files', destinationUrl: '/p/' })], { full }))
  for (const line of ['admin off', 'auto_https off', 'storage file_system /tmp/kd-x/data', 'http://:8080 {', 'bind 127.0.0.1', 'reverse_proxy 127.0.0.1:3000 {', 'handle_errors {']) {
    t.true(lines.includes(line), line)
  }
})

// The "# Run:" line is the command a user pastes into a shell. Each program is a shell function that
// prints its arguments one per line (and Caddy's environment): the words the real program would get.
test('full: the "# Run:" line of each server runs as written in a POSIX shell, with the prefix as one word even with a space or a quote', async (t) => {
  const fake = [
    'mkdir () { printf \'%s\\n\' mkdir "$@"; }',
    'nginx () { printf \'%s\\n\' nginx "$@"; }',
    'apache2 () { printf \'%s\\n\' apache2 "$@"; }',
    'lighttpd () { printf \'%s\\n\' lighttpd "$@"; }',
    'caddy () { printf \'%s\\n\' "XDG_CONFIG_HOME=$XDG_CONFIG_HOME" "XDG_DATA_HOME=$XDG_DATA_HOME" caddy "$@"; }'
  ].join('\n')
  const rules: Record<ServerName, ConfigRule> = {
    nginx: nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }),
    apache: apache({ sourceDir: '/srv/a', destinationDir: '/srv/a' }),
    lighttpd: lighttpd({ sourceDir: '/srv/a', destinationDir: '/srv/a' }),
    caddy: caddy({ sourceDir: '/srv/a', destinationUrl: '/p/' })
  }
  for (const prefix of ['/tmp/kd-x', "/tmp/kd x's"]) {
    const words: Record<ServerName, string[]> = {
      nginx: ['mkdir', '-p', `${prefix}/tmp`, 'nginx', '-p', prefix, '-c', `${prefix}/nginx.conf`, '-e', 'stderr', '-g', 'daemon off;'],
      apache: ['apache2', '-f', `${prefix}/httpd.conf`, '-DFOREGROUND'],
      lighttpd: ['lighttpd', '-D', '-f', `${prefix}/lighttpd.conf`],
      caddy: [`XDG_CONFIG_HOME=${prefix}/cfg`, `XDG_DATA_HOME=${prefix}/data`, 'caddy', 'run', '--config', `${prefix}/Caddyfile`, '--adapter', 'caddyfile']
    }
    for (const server of ['nginx', 'apache', 'lighttpd', 'caddy'] as const) {
      const text = renderServerConfig(server, [rules[server]], { full: { ...full, prefix } })
      const line = /^# Run: (.*)$/m.exec(text)?.[1] ?? ''
      const { stdout } = await run('sh', ['-c', `${fake}\n${line}`])
      t.deepEqual(stdout.split('\n').slice(0, -1), words[server], `${server}, prefix ${prefix}: ${line}`)
    }
  }
})

test('rules of other servers are skipped with a comment; none left → TypeError naming the backends', (t) => {
  const rules = [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }), apache({ sourceDir: '/srv/a', destinationDir: '/srv/a' })]
  t.regex(renderServerConfig('nginx', rules), /# 1 rule\(s\) for other servers skipped\n$/)
  t.throws(() => renderServerConfig('lighttpd', rules), { instanceOf: TypeError, message: 'renderServerConfig(): none of the 2 rules is for lighttpd (backends: nginx, apache)' })
})

test('misuse is a TypeError naming the option', (t) => {
  const rules: ConfigRule[] = [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' })]
  t.throws(() => renderServerConfig('iis' as ServerName, rules), { instanceOf: TypeError, message: /server must be one of nginx, apache, lighttpd, caddy/ })
  t.throws(() => renderServerConfig('nginx', {} as ConfigRule[]), { instanceOf: TypeError, message: /rules must be an array/ })
  t.throws(() => renderServerConfig('nginx', [{} as ConfigRule]), { instanceOf: TypeError, message: /every rule must be an offload rule/ })
  t.throws(() => renderServerConfig('nginx', rules, { full: { ...full, prefix: 'relative' } }), { instanceOf: TypeError, message: /full.prefix must be an absolute directory/ })
  t.throws(() => renderServerConfig('nginx', rules, { full: { ...full, listen: '8080' } }), { instanceOf: TypeError, message: /listen must be "host:port"/ })
  t.throws(() => renderServerConfig('nginx', [{ backend: 'nginx', sourceDir: '/srv/a\nb', destinationUrl: '/p/' }]), { instanceOf: TypeError, message: /control character/ })
})

test('negotiated() rules are not rendered, and a comment says why', (t) => {
  const rules: ConfigRule[] = [nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }), { backend: 'negotiated' }]
  t.regex(renderServerConfig('nginx', rules), /location \^~ \/p\/ \{[^]*\n# 1 negotiated\(\) rule\(s\) not rendered: the proxy must send X-Sendfile-Type itself\n$/)
})

test('negotiated() mappings printed to write by hand are quoted as the generated locations are: a ";" or a quote in a destinationUrl or directory does not break the line', (t) => {
  const rules: ConfigRule[] = [
    nginx({ sourceDir: '/srv/a', destinationUrl: '/p/' }),
    { backend: 'negotiated', allow: ['X-Accel-Redirect'], mapping: [{ sourceDir: '/srv/it\'s;x', destinationUrl: '/it\'s;x/' }] } as unknown as ConfigRule
  ]
  const text = renderServerConfig('nginx', rules)
  t.true(text.includes('#     location ^~ "/it\'s;x/" { internal; alias "/srv/it\'s;x/"; }\n'), text)
})
