import path from 'node:path'
import { debug, loggableUrl } from './debug.ts'
import type { DownloadFile } from './types.ts'

/** Which server a rule hands the transfer to. `negotiated` rules pick it per request (opt-in). */
export type OffloadBackend = 'nginx' | 'apache' | 'lighttpd' | 'caddy' | 'internal-redirect' | 'negotiated'

/** The parts of the request a rule may look at (only `negotiated()` reads headers). */
export interface OffloadRequest {
  readonly method: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
}

/** What a matching rule sends instead of the bytes. */
export interface OffloadTarget {
  /** The offload header: `X-Accel-Redirect`, `X-Sendfile`, `Location` or Caddy's matcher header. */
  readonly header: string
  /** Its value, already encoded for that server and safe for `setHeader` (no CR, LF, NUL). */
  readonly value: string
  /**
   * Whether the server answers conditionals with the app's ETag/Last-Modified (Apache, lighttpd):
   * then `offload()` stats the file once and sends them.
   */
  readonly validators: boolean
  /**
   * Whether the server answers with the validators the app streams the file with, without being
   * sent them: nginx for a local file (its ETag is `"<mtime hex>-<size hex>"`, as the app's). Then,
   * as with `validators`, `offload()` may stream a request that server would misjudge (a malformed
   * date it reads leniently) without the client seeing another ETag.
   */
  readonly sameValidators?: boolean | undefined
  /** Further control headers (nginx `X-Accel-*`). */
  readonly controls?: Readonly<Record<string, string>> | undefined
}

/**
 * An offload rule: `nginx()`, `apache()`, `lighttpd()`, `caddy()`, `internalRedirect()` or
 * `negotiated()`. Its normalised configuration is exposed read-only (the config generator reads it).
 */
export interface OffloadRule {
  readonly backend: OffloadBackend
  /** Absolute, normalised, without trailing slash (`/` stays `/`): matched against `file.path`. */
  readonly sourceDir?: string | undefined
  /** `scheme://host[:port]/path/` (always a trailing slash, no query): matched against `file.url`. */
  readonly sourceUrl?: string | undefined
  /**
   * The proxy refuses symlinks below `sourceDir` itself, on the path it opens (nginx's
   * `proxyRefusesSymlinks`): offload() then hands a rooted PathFile over without its realpath.
   */
  readonly proxyRefusesSymlinks?: boolean | undefined
  /**
   * The offload for `file`, or `undefined` when this rule does not cover it (a debug line says why).
   * Pure: no I/O, nothing opened.
   */
  match (file: DownloadFile, request: OffloadRequest): OffloadTarget | undefined
}

/** The source options every rule takes: at least one of the two. */
export interface SourceOptions {
  /**
   * A local directory: files whose absolute `path` lies below it (on whole path segments) match.
   * @example '/srv/app/private'
   */
  sourceDir?: string | undefined
  /**
   * A URL prefix: files whose `url` has the same scheme, host and port and whose path continues it
   * on whole segments match. The file URL's query string is dropped unless the rule forwards it.
   * @example 'https://cdn.example.com/media/'
   */
  sourceUrl?: string | undefined
}

/** Where a file lies below a rule's source: the remaining path segments, decoded. */
export interface SourceMatch {
  readonly via: 'path' | 'url'
  /** Decoded segments below the source, each non-empty, not `.`/`..`, without `/`, NUL, CR or LF. */
  readonly segments: readonly string[]
  /** The file URL's query string with its `?` (only for `via: 'url'`), else `''`. */
  readonly search: string
  /**
   * For `via: 'url'`: the same segments as the file URL writes them (percent-escapes kept), to
   * check that a proxy fetching the decoded path asks the origin for this URL (proxy-path.ts).
   * Empty when the file URL writes a `+` or `;` of the sourceUrl's own path another way than the
   * sourceUrl (escaped or not): the proxy would ask for the sourceUrl's spelling, another URL.
   */
  readonly rawSegments?: readonly string[] | undefined
}

/** Why a decoded segment can never be emitted (each server's guide in docs/deployment/). */
export function unsafeSegment (segment: string): string | undefined {
  if (segment === '') return 'an empty path segment'
  if (segment === '.' || segment === '..') return `a "${segment}" segment`
  if (/[\0\r\n]/.test(segment)) return 'NUL, CR or LF in the path'
  if (segment.includes('/')) return 'an encoded "/" in a segment'
  if (!segment.isWellFormed()) return 'a lone surrogate in the path'
  return undefined
}

