import {
  assertConfigSafe, describeRule, isRemoteRule, ORIGIN_ERROR_STATUSES, ORIGIN_SITE_HEADERS, ORIGIN_STATUSES_PASSED_ON, parseHostPort, quote,
  shellWord, splitSourceUrl, STORAGE_RESPONSE_HEADERS, withSlash
} from './shared.ts'
import type { ConfigRule, FullConfig } from './shared.ts'

// nginx strings interpolate `$variables` and there is no escape for `$`; refuse rather than emit a
// path nginx would silently rewrite.
export function nginxString (value: string, what: string): string {
  assertConfigSafe(value, what)
  if (value.includes('$')) throw new TypeError(`renderServerConfig(): ${what} contains "$", which nginx would read as a variable: ${JSON.stringify(value)}`)
  return /^[A-Za-z0-9_./:@%+,=-]+$/.test(value) ? value : quote(value)
}

function destinationOf (rule: ConfigRule): string {
  const destination = rule.destinationUrl
  if (destination === undefined || !destination.startsWith('/')) {
    throw new TypeError(`renderServerConfig(): ${describeRule(rule)} needs a destinationUrl path starting with "/"`)
  }
  // The rules refuse it too (normalizeDestinationUrl); a plain config object is not normalised.
  if (destination.includes('%')) throw new TypeError(`renderServerConfig(): ${describeRule(rule)}: destinationUrl must not contain "%" (nginx decodes the X-Accel-Redirect value, so it would never match this location)`)
  if (withSlash(destination) === '/') throw new TypeError(`renderServerConfig(): ${describeRule(rule)}: destinationUrl cannot be "/" (the internal location would take every URL of the server, the app's too)`)
  return withSlash(destination)
}

// The origin gets the client's Range, conditionals and Accept-Encoding, nothing else of the
// request: not its cookies or credentials (an app's own API-key header, Proxy-Authorization), not its
// Origin (a bucket's CORS rules would answer for the app's site). HTTP/1.1, so that an origin that
// sends no length frames its body (chunked): to an HTTP/1.0 request it ends the body by closing,
// and nginx took a close in mid-body for the end, passing a cut file on as complete (measured).
const requestLines = [
  '# HTTP/1.1: a body of unknown length comes chunked, so a cut one is not taken for complete',
  'proxy_http_version 1.1;',
  '# only the Range, conditional and Accept-Encoding fields of the client reach the origin: never its',
  '# cookies, credentials, API keys or Origin',
  'proxy_pass_request_headers off;',
  ...['Range', 'If-Range', 'If-Match', 'If-None-Match', 'If-Modified-Since', 'If-Unmodified-Since', 'Accept-Encoding']
    .map((name) => `proxy_set_header ${name} $http_${name.toLowerCase().replaceAll('-', '_')};`)
]
// nginx acts on these in any proxied response, the origin's too: without proxy_ignore_headers an
// origin's X-Accel-Redirect sends nginx to another internal location (another rule's protected
// files, or /_remote/ to any host), X-Accel-Limit-Rate slows the client, and so on. Only the app
// may give those orders; nginx already hides the headers themselves from the client.
const ignoredOriginHeaders = [
  '# the origin cannot give nginx orders: its X-Accel-Redirect would reach other internal locations',
  'proxy_ignore_headers X-Accel-Redirect X-Accel-Expires X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset;',
  '# (nginx hides those from the client itself, but not the other proxies\' offload headers)',
  'proxy_hide_header X-Sendfile;',
  'proxy_hide_header X-Lighttpd-Send-File;'
]
const hiddenOriginHeaders = [
  '# the app\'s Content-Type and Content-Disposition win: without these lines the client gets the',
  '# origin\'s type and two Content-Disposition headers',
  'proxy_hide_header Content-Disposition;',
  'proxy_hide_header Content-Type;',
  '# and its Cache-Control: without these the client gets the origin\'s caching headers beside the',
  '# app\'s (two Cache-Control), and the origin\'s cookies for the app\'s site',
  'proxy_hide_header Cache-Control;',
  'proxy_hide_header Expires;',
  'proxy_hide_header Set-Cookie;',
  '# nor may it set anything else on the app\'s site (site data, HSTS, CORS, refresh, policies) or',
  '# pass on hop-by-hop fields',
  ...ORIGIN_SITE_HEADERS.map((name) => `proxy_hide_header ${name};`),
  '# storage internals (S3, GCS): stock nginx hides only named headers, so user metadata',
  '# (x-amz-meta-*, x-goog-meta-*) still passes: with headers-more, add',
  '# more_clear_headers \'x-amz-*\' \'x-goog-*\'; — or keep nothing private in object metadata.',
  '# Names this long need a larger hash bucket than the default 64 (nginx -t refuses the list)',
  'proxy_headers_hash_bucket_size 128;',
  ...STORAGE_RESPONSE_HEADERS.map((name) => `proxy_hide_header ${name};`)
]

