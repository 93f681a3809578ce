import { statusOfCode, UPSTREAM_STATUS_CODES } from '../errors.ts'

/**
 * What the config generator reads from an offload rule: the normalised, readonly fields every rule
 * exposes. Structural on purpose, so any rule object (or a plain object in a config module) fits.
 */
export interface ConfigRule {
  /** `'nginx' | 'apache' | 'lighttpd' | 'caddy' | 'internal-redirect'`; `'negotiated'` (its mapping checked, and printed as comments: the locations to write by hand); other values are ignored. */
  readonly backend: string
  readonly sourceDir?: string | undefined
  readonly sourceUrl?: string | undefined
  readonly destinationUrl?: string | undefined
  readonly destinationDir?: string | undefined
  /** Caddy: the response header the `handle_response` matcher looks at. */
  readonly header?: string | undefined
  /** nginx: `false` writes `proxy_buffering off` into a location that fetches from an origin. */
  readonly buffering?: boolean | undefined
  /** nginx: the X-Accel-Charset the rule sends (needs a `source_charset` line in the location). */
  readonly charset?: string | false | undefined
  /** nginx: the generic "any origin" form (`/_remote/<scheme>/<host>/<path>`). */
  readonly remote?: boolean | undefined
  /** nginx: the location refuses symlinks below its alias (`disable_symlinks on from=$document_root`). */
  readonly proxyRefusesSymlinks?: boolean | undefined
}

/** A complete, runnable configuration instead of a snippet. */
export interface FullConfig {
  /** `host:port` the proxy listens on, e.g. `127.0.0.1:8080`. */
  listen: string
  /** `host:port` of the Koa app. */
  upstream: string
  /** Directory for the pid file, logs and temp files (absolute). */
  prefix: string
}

export interface HostPort { host: string, port: number }

export function parseHostPort (value: string, what: string): HostPort {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value)
  const port = Number(match?.[2])
  if (match === null || port < 1 || port > 65535) {
    throw new TypeError(`renderServerConfig(): ${what} must be "host:port", got ${JSON.stringify(value)}`)
  }
  return { host: match[1] ?? '', port }
}

/** `/protected` or `/protected/` → `/protected/`: locations and prefixes always end with a slash. */
export function withSlash (path: string): string {
  return path.endsWith('/') ? path : path + '/'
}

export function withoutSlash (path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

/** Refuses what no config format can carry safely, instead of emitting a broken or injectable line. */
export function assertConfigSafe (value: string, what: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new TypeError(`renderServerConfig(): ${what} contains a control character: ${JSON.stringify(value)}`)
  }
}

/**
 * A double-quoted string with `\` and `"` escaped, as nginx and Apache read it. Not for lighttpd or
 * Caddy, whose only escape is `\"`: `\\` stays two backslashes there (their generators quote).
 */