/** Options bag check shared by the rule factories: an object with only the known keys. */
export function checkOptions<T extends object> (fn: string, options: T, allowed: readonly string[]): T {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${fn}: options must be an object`)
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new TypeError(`${fn}: unknown option "${key}" (allowed: ${allowed.join(', ')})`)
  }
  return options
}

/** Query parameters that carry a URL signature: AWS SigV4, GCS V4 and V2, Azure SAS. */
const signatureParameters = new Set(['x-amz-signature', 'x-goog-signature', 'signature', 'sig'])

/**
 * Whether `url` looks presigned (S3, GCS, Azure): its signature covers the method, so the storage
 * refuses a HEAD of a URL signed for GET (403).
 */
export function looksPresigned (url: string): boolean {
  const query = url.indexOf('?')
  if (query === -1) return false
  for (const name of new URLSearchParams(url.slice(query + 1)).keys()) {
    if (signatureParameters.has(name.toLowerCase())) return true
  }
  return false
}

/** Normalises and validates `sourceDir` / `sourceUrl`; `required` = at least one must be given. */
export function normalizeSource (fn: string, options: SourceOptions, required = true): { sourceDir?: string, sourceUrl?: string } {
  const result: { sourceDir?: string, sourceUrl?: string } = {}
  const { sourceDir, sourceUrl } = options
  if (sourceDir !== undefined) result.sourceDir = normalizeDir(fn, 'sourceDir', sourceDir)
  if (sourceUrl !== undefined) result.sourceUrl = normalizeSourceUrl(fn, sourceUrl)
  if (required && result.sourceDir === undefined && result.sourceUrl === undefined) {
    throw new TypeError(`${fn}: sourceDir or sourceUrl is required (which files does this rule offload?)`)
  }
  return result
}

/** An absolute directory, resolved (no `.`/`..`), without trailing slash. */
export function normalizeDir (fn: string, option: string, value: unknown): string {
  if (typeof value !== 'string' || value === '' || !path.isAbsolute(value) || /[\0-\x1f\x7f]/.test(value) || !value.isWellFormed()) {
    throw new TypeError(`${fn}: ${option} must be an absolute directory path without control characters, e.g. '/srv/files'`)
  }
  return path.resolve(value)
}

function normalizeSourceUrl (fn: string, value: unknown): string {
  let url: URL | undefined
  if (typeof value === 'string') {
    try { url = new URL(value) } catch {}
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' ||
    url.password !== '' || url.search !== '' || url.hash !== '' || (typeof value === 'string' && /[?#]/.test(value))) {
    throw new TypeError(`${fn}: sourceUrl must be an absolute http(s) URL prefix without credentials, query or fragment, e.g. 'https://cdn.example.com/media/'`)
  }
  const segments = decodeSegments(url.pathname)
  if (segments === undefined || segments.some((s) => unsafeSegment(s) !== undefined)) {
    throw new TypeError(`${fn}: sourceUrl must not contain empty, "." or ".." segments or encoded "/", NUL, CR, LF`)
  }
  const raw = url.pathname.split('/').slice(1)
  return url.origin + (segments.length === 0 ? '/' : `/${segments.map((segment, i) => sourceSegment(raw[i] as string, segment)).join('/')}/`)
}

/**
 * A segment of the sourceUrl as the generated config writes it: encodeURIComponent's spelling,
 * except that each `+` and `;` keeps the one the user wrote. The proxy sends the prefix of its
 * `proxy_pass` / `uri replace` as written, and `/a+b/` and `/a%2Bb/` may be two objects at the
 * origin (proxy-path.ts, `interchangeable`): respelling `/a+b/` fetched another object than the
 * file URL the app authorised (found by an outside audit).
 */
function sourceSegment (raw: string, segment: string): string {
  const spellings = plusAndSemicolon(raw)
  let index = 0
  return encodeURIComponent(segment).replace(/%2B|%3B/g, (escaped) => spellings[index++] === 'literal' ? decodeURIComponent(escaped) : escaped)
}

/** How a raw path segment writes each `+` and `;`, in order (`%2b` is `%2B`: hex case is no other URL). */
function plusAndSemicolon (raw: string): Array<'literal' | 'escaped'> {
  return (raw.match(/[+;]|%2B|%3B/gi) ?? []).map((s) => s.length === 1 ? 'literal' : 'escaped')
}

/**
 * An absolute URL path prefix of the proxy (an nginx internal location, a Caddy matcher prefix):
 * printable ASCII URI characters only, no query, fragment, `.`/`..` or empty segments, and no `%`.
 * Normalised to end with `/`.
 */
export function normalizeDestinationUrl (fn: string, value: unknown): string {
  // No percent-escapes: nginx decodes the X-Accel-Redirect value before matching its locations, a
  // CGI gateway decodes the Location, Caddy matches the raw value; a prefix with `%20` therefore
  // never meets the `location`/matcher written from it, on one server or another. Plain characters
  // mean the same thing to all of them.
  if (typeof value === 'string' && value.includes('%')) {
    throw new TypeError(`${fn}: destinationUrl must not contain "%" (the proxy decodes the value the app sends but matches its location on the literal prefix, so no file would be served): use a prefix of plain characters, e.g. '/dl-files/' instead of '/dl%20files/'`)
  }
  const ok = typeof value === 'string' && /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/.test(value)
  const segments = ok ? value.split('/').slice(1) : []
  if (segments.at(-1) === '') segments.pop()
  if (!ok || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new TypeError(`${fn}: destinationUrl must be an absolute URL path (no scheme, host, query, fragment, empty, "." or ".." segments), e.g. '/protected/'`)
  }
  return segments.length === 0 ? '/' : `/${segments.join('/')}/`
}

/** The fields of a rule that place it in the proxy's URL space (a plain config object fits too). */
interface DestinationFields {
  readonly backend: string
  readonly sourceDir?: string | undefined
  readonly sourceUrl?: string | undefined
  readonly destinationUrl?: string | undefined
  readonly remote?: boolean | undefined
  readonly header?: string | undefined
  /** nginx(): the X-Accel-Charset it sends, which its location's `charset` line must make known. */
  readonly charset?: string | false | undefined
  /** negotiated(): its destinations are the values of its mapping, used for X-Accel-Redirect. */
  readonly allow?: readonly string[] | undefined
  readonly mapping?: ReadonlyArray<{ readonly sourceDir: string, readonly destinationUrl: string }> | undefined
}

/**
 * Why `rules` cannot share one proxy, or undefined. Rules whose offload values reach the same
 * dispatcher — nginx's locations; for Caddy, the `handle_response` matchers on one header name;
 * the gateway's URL space for `Location` — must not have equal destinations with different
 * targets, nor nested ones: the proxy matches the value against one location/matcher (nginx the
 * longest prefix, Caddy the first block), so a value meant for one rule would be served from the
 * other rule's directory or origin — another file than the one the app authorised. Equal
 * destinations with the same target (a duplicate rule, or a `sourceDir` rule and one with the same
 * `sourceDir` plus a `sourceUrl`) map to the same place and are fine. Apache and lighttpd rules
 * name a directory, not a URL, and share the X-Sendfile header with a caddy() rule of that header:
 * see xSendfileConflict(). An nginx() and a caddy() rule for the same target under one destination
 * clash too: they spell the path differently.
 *
 * nginx() rules sharing a location must also agree on `charset` when both set one: the location
 * has one `source_charset` line, and nginx drops an X-Accel-Charset it does not know. Their other
 * settings (buffering, limitRate, expires) are headers each rule sends with its own responses, and
 * may differ.
 *
 * nginx() rules and caddy() rules on `X-Accel-Redirect` (its default header) share one space: they
 * send the same header, and whichever proxy is in front dispatches both rules' values — nginx by its
 * locations, Caddy by its matchers. Each entry of a `negotiated()` mapping is a destination in that
 * space too: it becomes the `X-Accel-Redirect` value whenever the proxy asks for that header. Its
 * `X-Sendfile` values are the file's own path, not a mapped URL, and a mapping read from the
 * request (`trustMappingHeader`) is not known here.
 */
export function destinationConflict (rules: readonly unknown[]): string | undefined {
  const placed: Array<{ name: string, space: string, destination: string, target: string, charset: string | undefined, spelling: string | undefined }> = []
  const place = (name: string, space: string, url: string, target: string, charset?: string, spelling?: string): string | undefined => {
    const destination = url.endsWith('/') ? url : url + '/'
    for (const other of placed) {
      if (other.space !== space) continue
      // The same target spelled two ways under one destination: the proxy in front reads the
      // other rule's values as other names (nginx decodes a caddy() rule's `a%20b` into `a b`).
      if (other.destination === destination && other.target === target && other.spelling !== undefined && spelling !== undefined && other.spelling !== spelling) {
        return `${other.name} (${other.target} → ${other.destination}, ${other.spelling}) and ${name} (${target} → ${destination}, ${spelling}) ` +
          'send the same header to the same destinationUrl, spelling file names differently: the proxy in front would read one rule\'s values as other names (another file, or a 404): ' +
          'give each its own destinationUrl'
      }
      // One nginx location has one `source_charset` line, the charset of the first rule that sets
      // one: another rule's X-Accel-Charset would then be unknown to nginx and silently dropped.
      // A rule without a charset sends none, and shares a location with any.
      if (other.destination === destination && other.target === target && other.charset !== undefined && charset !== undefined && other.charset !== charset) {
        return `${other.name} (charset ${other.charset}) and ${name} (charset ${charset}) share the nginx location ${destination}, ` +
          'which has a single `source_charset` line, so one rule\'s X-Accel-Charset would be ignored: give them the same charset, or each its own destinationUrl'
      }
      const clash = destinationClash(other.destination, other.target, destination, target)
      if (clash === undefined) continue
      return `${other.name} (${other.target} → ${other.destination}) and ${name} (${target} → ${destination}) ` +
        `${clash === 'same' ? 'have the same destinationUrl' : 'have nested destinationUrls'} on the same proxy, so it would serve one rule's files for the other's: ` +
        'give each source its own destinationUrl, neither inside another (or merge rules for the same files into one rule)'
    }
    placed.push({ name, space, destination, target, charset, spelling })
    return undefined
  }
  const sendfileConflict = xSendfileConflict(rules)
  if (sendfileConflict !== undefined) return sendfileConflict
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index] as DestinationFields | null
    if (rule === null || typeof rule !== 'object') continue
    if (rule.backend === 'negotiated') {
      if (!Array.isArray(rule.mapping) || !Array.isArray(rule.allow) || !rule.allow.includes('X-Accel-Redirect')) continue
      for (const entry of rule.mapping as NonNullable<DestinationFields['mapping']>) {
        const conflict = place(`rules[${index}] mapping`, 'header x-accel-redirect', entry.destinationUrl, `sourceDir ${entry.sourceDir}`, undefined, ENCODED)
        if (conflict !== undefined) return conflict
      }
      continue
    }
    if (typeof rule.destinationUrl !== 'string') continue
    // nginx() rules and caddy() rules on X-Accel-Redirect send the same header: whichever proxy is
    // in front dispatches the values of both.
    const space = rule.backend === 'nginx'
      ? 'header x-accel-redirect'
      : rule.backend === 'caddy'
        ? `header ${(rule.header ?? 'X-Accel-Redirect').toLowerCase()}`
        : rule.backend === 'internal-redirect' ? 'location' : undefined
    if (space === undefined) continue
    // What the proxy serves under the destination: the generators write the same block for it. And
    // how the value spells the path: nginx() (and negotiated()) percent-encode it, caddy() sends it
    // as it is. Whichever proxy is in front reads both rules' values its own way, so the same
    // directory under an nginx() and a caddy() rule is two targets: `a%20b` named one file to one
    // rule and another (`a b`) to the proxy (an outside audit served such decoys).
    const spelling = rule.backend === 'caddy' ? RAW : rule.backend === 'nginx' ? ENCODED : undefined
    const target = rule.remote === true ? 'any origin' : rule.sourceDir !== undefined ? `sourceDir ${rule.sourceDir}` : `sourceUrl ${String(rule.sourceUrl)}`
    // The charset its location must know (server-config/nginx.ts), when the rule sends one.
    const charset = rule.backend === 'nginx' && typeof rule.charset === 'string' ? JSON.stringify(rule.charset.toLowerCase()) : undefined
    const conflict = place(`rules[${index}]`, space, rule.destinationUrl, target, charset, spelling)
    if (conflict !== undefined) return conflict
  }
  return undefined
}

/**
 * The X-Sendfile half of destinationConflict(). apache() and lighttpd() send the file's path below
 * their destinationDir, apache() as it is, lighttpd() percent-encoded (lighttpd decodes it); a
 * caddy() rule whose own header is X-Sendfile sends its destinationUrl and the path as it is.
 * Whichever proxy is in front reads all of them its own way (Apache and lighttpd as paths, Caddy
 * by its matchers), so rules that spell names differently must not share a directory: a name one rule refuses (a
 * trailing space) would fall to the other, whose `x%20` is another file to Apache, and Caddy would
 * serve an apache() rule's values from its own directory. Rules that spell alike may share or nest
 * only when they map alike: two sources onto one directory, or a directory inside another that is
 * not the same place below the other's source, serve one source's files for the other's. A rule is
 * known by its sourceDir, or by its sourceUrl when it has none (two such rules are compared by
 * their URLs); a directory and a URL are not compared: the origin may publish that directory.
 */
function xSendfileConflict (rules: readonly unknown[]): string | undefined {
  const withSlash = (value: string): string => value.endsWith('/') ? value : value + '/'
  interface Placed { name: string, backend: string, dir: string, sourceDir: string | undefined, sourceUrl: string | undefined, spelling: string }
  const placed: Placed[] = []
  const shown = (p: Placed): string => `${p.name} (${p.backend}(), ${p.sourceDir !== undefined ? `sourceDir ${p.sourceDir}` : `sourceUrl ${p.sourceUrl ?? '(none)'}`} → ${p.dir})`
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index] as (DestinationFields & { destinationDir?: unknown }) | null
    if (rule === null || typeof rule !== 'object') continue
    let destination: string
    if ((rule.backend === 'apache' || rule.backend === 'lighttpd') && typeof rule.destinationDir === 'string') destination = rule.destinationDir
    else if (rule.backend === 'caddy' && typeof rule.destinationUrl === 'string' && typeof rule.header === 'string' && rule.header.toLowerCase() === 'x-sendfile') destination = rule.destinationUrl
    else continue
    const current: Placed = {
      name: `rules[${index}]`,
      backend: rule.backend,
      dir: withSlash(destination),
      sourceDir: typeof rule.sourceDir === 'string' ? withSlash(rule.sourceDir) : undefined,
      sourceUrl: typeof rule.sourceUrl === 'string' ? withSlash(rule.sourceUrl) : undefined,
      spelling: rule.backend === 'lighttpd' ? ENCODED : RAW
    }
    for (const other of placed) {
      const [outer, inner] = current.dir.startsWith(other.dir) ? [other, current] : other.dir.startsWith(current.dir) ? [current, other] : [undefined, undefined]
      if (outer === undefined || inner === undefined) continue
      if (other.spelling !== current.spelling) {
        return `${shown(other)} and ${shown(current)} both send X-Sendfile for one directory, spelling file names differently (${other.spelling}, ${current.spelling}): the proxy in front would read one rule's values as other names (another file, or a 404): ` +
          'keep the rules of the proxy you run, or give them separate directories'
      }
      // Caddy rules among themselves: destinationConflict()'s matcher space.
      if (other.backend === 'caddy' && current.backend === 'caddy') continue
      // The same place below each source: the inner directory is the outer one's source plus the
      // same path (a duplicate, or `/srv/a → /mnt/a` and `/srv/a/sub → /mnt/a/sub`). A rule is known
      // by its sourceDir, or by its sourceUrl when it has none; a directory and an origin's URL
      // cannot be compared (the origin may publish that very directory).
      const below = inner.dir.slice(outer.dir.length)
      const alike = outer.sourceDir !== undefined && inner.sourceDir !== undefined
        ? inner.sourceDir === outer.sourceDir + below
        : outer.sourceDir !== undefined || inner.sourceDir !== undefined || sameUrlBelow(outer.sourceUrl, inner.sourceUrl, below)
      if (alike) continue
      return `${shown(other)} and ${shown(current)} send X-Sendfile for ${current.dir === other.dir ? 'the same directory' : 'nested directories'} with sources that are not the same place, so the proxy would serve one rule's files for the other's: ` +
        'give each source its own destinationDir, neither inside another unless it is the same directory below it (or merge rules for the same files into one rule)'
    }
    placed.push(current)
  }
  return undefined
}