// nginx keeps six of the app's headers on an X-Accel-Redirect, and X-Content-Type-Options is not one
// of them. Without nosniff a browser ran an uploaded .txt or .bin as a script when a page of the
// site named it in a <script src>, also under `script-src 'self'` (measured with Chromium): the
// location adds it back. The origin's own is hidden, so that the client gets one.
function nosniffLines (fromOrigin: boolean): string[] {
  return [
    '# nosniff, which the app sends and nginx drops with the X-Accel-Redirect: without it a browser',
    '# runs an uploaded .txt or .bin that a page of the site names in a <script src> (also under',
    '# script-src \'self\'). A location with an add_header of its own inherits none of the server\'s',
    '# add_header lines (HSTS, a CSP): repeat here those that downloads need',
    ...fromOrigin ? ['proxy_hide_header X-Content-Type-Options;'] : [],
    'add_header X-Content-Type-Options nosniff always;'
  ]
}

// An origin's error is not the download. Passed through, its body (for S3 an XML document naming
// the bucket and the key) reached the client under the app's Content-Type and Content-Disposition,
// so a browser could save it as the file (measured with nginx 1.22). proxy_intercept_errors hands
// the statuses below to named locations that answer with nginx's own page, mapped as the app
// maps a failing origin when it streams (ORIGIN_ERROR_STATUSES; anything else, such as refused
// credentials, an expired signature or a redirect to another region, → 502). nginx's own failures
// to reach the origin take the same pages. 304, 412 and 416 (with its Content-Range) are the
// origin's answers to the client's conditional and range headers: they pass through.
// Every code error_page takes (300–599, whatever the origin invents: a CDN's 520, a 418) but those
// passed on, and 499, nginx's own "client closed the request", which error_page refuses (nginx -t:
// invalid value). 20 codes to a line.
const interceptedCodes = Array.from({ length: 300 }, (_, i) => 300 + i).filter((code) => !ORIGIN_STATUSES_PASSED_ON.includes(code) && code !== 499)
const statusOf = (code: number): number => ORIGIN_ERROR_STATUSES.find(({ codes }) => codes.includes(code))?.status ?? 502
const interceptedErrors: ReadonlyArray<readonly [status: number, codes: readonly number[]]> = [...ORIGIN_ERROR_STATUSES.map(({ status }) => status), 502].flatMap((status) => {
  const codes = interceptedCodes.filter((code) => statusOf(code) === status)
  return Array.from({ length: Math.ceil(codes.length / 20) }, (_, i) => [status, codes.slice(i * 20, i * 20 + 20)] as const)
})
const errorLocation = (status: number): string => `@koa_downloads_${status}`
// The statuses nginx's static module gives a file it cannot open: gone (404), or refused — by the
// permissions or, under proxyRefusesSymlinks, by disable_symlinks (403).
const fileErrorStatuses = [403, 404]
const interceptLines = [
  '# an error of the origin gets nginx\'s own page (the @koa_downloads_ locations), not the origin\'s',
  '# body (an S3 error names the bucket and the key) under the download\'s type: every status from',
  '# 300 to 599 but 304, 412 and 416, which pass through (and 499, nginx\'s own)',
  'proxy_intercept_errors on;',
  ...interceptedErrors.map(([status, codes]) => `error_page ${codes.join(' ')} = ${errorLocation(status)};`)
]
// An error nginx answers after an X-Accel-Redirect still carries the headers it took over from the
// app's response, its Cache-Control among them, and nginx has no directive to remove those. A
// browser kept such an error for the download's max-age (measured with Chromium: a 404, 403 or 502
// under `private, max-age=3600` was shown again from its cache, the server not asked). The error
// pages add `no-store`, which wins over any other Cache-Control directive the response carries.
function errorLocations (statuses: readonly number[]): string[] {
  return [
    '',
    '# The pages of nginx\'s own errors after an X-Accel-Redirect (named locations belong to the',
    '# server block). They still carry the app\'s Cache-Control, which nginx cannot remove: no-store',
    '# keeps a browser from showing the error again from its cache for the download\'s max-age.',
    ...statuses.map((status) => `location ${errorLocation(status)} { add_header Cache-Control "no-store" always; return ${status}; }`)
  ]
}

