import { checkOptions, logNoMatch, matchSource, normalizeDestinationUrl, normalizeSource } from '../offload-rule.ts'
import type { OffloadRequest, OffloadRule, OffloadTarget, SourceOptions } from '../offload-rule.ts'
import { encodedPath, nginxLiteral, remotePath, sameOnTheWire } from '../proxy-path.ts'
import type { DownloadFile } from '../types.ts'

export interface NginxOptions extends SourceOptions {
  /**
   * The `internal` location that serves the files, e.g. `'/protected/'` with
   * `location ^~ /protected/ { internal; alias /srv/files/; }`. The file's path below `sourceDir`
   * (or its URL path below `sourceUrl`) is appended, each segment percent-encoded.
   */
  destinationUrl: string
  /**
   * Offload files that live on another HTTP server, through nginx's generic remote location
   * (`location ~ ^/_remote/(?<rscheme>https?)/(?<rhost>[^/]+)/(?<rpath>.*)$ { internal; proxy_pass … }`,
   * see docs/deployment/nginx.md). The value is `<destinationUrl><scheme>/<host[:port]><path with %
   * doubled><query>`: the whole file URL, query included, because for presigned S3/GCS URLs the
   * query *is* the credential. `sourceUrl` is then optional and only restricts which origins match;
   * `sourceDir` is not allowed. URLs with `//`, `.` or `..` segments are streamed instead.
   *
   * For one fixed origin, prefer `nginx({ sourceUrl: 'https://origin.example/media/', destinationUrl:
   * '/_origin/' })` with `location ^~ /_origin/ { internal; proxy_pass https://origin.example/media/; }`.
   * @default false
   * @example nginx({ remote: true, destinationUrl: '/_remote/' })
   */
  remote?: boolean | undefined
  /**
   * For `sourceUrl` matches: append the file URL's query string to the value. Off by default, because
   * a query (a signature, a cache-buster) rarely belongs in an internal location that maps to disk
   * (django-downloadview leaked `?X-Signature=…` that way); turn it on for a fixed remote origin
   * whose object address includes the query. Always on with `remote: true`.
   * @default false
   */
  forwardQuery?: boolean | undefined
  /**
   * `X-Accel-Buffering: yes|no`: whether nginx buffers the response from the internal location
   * (matters for `proxy_pass` targets). Omitted by default: nginx's configuration decides.
   */
  buffering?: boolean | undefined
  /**
   * `X-Accel-Limit-Rate`: bytes per second for this download, an integer; `0` = unlimited.
   * Omitted by default (the configured `limit_rate` applies).
   * @example 512 * 1024
   */
  limitRate?: number | undefined
  /**
   * `X-Accel-Expires`, for nginx's own proxy cache (not the client's; use `cacheControl` for that):
   * seconds as an integer, a Date (sent as `@<unix time>`) or `false` (`0`, do not cache).
   * Omitted by default.
   */
  expires?: number | Date | false | undefined
  /**
   * `X-Accel-Charset`: a charset name sent on every offload, which nginx sets as the charset of
   * the response's Content-Type (and recodes to, where a `charset_map` allows it); `koa-downloads
   * config` makes it known to the location (`source_charset`). `false`, like the default, sends
   * none: the Content-Type then goes out as the app set it, its charset included.
   * @default none
   */
  charset?: string | false | undefined
  /**
   * nginx itself refuses every symlink below `sourceDir` in this rule's location
   * (`disable_symlinks on from=$document_root;`, which `koa-downloads config` then writes). It
   * checks the path it actually opens, with no window between check and open, so offload() hands a
   * `PathFile` under a root over **without its realpath**: no I/O in the app (but for a GET with a
   * Range and an If-Range date, which stats the file), as with `followSymlinks`, but with symlinks
   * refused instead of followed. Any symlink below `sourceDir` is then refused by nginx: 403, or 404
   * through a symlinked directory (also a symlink that stays inside the root, which the app's own
   * check would serve); a missing file is nginx's 404. Only
   * with `sourceDir`. A hand-written location needs that line too: without it, symlinks are
   * followed wherever they point.
   * @default false
   */
  proxyRefusesSymlinks?: boolean | undefined
}

export interface NginxRule extends OffloadRule {
  readonly backend: 'nginx'
  readonly destinationUrl: string
  readonly remote: boolean
  readonly forwardQuery: boolean
  readonly buffering?: boolean | undefined
  readonly limitRate?: number | undefined
  readonly expires?: number | Date | false | undefined
  readonly charset?: string | false | undefined
  readonly proxyRefusesSymlinks: boolean
}

const keys = ['sourceDir', 'sourceUrl', 'destinationUrl', 'remote', 'forwardQuery', 'buffering', 'limitRate', 'expires', 'charset', 'proxyRefusesSymlinks']
const fn = 'nginx()'

/**
 * Offload to nginx with `X-Accel-Redirect` (docs/deployment/nginx.md).
 * @example
 * app.use(downloads({ rules: [nginx({ sourceDir: '/srv/files', destinationUrl: '/protected/' })] }))
 * // nginx: location ^~ /protected/ { internal; alias /srv/files/; }
 */