/** Whether `inner` is `outer` (same origin) with the path segments `below` (`a/b/`) added, compared decoded. */
function sameUrlBelow (outer: string | undefined, inner: string | undefined, below: string): boolean {
  if (outer === undefined || inner === undefined || !URL.canParse(outer) || !URL.canParse(inner)) return outer === inner
  const [a, b] = [new URL(outer), new URL(inner)]
  if (a.origin !== b.origin) return false
  const [outerPath, innerPath] = [decodeSegments(a.pathname), decodeSegments(b.pathname)]
  if (outerPath === undefined || innerPath === undefined) return outer === inner
  const expected = [...outerPath, ...below.split('/').filter((segment) => segment !== '')]
  return expected.length === innerPath.length && expected.every((segment, i) => segment === innerPath[i])
}

const ENCODED = 'the path percent-encoded'
const RAW = 'the path as it is'

/**
 * How two destinations (normalised, ending with `/`) clash on one proxy: the same prefix for
 * different targets, or one prefix inside the other (nginx takes the longest, Caddy the first
 * matcher). The same prefix for the same target is no clash.
 */
export function destinationClash (a: string, aTarget: string, b: string, bTarget: string): 'same' | 'nested' | undefined {
  if (a === b) return aTarget === bTarget ? undefined : 'same'
  return a.startsWith(b) || b.startsWith(a) ? 'nested' : undefined
}