/**
 * A rule with a `charset` sends it as `X-Accel-Charset`, which nginx honours only for a charset it
 * knows (else it logs `unknown charset "…" to override`). `source_charset` makes it known and,
 * unlike `charset`, appends nothing to the Content-Type of responses that do not ask for it
 * (`charset utf-8;` turned the app's `text/plain` into `text/plain; charset=utf-8`: measured).
 */
function charsetLines (charset: string | undefined): string[] {
  if (charset === undefined) return []
  return ['    # makes the rule\'s X-Accel-Charset known to nginx (else "unknown charset … to override")', `    source_charset ${nginxString(charset, 'charset')};`]
}

/**
 * `buffering: false` for a location that fetches from an origin. nginx reads the rule's
 * X-Accel-Buffering on the app's response, which the X-Accel-Redirect ends: the internal location's
 * proxy_pass is a request of its own, buffered by its own directive (measured: an origin's 32 MiB
 * was read whole while the client read nothing). Off when any rule for the location asks it.
 * A local file is sent by nginx itself: there is nothing to buffer.
 */
function bufferingLines (rules: readonly ConfigRule[], location: string): string[] {
  if (!rules.some((rule) => rule.buffering === false && destinationOf(rule) === location)) return []
  return ['# buffering: false — the origin\'s bytes go to the client as they come (X-Accel-Buffering acts', '# only on the app\'s own response, which the redirect ends)', 'proxy_buffering off;']
}

/** The charset a location must know: that of the first rule for it that sends one (renderServerConfig refused two different ones). */
function locationCharset (rules: readonly ConfigRule[], location: string): string | undefined {
  for (const rule of rules) {
    if (typeof rule.charset === 'string' && destinationOf(rule) === location) return rule.charset
  }
  return undefined
}

// `^~`: once this prefix is the longest match, nginx skips the regex locations. Without it a
// server's usual `location ~* \.(jpg|css)$ { … }` takes the redirected `/protected/photo.jpg` and
// serves it from its own root (measured with nginx 1.22: another file, under the download's name).
function prefixLocation (location: string): string {
  return `location ^~ ${nginxString(location, 'destinationUrl')} {`
}

function localLocation (rule: ConfigRule, sourceDir: string, refuseSymlinks: boolean, charset: string | undefined): string[] {
  const location = destinationOf(rule)
  return [
    prefixLocation(location),
    '    # reachable only through X-Accel-Redirect: a client request gets 404',
    '    internal;',
    ...charsetLines(charset),
    `    alias ${nginxString(withSlash(sourceDir), 'sourceDir')};`,
    ...nosniffLines(false).map((line) => '    ' + line),
    ...refuseSymlinks
      ? ['    # proxyRefusesSymlinks: the app does not realpath these files; nginx refuses (403/404) any symlink below the alias', '    disable_symlinks on from=$document_root;']
      : [],
    '    # more range specs than the app reads when it streams (100): the whole file, as the app sends',
    '    # (nginx has no limit of its own: 120 one-byte ranges were a multipart body 12 times the request;',
    '    # it merges no ranges either, so up to 100 parts, where the app merges and stops at maxRanges)',
    '    max_ranges 100;',
    '    # a directory is not a file: 404, as the app answers (nginx would 301 to this internal URL + "/")',
    '    if (-d $request_filename) { return 404; }',
    '    # a file gone or refused by the time nginx opens it: nginx\'s page, not cached (below)',
    ...fileErrorStatuses.map((status) => `    error_page ${status} = ${errorLocation(status)};`),
    '}'
  ]
}

/** An IP literal (`127.0.0.1`, `[::1]`) as URL.host gives it, port included or not. */
function isIpHost (host: string): boolean {
  return host.startsWith('[') || /^\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?$/.test(host)
}

/** The CA bundle of Debian and Ubuntu (package ca-certificates): nginx verifies https origins against it by default. */
export const DEFAULT_TRUSTED_CERTIFICATE = '/etc/ssl/certs/ca-certificates.crt'

/**
 * For a location that proxies to https origins: the certificate is verified and the host name sent
 * (SNI), as the app's own requests (HttpFile, the storage SDKs) do. nginx's defaults are neither:
 * anyone between nginx and the origin could read the presigned URLs and change the bytes, and an
 * origin that needs SNI (a CDN) fails. The depth leaves room for longer chains than nginx's
 * default (1: the leaf and one issuer). `false`: no lines, nginx's defaults (the operator's choice,
 * e.g. for an origin addressed by IP, whose certificate nginx cannot verify).
 */
