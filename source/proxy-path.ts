/**
 * Per-server encoders of the offload value (the guides in docs/deployment/). The segments they
 * take are already checked by the matcher (non-empty, not `.`/`..`, no `/`, NUL, CR, LF); each encoder
 * returns `undefined` when its server cannot be given that name, and the file is then streamed.
 */

/**
 * nginx (`X-Accel-Redirect`), lighttpd (`X-Sendfile`) and CGI `Location`: both decode the value once,
 * so every segment is percent-encoded (`encodeURIComponent`: all but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`),
 * which makes `%`, `?`, `#`, space and non-ASCII names survive the decode. `prefix` ends with `/`
 * and is already a URI path.
 */
export function encodedPath (prefix: string, segments: readonly string[]): string | undefined {
  let value = prefix
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string
    if (i > 0) value += '/'
    // The common name is its own encoding: no call into encodeURIComponent (bench/: the offload path).
    if (UNRESERVED.test(segment)) value += segment
    else if (segment.isWellFormed()) value += encodeURIComponent(segment)
    else return undefined
  }
  return value
}

/** Characters `encodeURIComponent` leaves as they are. */
const UNRESERVED = /^[A-Za-z0-9\-_.!~*'()]*$/

/**
 * Apache mod_xsendfile 0.12 and Caddy take the raw path, undecoded. Node's `setHeader` writes each
 * char ≤ U+00FF as one byte (and throws above that), so the UTF-8 bytes are carried as a latin1
 * string: `ü` goes out as 0xC3 0xBC, not 0xFC. Returns `undefined` for names the header cannot
 * carry intact: control characters and DEL (rejected by Node), or leading/trailing white space,
 * which HTTP parsers trim from a field value.
 */
export function rawPath (prefix: string, segments: readonly string[]): string | undefined {
  const value = prefix + segments.join('/')
  if (!value.isWellFormed() || /[\0-\x1f\x7f]/.test(value) || /[ \t]$/.test(value)) return undefined
  return Buffer.from(value, 'utf8').toString('latin1')
}

/**
 * lighttpd: an absolute directory plus segments, every segment of both percent-encoded. Undefined
 * for a path with a control character or DEL: lighttpd decodes the value and then replaces each
 * of them by `_` (measured, 1.4.69), so `a%01b` would send the file `a_b` — another file, or a 404.
 */
export function encodedFilePath (dir: string, segments: readonly string[]): string | undefined {
  const whole = [...dir === '/' ? [] : dir.split('/').slice(1), ...segments]
  return whole.some((segment) => CONTROL.test(segment)) ? undefined : encodedPath('/', whole)
}

const CONTROL = /[\0-\x1f\x7f]/

/** Apache: an absolute directory plus segments, raw. */
export function rawFilePath (dir: string, segments: readonly string[]): string | undefined {
  return rawPath(dir === '/' ? '/' : dir + '/', segments)
}

/**
 * The raw path, unless mod_xsendfile cannot open it: it joins the value to the XSendFilePath it
 * matches with apr_filepath_merge, which fails with ENAMETOOLONG — a 404 from Apache — once both
 * and the separators pass PATH_MAX (4096 bytes, its terminator included; measured by an outside
 * audit: 4062 + 30 served, 4063 + 30 refused). `allowed` is that XSendFilePath (or the longest it
 * can be). Such a file is streamed by the app instead.
 */
export function rawFilePathWithinPathMax (allowed: string, dir: string, segments: readonly string[]): string | undefined {
  const value = rawFilePath(dir, segments)
  // `value` holds the UTF-8 bytes one per character (latin1).
  if (value === undefined || Buffer.byteLength(allowed, 'utf8') + value.length + 4 > 4096) return undefined
  return value
}

/**
 * Caddy's `rewrite * {rp.header.X}` parses the raw value as a URI: a `?` starts the query and an
 * encoded `%3F` is not decoded, so a name with `?` cannot be served (docs/deployment/caddy.md).
 * A `%` followed by two hex digits is taken literally by Caddy's file_server (measured: `a%20b.txt`
 * serves that file).
 */
export function caddyPath (prefix: string, segments: readonly string[]): string | undefined {
  if (segments.some((s) => s.includes('?'))) return undefined
  return rawPath(prefix, segments)
}

/**
 * A file URL's query (`?…` or empty) as it may go into a header that Caddy rewrites to: with `{` and
 * `}` percent-encoded. Caddy 2.6's `rewrite * {rp.header.X}?` expands placeholders in the query part
 * of the value, so a query holding `{env.HOME}` or `{http.request.header.Authorization}` reached the
 * origin as a server variable or the client's own credentials (found by an outside audit). RFC 3986
 * allows neither character raw in a URI, so the escaped query names the same resource.
 */
export function placeholderSafeQuery (search: string): string {
  return search.replace(/[{}]/g, (c) => c === '{' ? '%7B' : '%7D')
}

/**
 * nginx's generic remote location (docs/deployment/nginx.md): `/_remote/<scheme>/<host[:port]>` +
 * the URL's pathname with every `%` doubled (nginx decodes the value once, and the signed path must reach the
 * origin still encoded) + the query unchanged (nginx does not decode `$args`). Undefined for URLs
 * nginx would rewrite: `//`, `.`/`..` segments, a directory, a non-http(s) scheme, credentials.
 */
export function remotePath (prefix: string, fileUrl: URL): string | undefined {
  if (fileUrl.protocol !== 'http:' && fileUrl.protocol !== 'https:') return undefined
  if (fileUrl.username !== '' || fileUrl.password !== '') return undefined
  const parts = fileUrl.pathname.split('/').slice(1)
  if (parts.some((p) => p === '' || /^(?:\.|%2e){1,2}$/i.test(p))) return undefined
  // WHATWG URL already percent-encodes controls, space, non-ASCII, `?` and `#` in path and query.
  const value = `${prefix}${fileUrl.protocol.slice(0, -1)}/${fileUrl.host}${fileUrl.pathname.replaceAll('%', '%25')}${fileUrl.search === '?' ? '' : fileUrl.search}`
  return /^[\x21-\x7e]+$/.test(value) ? value : undefined
}

/** The sub-delimiters, `:` and `@` that nginx 1.22 sends unescaped when it re-encodes a decoded path (measured). */
export const nginxLiteral = "!$&'()*+,;=:@"
/** The same for Caddy (Go's path escaping): `!'()*` are escaped. */
export const caddyLiteral = '$&+,;=:@'

const unreserved = /^[A-Za-z0-9\-._~]$/
const subDelimiter = /^[!$&'()*+,;=:@]$/
/**
 * Sub-delimiters that name the same file escaped or not at every common origin: S3, GCS, nginx,
 * Apache and Node's static servers decode them before the lookup. Not `+` (S3 website endpoints
 * and form-style decoders read it as a space in a path) nor `;` (Java servlet containers cut a
 * path parameter at it): a proxy that writes those unescaped may ask for another file.
 */
const interchangeable = /^[!$&'()*,=:@]$/

function escapeChar (char: string): string {
  let out = ''
  for (const byte of Buffer.from(char, 'utf8')) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  return out
}

/**
 * A raw path segment in a normal form (RFC 3986 §6.2.2, and further): hex digits upper-case,
 * escapes of unreserved and interchangeable characters decoded, characters no URI may hold
 * literally (space, `|`, `[`, non-ASCII…) escaped. What is left to tell two forms apart is how each
 * writes `+` and `;`.
 */
function normalSegment (raw: string): string {
  let out = ''
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i] as string
    if (char === '%' && /^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) {
      const decoded = String.fromCharCode(parseInt(raw.slice(i + 1, i + 3), 16))
      out += unreserved.test(decoded) || interchangeable.test(decoded) ? decoded : '%' + raw.slice(i + 1, i + 3).toUpperCase()
      i += 2
    } else {
      out += unreserved.test(char) || subDelimiter.test(char) ? char : escapeChar(char)
    }
  }
  return out
}

/**
 * Whether a proxy that fetches a fixed origin's file from its decoded path (nginx's `proxy_pass`
 * with a URI, Caddy's `reverse_proxy` after `rewrite`) asks the origin for the file URL itself.
 * The proxy re-encodes the path its own way, writing the characters of `literal` unescaped and
 * escaping the other sub-delimiters. RFC 3986 §2.2 does not make `p%2Bq` and `p+q` the same path,
 * and some origins do not either (see `interchangeable`): a name whose URL writes `+` or `;` the
 * other way round is streamed instead. The other sub-delimiters (`report (1).pdf`, `it's.txt`,
 * `a&b.csv`) count as the same URL either way, so that such common names stay offloaded.
 */
export function sameOnTheWire (rawSegments: readonly string[], segments: readonly string[], literal: string): boolean {
  if (rawSegments.length !== segments.length) return false
  return segments.every((segment, index) => {
    let sent = ''
    for (const char of segment) sent += unreserved.test(char) || interchangeable.test(char) || literal.includes(char) ? char : escapeChar(char)
    return sent === normalSegment(rawSegments[index] as string)
  })
}