/** `/a/b%20c/` → `['a', 'b c']`; undefined when a segment does not decode (bad `%`, invalid UTF-8). */
export function decodeSegments (pathname: string): string[] | undefined {
  const parts = pathname.split('/').slice(1)
  if (parts.at(-1) === '') parts.pop()
  try {
    return parts.map((part) => decodeURIComponent(part))
  } catch {
    return undefined
  }
}

/**
 * Where `file` lies below the rule's `sourceDir` (against `file.path`) or `sourceUrl` (against
 * `file.url`), compared on whole decoded segments: `/media/nginx` never covers `/media/nginxfoo/x`.
 * Returns the reason as a string when it does not.
 */
export function matchSource (source: { sourceDir?: string | undefined, sourceUrl?: string | undefined }, file: DownloadFile): SourceMatch | string {
  const reasons: string[] = []
  if (source.sourceDir !== undefined) {
    if (typeof file.path === 'string' && file.path !== '') {
      const found = matchDir(source.sourceDir, file.path)
      if (typeof found !== 'string') return found
      reasons.push(found)
    } else {
      reasons.push('the file has no path')
    }
  }
  if (source.sourceUrl !== undefined) {
    if (typeof file.url === 'string' && file.url !== '') {
      const found = matchUrl(source.sourceUrl, file.url)
      if (typeof found !== 'string') return found
      reasons.push(found)
    } else {
      reasons.push('the file has no url')
    }
  }
  return reasons.join('; ')
}