function tlsLines (trustedCertificate: string | false): string[] {
  if (trustedCertificate === false) return ['# https origins are NOT verified (trustedCertificate: false): nginx checks no certificate, sends no SNI']
  return [
    '# https origins: verify their certificate and send the host name (SNI), as the app does',
    'proxy_ssl_server_name on;',
    'proxy_ssl_verify on;',
    'proxy_ssl_verify_depth 4;',
    `proxy_ssl_trusted_certificate ${nginxString(trustedCertificate, 'trustedCertificate')};`
  ]
}

function originLocation (rule: ConfigRule, sourceUrl: string, charset: string | undefined, trustedCertificate: string | false, buffering: string[]): string[] {
  const location = destinationOf(rule)
  const { origin, basePath, host } = splitSourceUrl(sourceUrl)
  // nginx checks an origin's certificate against its host as a DNS name only (X509_check_host):
  // one addressed by IP could never pass, and every download would be a 502.
  if (origin.startsWith('https:') && trustedCertificate !== false && isIpHost(host)) {
    throw new TypeError(`renderServerConfig(): nginx cannot verify the certificate of an https origin addressed by IP (it checks host names only): ${JSON.stringify(sourceUrl)}; address it by a name its certificate carries, or pass trustedCertificate: false (--trusted-certificate off) to proxy to it unverified`)
  }
  return [
    prefixLocation(location),
    '    # reachable only through X-Accel-Redirect: otherwise an open door to the origin',
    '    internal;',
    ...charsetLines(charset),
    ...(origin.startsWith('https:') ? tlsLines(trustedCertificate).map((line) => '    ' + line) : []),
    ...[...requestLines, ...buffering, ...ignoredOriginHeaders, ...hiddenOriginHeaders, ...nosniffLines(true), ...interceptLines].map((line) => '    ' + line),
    '    # the client\'s Range and conditional headers are forwarded: the origin answers them',
    `    proxy_pass ${nginxString(origin + basePath, 'sourceUrl')};`,
    '}'
  ]
}

function remoteLocation (rule: ConfigRule, charset: string | undefined, trustedCertificate: string | false, buffering: string[]): string[] {
  const location = destinationOf(rule)
  const pattern = '^' + location.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '(?<rscheme>https?)/(?<rhost>[^/]+)/(?<rpath>.*)$'
  return [
    '# Any origin (presigned S3/GCS URLs): the app sends',
    `#   ${location}<scheme>/<host[:port]>/<path with every % doubled>?<query unchanged>`,
    '# nginx decodes the value once, so the doubled % brings back the signed, encoded path.',
    '# The regex is nested in a ^~ prefix location, so that no regex location of the server (a',
    '# `location ~* \\.(jpg|css)$`, wherever it stands) can take these URIs first.',
    prefixLocation(location),
    '    internal;',
    `    location ~ ${quote(pattern)} {`,
    '        # without `internal` this is an open proxy to any host',
    '        internal;',
    ...charsetLines(charset).map((line) => '    ' + line),
    '        # SigV4 signs the Host header ($rhost includes the port)',
    '        proxy_set_header Host $rhost;',
    ...tlsLines(trustedCertificate).map((line) => '        ' + line),
    ...[...requestLines, ...buffering, ...ignoredOriginHeaders, ...hiddenOriginHeaders, ...nosniffLines(true), ...interceptLines].map((line) => '        ' + line),
    '        # proxy_pass with variables resolves at request time: set a resolver for DNS names, e.g.',
    '        # resolver 127.0.0.53 valid=30s;',
    '        proxy_pass $rscheme://$rhost/$rpath$is_args$args;',
    '    }',
    '    # a value the pattern does not take',
    '    return 404;',
    '}'
  ]
}