export function nginx (options: NginxOptions): NginxRule {
  const o = checkOptions(fn, options, keys)
  const remote = optionalBoolean('remote', o.remote) ?? false
  if (remote && o.sourceDir !== undefined) throw new TypeError(`${fn}: sourceDir cannot be combined with remote: true (remote offload serves URLs)`)
  const source = normalizeSource(fn, o, !remote)
  if (o.destinationUrl === undefined) throw new TypeError(`${fn}: destinationUrl is required (the internal location, e.g. '/protected/')`)
  const destinationUrl = normalizeDestinationUrl(fn, o.destinationUrl)
  // `location ^~ / { internal; … }` would take the app's own `location /` (nginx -t: duplicate
  // location "/"), and every client request with it.
  if (destinationUrl === '/') throw new TypeError(`${fn}: destinationUrl cannot be "/": the internal location would take every URL of the server, the app's too; use a prefix of its own, e.g. '/protected/'`)
  const forwardQuery = remote || (optionalBoolean('forwardQuery', o.forwardQuery) ?? false)
  const proxyRefusesSymlinks = optionalBoolean('proxyRefusesSymlinks', o.proxyRefusesSymlinks) ?? false
  if (proxyRefusesSymlinks && source.sourceDir === undefined) throw new TypeError(`${fn}: proxyRefusesSymlinks needs a sourceDir (it is about local files)`)
  const buffering = optionalBoolean('buffering', o.buffering)
  const limitRate = o.limitRate
  if (limitRate !== undefined && !(Number.isSafeInteger(limitRate) && limitRate >= 0)) {
    throw new TypeError(`${fn}: limitRate must be an integer ≥ 0 (bytes per second; 0 = unlimited)`)
  }
  const expires = o.expires
  if (expires !== undefined && expires !== false && !(Number.isSafeInteger(expires) && (expires as number) >= 0) &&
    !(expires instanceof Date && Number.isFinite(expires.getTime()) && expires.getTime() >= 0)) {
    throw new TypeError(`${fn}: expires must be an integer ≥ 0 (seconds), a valid Date or false`)
  }
  const charset = o.charset
  if (charset !== undefined && charset !== false && !(typeof charset === 'string' && /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(charset))) {
    throw new TypeError(`${fn}: charset must be a charset name (e.g. 'utf-8') or false`)
  }

  const fixed: Record<string, string> = {}
  if (buffering !== undefined) fixed['X-Accel-Buffering'] = buffering ? 'yes' : 'no'
  if (limitRate !== undefined) fixed['X-Accel-Limit-Rate'] = String(limitRate)
  if (expires !== undefined) fixed['X-Accel-Expires'] = accelExpires(expires)
  if (typeof charset === 'string') fixed['X-Accel-Charset'] = charset
  const controls = Object.keys(fixed).length > 0 ? Object.freeze(fixed) : undefined
  const label = `nginx(${remote ? 'remote' : source.sourceDir ?? source.sourceUrl} → ${destinationUrl})`

  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: 'nginx',
    ...source,
    destinationUrl,
    remote,
    forwardQuery,
    buffering,
    limitRate,
    expires,
    charset,
    proxyRefusesSymlinks,
    match (file: DownloadFile, _request: OffloadRequest): OffloadTarget | undefined {
      let value: string | undefined
      let local = false
      if (remote) {
        if (typeof file.url !== 'string') return void logNoMatch(label, file, 'the file has no url')
        if (source.sourceUrl !== undefined) {
          const found = matchSource(source, file)
          if (typeof found === 'string') return void logNoMatch(label, file, found)
        }
        let url: URL
        try { url = new URL(file.url) } catch { return void logNoMatch(label, file, 'the file url is not a valid URL') }
        value = remotePath(destinationUrl, url)
        if (value === undefined) return void logNoMatch(label, file, 'the url has //, "." or ".." segments, credentials or a non-http(s) scheme')
      } else {
        const found = matchSource(source, file)
        if (typeof found === 'string') return void logNoMatch(label, file, found)
        if (found.rawSegments !== undefined && !sameOnTheWire(found.rawSegments, found.segments, nginxLiteral)) {
          return void logNoMatch(label, file, 'nginx would ask the origin for another URL: it re-encodes the path and writes "+" and ";" unescaped')
        }
        value = encodedPath(destinationUrl, found.segments)
        if (value === undefined) return void logNoMatch(label, file, 'the name cannot be percent-encoded')
        if (forwardQuery) value += found.search
        local = found.via === 'path'
      }
      return { header: 'X-Accel-Redirect', value, validators: false, sameValidators: local, controls }
    }
  })
}

/** nginx reads `N` seconds, `@N` absolute Unix time, `0` = no caching; never `off` (ignored). */
export function accelExpires (expires: number | Date | false): string {
  if (expires === false) return '0'
  if (expires instanceof Date) return `@${Math.floor(expires.getTime() / 1000)}`
  return String(expires)
}

function optionalBoolean (option: string, value: unknown): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw new TypeError(`${fn}: ${option} must be a boolean`)
  return value
}