function matchDir (sourceDir: string, filePath: string): SourceMatch | string {
  if (/[\0\r\n]/.test(filePath)) return 'NUL, CR or LF in the path'
  // A PathFile's path is already absolute and normalised: resolving it again would give it back.
  const resolved = path.sep === '/' && filePath.charCodeAt(0) === 0x2f && !NOT_NORMALISED.test(filePath) ? filePath : path.resolve(filePath)
  const prefix = sourceDir === '/' ? '/' : sourceDir + '/'
  if (!resolved.startsWith(prefix)) return `path is not below sourceDir ${sourceDir}`
  const rest = resolved.slice(prefix.length)
  // A resolved path has no empty, `.` or `..` segment below the prefix, and its segments no `/`:
  // of unsafeSegment()'s reasons, only the empty rest (the directory itself) and a lone surrogate remain.
  if (rest === '') return `an empty path segment below sourceDir ${sourceDir}`
  if (!rest.isWellFormed()) return `a lone surrogate in the path below sourceDir ${sourceDir}`
  return { via: 'path', segments: rest.split('/'), search: '' }
}

/** An empty, `.` or `..` segment, or a trailing slash: what path.resolve() would change in an absolute path. */
const NOT_NORMALISED = /\/\/|\/\.\.?(?:\/|$)|\/$/