function nginxLocations (rules: readonly ConfigRule[], trustedCertificate: string | false = DEFAULT_TRUSTED_CERTIFICATE): string[] {
  const lines: string[] = []
  const seen = new Set<string>()
  // A location shared by several rules refuses symlinks when any of them counts on it.
  const refusing = new Set(rules.filter((rule) => rule.proxyRefusesSymlinks === true).map(destinationOf))
  for (const rule of rules) {
    const location = destinationOf(rule)
    // Rules sharing a destination map it to the same place (renderServerConfig refused the others):
    // a duplicate, or the same sourceDir with and without a sourceUrl.
    if (seen.has(location)) continue
    seen.add(location)
    lines.push('', `# ${describeRule(rule)}`)
    const charset = locationCharset(rules, location)
    if (rule.sourceDir !== undefined) lines.push(...localLocation(rule, rule.sourceDir, refusing.has(location), charset))
    else if (isRemoteRule(rule)) lines.push(...remoteLocation(rule, charset, trustedCertificate, bufferingLines(rules, location)))
    else if (rule.sourceUrl !== undefined) lines.push(...originLocation(rule, rule.sourceUrl, charset, trustedCertificate, bufferingLines(rules, location)))
  }
  const statuses = new Set<number>()
  for (const rule of rules) {
    for (const status of rule.sourceDir !== undefined ? fileErrorStatuses : interceptedErrors.map(([status]) => status)) statuses.add(status)
  }
  if (statuses.size > 0) lines.push(...errorLocations([...statuses].sort((a, b) => a - b)))
  return lines
}

/**
 * For the `location /` that proxies to the app: room for its response head. An offload of a long
 * non-ASCII path carries it percent-encoded (3 bytes per UTF-8 byte), beside a Content-Disposition
 * with the name encoded again: 4.8 KB measured for a legal path, and nginx's default 4 KiB buffer
 * answered 502 ("upstream sent too big header"). The busy-buffers limit must stay below the
 * default proxy_buffers (8 × 4 KiB) minus one, which 2 × 16k would not.
 */
const appHeadLines: readonly string[] = ['proxy_buffer_size 16k;', 'proxy_busy_buffers_size 24k;']

export function renderNginx (rules: readonly ConfigRule[], full?: FullConfig, trustedCertificate?: string | false): string {
  const locations = nginxLocations(rules, trustedCertificate)
  if (full === undefined) {
    return [
      '# koa-downloads: X-Accel-Redirect targets for nginx (generated by `koa-downloads config nginx`).',
      '# Paste inside the server { } block whose `location /` proxies to the Koa app. Give that',
      '# location room for the app\'s response head (long non-ASCII paths, percent-encoded):',
      `#     ${appHeadLines.join(' ')}`,
      ...locations
    ].join('\n') + '\n'
  }
  const listen = parseHostPort(full.listen, 'listen')
  const upstream = parseHostPort(full.upstream, 'upstream')
  const prefix = full.prefix.replace(/\/+$/, '')
  const p = (name: string): string => nginxString(`${prefix}/${name}`, 'prefix')
  return [
    '# koa-downloads: complete nginx configuration (generated by `koa-downloads config nginx`).',
    `# Run: mkdir -p ${shellWord(prefix + '/tmp')} && nginx -p ${shellWord(prefix)} -c ${shellWord(prefix + '/nginx.conf')} -e stderr -g 'daemon off;'`,
    'worker_processes 1;',
    `pid ${p('nginx.pid')};`,
    'error_log stderr notice;',
    '# honoured only when nginx starts as root; the worker then needs read access to the files',
    'user nobody nogroup;',
    'events { worker_connections 256; }',
    'http {',
    '  include /etc/nginx/mime.types;',
    '  default_type application/octet-stream;',
    `  access_log ${p('access.log')};`,
    `  client_body_temp_path ${p('tmp/body')};`,
    `  proxy_temp_path ${p('tmp/proxy')};`,
    `  fastcgi_temp_path ${p('tmp/fastcgi')};`,
    `  uwsgi_temp_path ${p('tmp/uwsgi')};`,
    `  scgi_temp_path ${p('tmp/scgi')};`,
    '  sendfile on;',
    '  server {',
    `    listen ${listen.host}:${listen.port};`,
    '    location / {',
    `        proxy_pass http://${upstream.host}:${upstream.port};`,
    '        # chunked bodies from the app: over HTTP/1.0 a body of unknown length ends with the connection,',
    '        # so an app process that dies in the middle of one (a restart, a kill) would read as the whole file',
    '        proxy_http_version 1.1;',
    '        # the client\'s Host and address for the app (its links, its logs), as in the README\'s block',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '        # room for the app\'s response head: a long non-ASCII path percent-encoded in X-Accel-Redirect',
    '        # beside its Content-Disposition outgrows the default 4k (502 "upstream sent too big header")',
    ...appHeadLines.map((line) => '        ' + line),
    '    }',
    ...locations.map((line) => line === '' ? line : '    ' + line),
    '  }',
    '}'
  ].join('\n') + '\n'
}
