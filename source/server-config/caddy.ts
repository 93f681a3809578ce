import {
  assertConfigSafe, describeRule, ORIGIN_ERROR_STATUSES, ORIGIN_SITE_HEADERS, ORIGIN_STATUSES_PASSED_ON, parseHostPort, shellWord, splitSourceUrl,
  validIfRangePattern, withSlash, withoutSlash
} from './shared.ts'
import type { ConfigRule, FullConfig } from './shared.ts'

// Caddyfile tokens expand `{placeholders}` in most directives; a literal brace in a path would be
// rewritten, so refuse it. A quoted token knows one escape, \" (measured with `caddy adapt` 2.6.2):
// other backslashes are literal, also before an escaped quote, so a backslash right before a quote
// or at the end cannot be written there; a backquoted token, taken verbatim, can.
function caddyString (value: string, what: string): string {
  assertConfigSafe(value, what)
  if (/[{}]/.test(value)) throw new TypeError(`renderServerConfig(): ${what} contains "{" or "}", which Caddy reads as a placeholder: ${JSON.stringify(value)}`)
  if (/^[A-Za-z0-9_./:@%+,=-]+$/.test(value)) return value
  if (!/\\(?="|$)/.test(value)) return '"' + value.replaceAll('"', '\\"') + '"'
  if (!value.includes('`')) return '`' + value + '`'
  throw new TypeError(`renderServerConfig(): ${what} has a "\\" before a quote or at the end and a "\`", which no Caddyfile token can express: ${JSON.stringify(value)}`)
}

// `{rp.header.<name>}` looks the name up as written, in Go's canonical form (measured with Caddy
// 2.6.2: `{rp.header.x-accel-redirect}` is empty, so the rewrite lost the value: 404, or 400 for a
// sourceUrl rule), while the matcher and HTTP itself ignore case: write every name canonically.
function headerNameOf (rule: ConfigRule): string {
  const header = rule.backend === 'internal-redirect' ? 'Location' : rule.header ?? 'X-Accel-Redirect'
  if (!/^[A-Za-z0-9-]+$/.test(header)) throw new TypeError(`renderServerConfig(): ${describeRule(rule)} has an invalid header name`)
  return header.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase())
}

function destinationOf (rule: ConfigRule): string {
  const destination = rule.destinationUrl
  if (destination === undefined || !destination.startsWith('/')) {
    throw new TypeError(`renderServerConfig(): ${describeRule(rule)} needs a destinationUrl path starting with "/"`)
  }
  // The rules refuse it too (normalizeDestinationUrl); a plain config object is not normalised.
  if (destination.includes('%')) throw new TypeError(`renderServerConfig(): ${describeRule(rule)}: destinationUrl must not contain "%" (Caddy would never match the value the app sends)`)
  return withSlash(destination)
}

// The app headers the blocks copy: they describe the download, so every response that is not the
// download must lose them again (caddyErrorHandler, failedOrigin).
const copied = ['Content-Type', 'Content-Disposition', 'Cache-Control', 'X-Content-Type-Options', 'Content-Security-Policy', 'Vary']

const copyHeaders = [
  '# handle_response drops every app header unless copied (Content-Length and validators come',
  '# from the file)',
  'copy_response_headers {',
  `\tinclude ${copied.join(' ')}`,
  '}'
]

/**
 * Site-level: copy_response_headers writes the app's headers before file_server or the origin
 * answers, and an error Caddy raises afterwards (the file gone since the app checked it, a refused
 * encoded Location, an unreachable origin) is written with them, so a 404 came with the download's
 * Content-Disposition (measured with Caddy 2.6.2). handle_errors runs on that same response.
 */
const caddyErrorHandler = [
  'handle_errors {',
  '\t# Caddy\'s own errors must not carry the download\'s headers copied from the app',
  ...copied.map((name) => `\theader -${name}`),
  '\trespond "" {err.status_code}',
  '}'
]

// An origin's error is not the download. Its answers to the client's own conditional and range
// headers (412, and 416 with its Content-Range) are passed on as they are, without the app's
// copied headers. Any other error status becomes an error of Caddy's, mapped as the app maps a
// failing origin when it streams (ORIGIN_ERROR_STATUSES, as nginx's pages; anything else, such as
// refused credentials, an expired signature or a redirect to another region, → 502). The site's handle_errors answers it, without the origin's
// body: copied on, an S3 error (XML naming the bucket and the key) reached the client (measured
// with Caddy 2.6.2). The first matching handle_response wins.
const originErrors: ReadonlyArray<readonly [suffix: string, codes: string, status: number]> = [
  ...ORIGIN_ERROR_STATUSES.map(({ name, status, codes }) => [name, codes.join(' '), status] as const),
  // every other 3xx (but 304, passed on: `3xx` would take it), 4xx and 5xx; 412 and 416 are taken first
  ['failed', `${Array.from({ length: 100 }, (_, i) => 300 + i).filter((code) => !ORIGIN_STATUSES_PASSED_ON.includes(code)).join(' ')} 4xx 5xx`, 502]
]
/**
 * The offload headers (and nginx's controls) an origin may send for a proxy of its own: this inner
 * reverse_proxy has no handle_response for them, so Caddy does not act on them, but it would pass
 * them on to the client, which then sees an internal path, and `koa-downloads check` a leak. The
 * rule's own header too, unless it is Location (an internal-redirect rule: the origin's redirects
 * end in handle_errors anyway).
 */
function originOffloadHeaders (header: string): string[] {
  const names = ['X-Accel-Redirect', 'X-Accel-Buffering', 'X-Accel-Limit-Rate', 'X-Accel-Expires', 'X-Accel-Charset', 'X-Sendfile', 'X-Lighttpd-Send-File']
  if (header !== 'Location' && !names.includes(header)) names.push(header)
  return names
}

function failedOrigin (matcher: string): string[] {
  return [
    '\t# the origin\'s answers to the client\'s conditionals and ranges: without the app\'s headers',
    `\t${matcher}_conditional status 412 416`,
    `\thandle_response ${matcher}_conditional {`,
    ...copied.map((name) => `\t\theader -${name}`),
    '\t\tcopy_response',
    '\t}',
    '\t# any other error of the origin: Caddy\'s error (handle_errors), not the origin\'s body (an S3',
    '\t# error names the bucket and the key)',
    ...originErrors.flatMap(([suffix, codes, status]) => [
      `\t${matcher}_${suffix} status ${codes}`,
      `\thandle_response ${matcher}_${suffix} {`,
      `\t\terror ${status}`,
      '\t}'
    ])
  ]
}

// Caddy's transport waits for an origin without limit by default: an origin that accepted the
// connection and never answered, or stopped sending mid-body, held the client's request open with
// nothing sent (measured with Caddy 2.6.2). These are nginx's proxy_read_timeout default: no
// response headers within 60 s → 504 (handle_errors), no body byte for 60 s → the connection is
// closed, so the client sees a cut-short transfer, never a complete-looking file.
const originTimeouts = [
  '\t# without these Caddy waits for a silent origin without limit (nginx\'s default: 60 s)',
  '\ttransport http {',
  '\t\tresponse_header_timeout 60s',
  '\t\tread_timeout 60s',
  '\t\t# the bytes as the origin sends them: Go asks for gzip itself when the client sent no',
  '\t\t# Accept-Encoding and decodes it, under the origin\'s ETag of the gzip bytes; a resume',
  '\t\t# (a Range, for which Go asks nothing) then got the gzip bytes',
  '\t\tcompression off',
  '\t}'
]

// Go's ServeContent (file_server) reads the first entity-tag of an If-Range such as `"x", "x"` or
// `"x" junk` and sends the range, where RFC 9110 sends the whole file: a value that is neither one
// entity-tag nor one HTTP-date cannot match (measured with Caddy 2.6.2). The app cannot stream such
// requests instead (Go's ETag is not the app's), so the block drops their Range: file_server then
// sends the whole file, as the RFC says.
const IF_RANGE_VALID = validIfRangePattern('\\"')
function malformedIfRange (matcher: string): string[] {
  return [
    '\t# an If-Range that is neither one entity-tag nor one HTTP-date cannot match: the whole file (Go',
    '\t# would read the first tag of `"x", "x"` and send the range)',
    `\t${matcher}_if_range {`,
    '\t\theader If-Range *',
    `\t\tnot header_regexp If-Range "${IF_RANGE_VALID}"`,
    '\t}',
    `\trequest_header ${matcher}_if_range -Range`
  ]
}

// Go's ServeContent (file_server) reads an If-None-Match or If-Match that starts with `*` as `*`
// (`*x`), and the first entity-tag of `"x" junk` (measured with Caddy 2.6.2: 304 where RFC 9110
// ignores such a field). The app streams such requests where the proxy's validators are its own,
// but Go's are not: the block drops a field that is neither `*` nor a comma list of entity-tags,
// and file_server answers as without it. (The app, streaming, skips a malformed member and reads
// the others; either way the field cannot match by a member that is not an entity-tag.) The field
// is judged whole, its lines joined with "," as the placeholder gives them: `header_regexp` matches
// when any one line does, and Go reads the first (`*x` beside `"nope"` got a 304). A CEL raw
// string (r'…') holds the pattern: no escapes, and no single quote in it.
const TAG = '(W/)?"[^"\\x00-\\x20\\x7f]*"'
export const ENTITY_TAG_LIST = `^[ \\t]*\\*[ \\t]*$|^([ \\t,]*${TAG}[ \\t]*(,|$))*[ \\t,]*$`
function malformedTagLists (matcher: string): string[] {
  return [
    '\t# an If-None-Match or If-Match that is neither `*` nor a list of entity-tags is ignored (Go would',
    '\t# read `*x` as `*`, and the first tag of `"x" junk`); its lines are judged joined, as one field',
    ...(['If-None-Match', 'If-Match'] as const).flatMap((field) => {
      const name = `${matcher}_${field.toLowerCase().replaceAll('-', '_')}`
      return [
        `\t${name} expression \`!{http.request.header.${field}}.matches(r'${ENTITY_TAG_LIST}')\``,
        `\trequest_header ${name} -${field}`
      ]
    })
  ]
}

// Go's ServeContent (file_server) reads a Range only when it starts with `bytes=` exactly, and
// answers 416 to any other: `BYTES=0-9` (a unit is case-insensitive: honour it) and `items=0-9` (an
// unknown unit MUST be ignored), where RFC 9110 §14.1–14.2 sends the range or the whole file
// (measured with Caddy 2.6.2). The block drops such a Range, so file_server sends the whole file.
// `{http.request.header.Range}` joins several Range fields with "," and Go reads the first, so
// the matcher reads the first too. An absent Range reads as "" and is "dropped" to no effect.
// Go also answers 416 to a number past 2^63 − 1 (`bytes=0-18446744073709551615`), which RFC 9110
// §14.1.2 cuts to the file: a satisfiable range. The app streams such requests where the proxy's
// validators are its own; Go's are not, so the block drops a Range with a number of 19 digits or
// more (from 10^18) and file_server sends the whole file, which §14.2 allows.
function rangeOfOtherUnit (matcher: string): string[] {
  return [
    '\t# a Range that file_server would refuse with 416 (`BYTES=0-9`, `items=0-9`, a number past 64 bits):',
    '\t# the whole file, as RFC 9110 allows for an other-case unit or a long number and requires for an',
    '\t# unknown unit',
    `\t${matcher}_range_refused expression \`!{http.request.header.Range}.startsWith("bytes=") || {http.request.header.Range}.matches(r'[1-9][0-9]{18}')\``,
    `\trequest_header ${matcher}_range_refused -Range`
  ]
}

// A value naming a directory is not a download. file_server's defaults served the directory's
// index.html as the file (200, with the download's Content-Disposition) or redirected to the path
// with a "/" added (308, revealing the rewritten path), where streaming, nginx, Apache and lighttpd
// answer 404. An index name "" joins to the directory itself, which is still a directory, so
// file_server gives its 404 (an error: handle_errors drops the copied headers); without index file
// there is no canonical redirect either, and `disable_canonical_uris` makes sure of it (measured
// with Caddy 2.6.2; `index off` would look for a file named "off").
const fileServer = [
  '\tfile_server {',
  '\t\t# a directory is not a download: 404 (not its index.html, not a redirect adding a "/")',
  '\t\tindex ""',
  '\t\tdisable_canonical_uris',
  '\t}'
]

/**
 * A destination as `uri replace` sees it: it searches the escaped path, which Go writes with
 * `!'()*` escaped (the other characters a destinationUrl may hold stay as they are). Written
 * plainly, `/it's/` never matched `/it%27s/…`, and the request went to the origin unreplaced, as
 * `/it%27s/<file>`: another path than the rule's (measured with Caddy 2.6.2). `uri strip_prefix`
 * compares decoded characters and needs no such form.
 */
function goEscaped (path: string): string {
  return path.replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

function handleBlock (rule: ConfigRule, index: number): string[] {
  const header = headerNameOf(rule)
  const destination = destinationOf(rule)
  const matcher = `@koa_downloads_${index}`
  // The glob on the raw value is Caddy's only guard: an unmatched value passes through to the client.
  const match = `header ${header} ${caddyString(destination + '*', 'destinationUrl')}`
  const lines = [`# ${describeRule(rule)}`]
  if (rule.backend === 'internal-redirect') {
    lines.push(`# the CGI-style local redirect: 200 + Location: ${destination}…`, `${matcher} {`, '\tstatus 200', `\t${match}`, '}')
  } else {
    lines.push(`${matcher} ${match}`)
  }
  lines.push(`handle_response ${matcher} {`, ...copyHeaders.map((l) => '\t' + l))
  // The CGI convention percent-encodes the Location (RFC 3875 §6.3.2) and Caddy does not decode it:
  // `/private/a%20b.txt` would be served as the file literally named "a%20b.txt" (or fetched from
  // the origin as that key), another file than the app's "a b.txt". A "%" in the value's path can
  // only come from such an encoding (destinationUrl has none), so those values get 404 instead.
  // The value itself is tested, not the rewritten path: Caddy runs `error` after `uri replace`,
  // which puts the sourceUrl's path in front, and a "%" of that path (`/o/%2541/`) refused every
  // file (measured with Caddy 2.6.2). The query (forwardQuery) may hold escapes.
  const encodedRefused = rule.backend === 'internal-redirect'
    ? [
        '\t# Caddy does not percent-decode the Location: an encoded name would be another file, so 404',
        '\t# (an error, not respond: handle_errors then drops the headers copied from the app)',
        `\t${matcher}_encoded expression \`{rp.header.${header}}.matches("^[^?]*%")\``,
        `\terror ${matcher}_encoded 404`
      ]
    : []
  if (rule.sourceDir !== undefined) {
    lines.push(
      '\t# rooted at the protected directory, so a ".." cleaned after matching cannot leave it',
      `\troot * ${caddyString(withoutSlash(rule.sourceDir), 'sourceDir')}`,
      `\trewrite * {rp.header.${header}}`,
      `\turi strip_prefix ${caddyString(withoutSlash(destination), 'destinationUrl')}`,
      ...encodedRefused,
      ...rangeOfOtherUnit(matcher),
      ...malformedIfRange(matcher),
      ...malformedTagLists(matcher),
      ...fileServer
    )
  } else if (rule.sourceUrl !== undefined) {
    const { origin, basePath } = splitSourceUrl(rule.sourceUrl)
    lines.push(
      // The "?" makes rewrite set the query from the value: the value's own (forwardQuery), or
      // none. Without it, Caddy 2.6 keeps the client's query string and drops the value's.
      '\t# sets the query too: the one in the value (forwardQuery), else none (not the client\'s)',
      `\trewrite * {rp.header.${header}}?`,
      basePath === '/'
        ? `\turi strip_prefix ${caddyString(withoutSlash(destination), 'destinationUrl')}`
        : `\turi replace ${caddyString(goEscaped(destination), 'destinationUrl')} ${caddyString(basePath, 'sourceUrl')} 1`,
      ...encodedRefused,
      `\treverse_proxy ${caddyString(origin, 'sourceUrl')} {`,
      '\t\theader_up Host {upstream_hostport}',
      '\t\t# the client\'s credentials must never reach the origin, nor its Origin (a bucket\'s CORS rules',
      '\t\t# would answer for the app\'s site), nor its X- fields (API keys, CSRF tokens, its address)',
      '\t\theader_up -Authorization',
      '\t\theader_up -Cookie',
      '\t\theader_up -Proxy-Authorization',
      '\t\theader_up -Origin',
      '\t\theader_up -Referer',
      '\t\theader_up -X-*',
      '\t\t# nor an upgrade: an origin accepting it (h2c, WebSocket) would give the client a tunnel to',
      '\t\t# any of its files',
      '\t\theader_up -Upgrade',
      '\t\theader_up -Connection',
      '\t\t# the app\'s Content-Type, Content-Disposition and Cache-Control win; no cookie of the origin',
      '\t\theader_down -Content-Type',
      '\t\theader_down -Content-Disposition',
      '\t\theader_down -Cache-Control',
      '\t\theader_down -Expires',
      '\t\theader_down -Set-Cookie',
      '\t\t# nor anything else it could set on the app\'s site (site data, HSTS, CORS, refresh, policies),',
      '\t\t# nor hop-by-hop fields',
      ...ORIGIN_SITE_HEADERS.map((name) => `\t\theader_down -${name}`),
      '\t\t# storage internals and object metadata (S3, GCS), which the app never passes on either',
      '\t\theader_down -x-amz-*',
      '\t\theader_down -x-goog-*',
      '\t\theader_down -x-guploader-*',
      '\t\t# an offload header of the origin\'s own is not the app\'s: it must not reach the client',
      ...originOffloadHeaders(header).map((name) => `\t\theader_down -${name}`),
      ...originTimeouts.map((l) => '\t' + l),
      ...failedOrigin(matcher).map((l) => '\t' + l),
      '\t}'
    )
  } else {
    throw new TypeError(`renderServerConfig(): ${describeRule(rule)} needs a sourceDir or a sourceUrl`)
  }
  lines.push('}')
  return lines
}

function caddyReverseProxy (rules: readonly ConfigRule[], upstream: string): string[] {
  const { host, port } = parseHostPort(upstream, 'upstream')
  const blocks = rules.flatMap((rule, i) => handleBlock(rule, i + 1))
  return [`reverse_proxy ${host}:${port} {`, ...blocks.map((l) => '\t' + l), '}']
}

export function renderCaddy (rules: readonly ConfigRule[], full?: FullConfig, upstreamText?: string): string {
  if (full === undefined) {
    return [
      '# koa-downloads: offload for Caddy (generated by `koa-downloads config caddy`).',
      '# Replace the site\'s reverse_proxy to the Koa app with:',
      ...(upstreamText === undefined ? ['# (the app is assumed on 127.0.0.1:3000: pass --upstream host:port)'] : []),
      ...caddyReverseProxy(rules, upstreamText ?? '127.0.0.1:3000'),
      '# and, if the site has no handle_errors of its own, add this beside the reverse_proxy (a site',
      '# with its own error pages keeps them: these lines would strip their Content-Type too):',
      ...caddyErrorHandler
    ].join('\n') + '\n'
  }
  const listen = parseHostPort(full.listen, 'listen')
  const prefix = withoutSlash(full.prefix)
  return [
    '# koa-downloads: complete Caddyfile (generated by `koa-downloads config caddy`).',
    `# Run: XDG_CONFIG_HOME=${shellWord(prefix + '/cfg')} XDG_DATA_HOME=${shellWord(prefix + '/data')} caddy run --config ${shellWord(prefix + '/Caddyfile')} --adapter caddyfile`,
    '{',
    '\t# no admin endpoint: stop Caddy by its PID',
    '\tadmin off',
    '\tauto_https off',
    `\tstorage file_system ${caddyString(prefix + '/data', 'prefix')}`,
    '}',
    // No host in the site address: Caddy would make it a Host matcher, and a request naming any
    // other host (localhost, the public name) would get Caddy's empty 200.
    `http://:${listen.port} {`,
    '\t# the site address names no host (every Host is served); bind restricts the listener',
    `\tbind ${listen.host}`,
    ...caddyReverseProxy(rules, full.upstream).map((l) => '\t' + l),
    ...caddyErrorHandler.map((l) => '\t' + l),
    '}'
  ].join('\n') + '\n'
}