function matchUrl (sourceUrl: string, fileUrl: string): SourceMatch | string {
  const parsed = parsedFileUrl(fileUrl)
  if (parsed === undefined) return 'the file url is not a valid URL'
  const { url, fileSegments } = parsed
  const { origin, sourceSegments, sourceSpellings } = parsedSource(sourceUrl)
  if (url.origin !== origin) return `url origin ${JSON.stringify(url.origin)} is not ${origin}`
  if (url.username !== '' || url.password !== '') return 'the file url carries credentials'
  if (fileSegments === undefined) return 'the file url path does not percent-decode to UTF-8'
  if (url.pathname.endsWith('/')) return 'the file url names a directory (trailing slash)'
  if (fileSegments.length <= sourceSegments.length || sourceSegments.some((s, i) => fileSegments[i] !== s)) {
    return `url path is not below sourceUrl ${sourceUrl}`
  }
  // A proxy fetching the file (nginx's proxy_pass, Caddy's uri replace) sends the source's own
  // segments as the sourceUrl writes them, not as the file URL does: a file URL that writes a "+"
  // or ";" of them the other way round names another object at some origins. It gets no raw
  // segments (none at all), so sameOnTheWire() refuses it as it refuses one below the source, and
  // the file is streamed. It still matches here: a rule serving it from a directory (apache(),
  // lighttpd()) or forwarding the URL whole (nginx remote) never sends that spelling.
  const rawPath = url.pathname.split('/').slice(1)
  const respelled = sourceSpellings.some((spellings, i) => !sameSpellings(spellings, plusAndSemicolon(rawPath[i] as string)))
  const segments = fileSegments.slice(sourceSegments.length)
  for (const segment of segments) {
    const why = unsafeSegment(segment)
    if (why !== undefined) return `${why} below sourceUrl ${sourceUrl}`
  }
  const rawSegments = respelled ? [] : rawPath.slice(sourceSegments.length)
  return { via: 'url', segments, search: url.search === '?' ? '' : url.search, rawSegments }
}