export function quote (value: string): string {
  return '"' + value.replace(/[\\"]/g, (c) => '\\' + c) + '"'
}

/**
 * A POSIX shell word for the `# Run:` line of a full configuration, so that the line runs as
 * written when pasted into a shell: a plain path as is, anything else in single quotes.
 */
export function shellWord (value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : "'" + value.replaceAll("'", "'\\''") + "'"
}

/** A checked, double-quoted string in Apache's syntax (`\\` and `\"` escaped). */
export function safeQuote (value: string, what: string): string {
  assertConfigSafe(value, what)
  return quote(value)
}

/** Every rule's destinationDir, absolute and without trailing slash, once each (X-Sendfile allow-lists). */
export function destinationDirs (rules: readonly ConfigRule[]): string[] {
  const dirs: string[] = []
  for (const rule of rules) {
    const dir = rule.destinationDir
    if (dir === undefined || !dir.startsWith('/')) {
      throw new TypeError(`renderServerConfig(): ${describeRule(rule)} needs an absolute destinationDir`)
    }
    const normalised = withoutSlash(dir)
    if (!dirs.includes(normalised)) dirs.push(normalised)
  }
  return dirs
}

/** Describes a rule the way a user wrote it, for the comment above its block. */
export function describeRule (rule: ConfigRule): string {
  const fields: string[] = []
  for (const key of ['sourceDir', 'sourceUrl', 'remote', 'destinationUrl', 'destinationDir', 'header'] as const) {
    const value = rule[key]
    if (value !== undefined && value !== false) fields.push(`${key}: ${JSON.stringify(value)}`)
  }
  const name = rule.backend === 'internal-redirect' ? 'internalRedirect' : rule.backend
  return `${name}({ ${fields.join(', ')} })`
}

/** The origin and base path of a sourceUrl rule (`http://o:9000/bucket/` → origin + `/bucket/`). */
export function splitSourceUrl (sourceUrl: string): { origin: string, host: string, basePath: string } {
  let url: URL
  try {
    url = new URL(sourceUrl)
  } catch (error) {
    throw new TypeError(`renderServerConfig(): sourceUrl must be an absolute http(s) URL, got ${JSON.stringify(sourceUrl)}`, { cause: error })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`renderServerConfig(): sourceUrl must be an http(s) URL, got ${JSON.stringify(sourceUrl)}`)
  }
  return { origin: url.origin, host: url.host, basePath: withSlash(url.pathname) }
}

/** Whether a rule is the generic "any origin" form: URLs travel whole inside the redirect value. */
export function isRemoteRule (rule: ConfigRule): boolean {
  return rule.remote === true
}

/**
 * A regular expression (PCRE for Apache, RE2 for Caddy) that takes one entity-tag or one HTTP-date
 * in any of its three forms (RFC 9110 §8.8.3, §5.6.7) and nothing else: the If-Range values that can
 * match. `dquote` is how the server's config string writes a double quote inside the pattern.
 */
export function validIfRangePattern (dquote: string): string {
  const day = '(Mon|Tue|Wed|Thu|Fri|Sat|Sun)'
  const longDay = '(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)'
  const month = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
  const time = '[0-9]{2}:[0-9]{2}:[0-9]{2}'
  return [
    `^(W/)?${dquote}[^${dquote}]*${dquote}$`,
    `^${day}, [0-9]{2} ${month} [0-9]{4} ${time} GMT$`,
    `^${longDay}, [0-9]{2}-${month}-[0-9]{2} ${time} GMT$`,
    `^${day} ${month} [ 0-9][0-9] ${time} [0-9]{4}$`
  ].join('|')
}

/**
 * An origin's error status → the status the proxy answers with, the table the app maps a failing
 * origin or storage by when it streams (UPSTREAM_STATUS_CODES): missing → 404, throttled or down →
 * 503, timed out → 504. Any other status from 300 to 599 becomes 502, but those in
 * `ORIGIN_STATUSES_PASSED_ON`: the origin's answers to the client's own conditional and range
 * headers.
 */
export const ORIGIN_ERROR_STATUSES: ReadonlyArray<{ readonly name: string, readonly status: number, readonly codes: readonly number[] }> =
  UPSTREAM_STATUS_CODES.map(({ name, code, statuses }) => ({ name, status: statusOfCode(code), codes: statuses }))
export const ORIGIN_STATUSES_PASSED_ON: readonly number[] = [304, 412, 416]

/**
 * What an origin's response may not set on the app's site, besides the headers the app's own win
 * over (Content-Type, Content-Disposition, Cache-Control, Expires) and Set-Cookie: the app, streaming,
 * passes on none of an origin's headers but its size, type and validators, and the proxy fetching
 * the file must not pass these either. They act on the app's whole origin in the browser (site data
 * cleared, HSTS, a CORS grant with credentials, a refresh or preload, policies), or are hop-by-hop
 * (RFC 9110 §7.6.1). A header that the origin's `Connection` names is hop-by-hop too, and no
 * configuration can know its name: the guides say so.
 */
export const ORIGIN_SITE_HEADERS: readonly string[] = [
  'Clear-Site-Data', 'Strict-Transport-Security', 'Public-Key-Pins', 'Access-Control-Allow-Origin',
  'Access-Control-Allow-Credentials', 'Access-Control-Allow-Methods', 'Access-Control-Allow-Headers',
  'Access-Control-Expose-Headers', 'Access-Control-Max-Age', 'Access-Control-Allow-Private-Network',
  'Timing-Allow-Origin', 'Cross-Origin-Resource-Policy', 'Cross-Origin-Opener-Policy', 'Cross-Origin-Embedder-Policy', 'Origin-Agent-Cluster', 'Content-Security-Policy',
  'Content-Security-Policy-Report-Only', 'X-Frame-Options', 'Permissions-Policy', 'Feature-Policy', 'Referrer-Policy',
  'Refresh', 'Location', 'Content-Location', 'Link', 'Alt-Svc', 'Service-Worker-Allowed', 'Report-To',
  'Reporting-Endpoints', 'NEL', 'Accept-CH', 'Critical-CH', 'Server-Timing', 'SourceMap', 'X-SourceMap',
  'X-DNS-Prefetch-Control', 'X-XSS-Protection', 'WWW-Authenticate', 'Proxy-Authenticate', 'Upgrade', 'Trailer',
  'Keep-Alive', 'Proxy-Connection',
  // a CDN reads these before Cache-Control (RFC 9213): `public` there would undo the download's `private`
  'CDN-Cache-Control', 'Cloudflare-CDN-Cache-Control', 'Surrogate-Control',
  'Set-Cookie2', 'Cross-Origin-Opener-Policy-Report-Only', 'Cross-Origin-Embedder-Policy-Report-Only',
  'Permissions-Policy-Report-Only', 'Document-Policy', 'Origin-Trial', 'Supports-Loading-Mode', 'Speculation-Rules',
  'No-Vary-Search', 'Activate-Storage-Access', 'Observe-Browsing-Topics', 'Set-Login', 'X-Permitted-Cross-Domain-Policies'
]

/**
 * What S3 and GCS answer about an object besides its bytes, size, type and validators — never sent
 * when the app streams (only size, type, ETag and Last-Modified are kept), so never passed on when
 * the proxy fetches the object either. nginx hides headers by name only: these are the fixed ones
 * (user metadata, `x-amz-meta-*` and `x-goog-meta-*`, needs headers-more); Caddy drops the
 * `x-amz-`, `x-goog-` and `x-guploader-` families whole.
 */
export const STORAGE_RESPONSE_HEADERS: readonly string[] = [
  'x-amz-request-id', 'x-amz-id-2', 'x-amz-version-id', 'x-amz-delete-marker', 'x-amz-expiration',
  'x-amz-restore', 'x-amz-storage-class', 'x-amz-replication-status', 'x-amz-mp-parts-count',
  'x-amz-tagging-count', 'x-amz-missing-meta', 'x-amz-website-redirect-location', 'x-amz-request-charged',
  'x-amz-bucket-region', 'x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id',
  'x-amz-server-side-encryption-bucket-key-enabled', 'x-amz-server-side-encryption-customer-algorithm',
  'x-amz-server-side-encryption-customer-key-md5', 'x-amz-object-lock-mode',
  'x-amz-object-lock-retain-until-date', 'x-amz-object-lock-legal-hold', 'x-amz-checksum-crc32',
  'x-amz-checksum-crc32c', 'x-amz-checksum-crc64nvme', 'x-amz-checksum-sha1', 'x-amz-checksum-sha256',
  'x-amz-checksum-type', 'x-goog-generation', 'x-goog-metageneration', 'x-goog-hash',
  'x-goog-stored-content-encoding', 'x-goog-stored-content-length', 'x-goog-storage-class',
  'x-goog-component-count', 'x-goog-expiration', 'x-guploader-uploadid'
]