/**
 * The file URL parsed and its path decoded, for the last file URL asked about: every rule a
 * request tries looks at the same one (100 sourceUrl rules parsed it 100 times: about 1 µs each
 * over HTTP, audit P). Read only.
 */
interface ParsedFileUrl { readonly url: URL, readonly fileSegments: readonly string[] | undefined }
let lastFileUrl: string | undefined
let lastParsedFileUrl: ParsedFileUrl | undefined
function parsedFileUrl (fileUrl: string): ParsedFileUrl | undefined {
  if (fileUrl !== lastFileUrl) {
    let url: URL | undefined
    try { url = new URL(fileUrl) } catch { url = undefined }
    lastParsedFileUrl = url === undefined ? undefined : { url, fileSegments: decodeSegments(url.pathname) }
    lastFileUrl = fileUrl
  }
  return lastParsedFileUrl
}

// Rules are few and long-lived: parse each normalised sourceUrl once, not per request.
interface ParsedSource { origin: string, sourceSegments: string[], sourceSpellings: Array<Array<'literal' | 'escaped'>> }
const parsedSources = new Map<string, ParsedSource>()
function parsedSource (sourceUrl: string): ParsedSource {
  let parsed = parsedSources.get(sourceUrl)
  if (parsed === undefined) {
    const url = new URL(sourceUrl)
    const sourceSegments = decodeSegments(url.pathname) ?? []
    const sourceSpellings = url.pathname.split('/').slice(1, 1 + sourceSegments.length).map(plusAndSemicolon)
    parsed = { origin: url.origin, sourceSegments, sourceSpellings }
    if (parsedSources.size < 1000) parsedSources.set(sourceUrl, parsed)
  }
  return parsed
}

/** Whether two segments write their `+` and `;` alike (their decoded forms are already equal). */
function sameSpellings (a: ReadonlyArray<'literal' | 'escaped'>, b: ReadonlyArray<'literal' | 'escaped'>): boolean {
  return a.length === b.length && a.every((spelling, i) => spelling === b[i])
}

/** Logs why `rule` did not take `file`; names and reasons are JSON-escaped (log injection). */
export function logNoMatch (rule: string, file: DownloadFile, reason: string): void {
  if (debug.enabled) debug('offload: %s does not cover %s: %s', rule, file.path !== undefined ? JSON.stringify(file.path) : file.url !== undefined ? loggableUrl(file.url) : JSON.stringify(file.name), reason)
}

/**
 * The common body of `match()`: the file's segments below the source, encoded by `encode` (which
 * returns undefined for names its server cannot take). Logs why when there is no value.
 */
export function matchValue (label: string, source: SourceOptions, file: DownloadFile,
  encode: (found: SourceMatch) => string | undefined, cannot: string): string | undefined {
  const found = matchSource(source, file)
  if (typeof found === 'string') return void logNoMatch(label, file, found)
  const value = encode(found)
  if (value === undefined) logNoMatch(label, file, cannot)
  return value
}
