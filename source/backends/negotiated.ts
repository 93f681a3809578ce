import path from 'node:path'
import { checkOptions, destinationClash, logNoMatch, matchSource, normalizeDestinationUrl, normalizeDir } from '../offload-rule.ts'
import type { OffloadRequest, OffloadRule, OffloadTarget } from '../offload-rule.ts'
import { caddyPath, encodedFilePath, encodedPath, rawFilePathWithinPathMax } from '../proxy-path.ts'
import type { DownloadFile } from '../types.ts'

/** The offload headers a proxy may ask for. `X-LIGHTTPD-send-file` is left out on purpose: it only
 * works with mod_fastcgi, never in front of an HTTP app (docs/deployment/lighttpd.md). */
export type NegotiableHeader = 'X-Accel-Redirect' | 'X-Sendfile'

export interface NegotiatedOptions {
  /**
   * The values of the request's `X-Sendfile-Type` that are honoured (compared case-insensitively).
   * The response header is always the canonical name from this list, never the request's text.
   * @example ['X-Accel-Redirect', 'X-Sendfile']
   */
  allow: NegotiableHeader[]
  /**
   * Only files below this directory are offloaded (whole segments).
   * @default every file with a `path`
   */
  sourceDir?: string | undefined
  /**
   * For `X-Accel-Redirect`: local directory → internal location, literal prefixes on whole segments
   * (like nginx's `X-Accel-Mapping: /srv/files/=/protected/`, but from your configuration). Two
   * directories on one location, or one location inside another, are a TypeError, as are locations
   * that coincide with or nest in another rule's `destinationUrl` (`offload()`, `downloads()`).
   * @example { '/srv/files': '/protected/' }
   */
  mapping?: Readonly<Record<string, string>> | undefined
  /**
   * Read the mapping from the request's `X-Accel-Mapping` header (only when `mapping` is not given).
   * Safe only when the proxy always overwrites that header and the app cannot be reached without the
   * proxy: otherwise a client chooses where the proxy reads files (Rack CVE-2025-61780). A request
   * with several `X-Accel-Mapping` lines (a client's, then one an appending proxy added), over
   * HTTP/1.1 or HTTP/2, is not offloaded. The value's bytes are read as UTF-8 (nginx sends a
   * `proxy_set_header` value as written); a value that is not UTF-8 is not used.
   * @default false
   */
  trustMappingHeader?: boolean | undefined
  /**
   * The form of an `X-Sendfile` value: `'raw'` for Apache mod_xsendfile 0.12, `'encoded'`
   * (percent-encoded segments) for lighttpd. The request does not say which server sent it, and a
   * name with `%` reads as another file to the other one (`a%20b.txt` is `a b.txt` to lighttpd).
   * By default (`'either'`) the raw path is sent, which both read alike (spaces and UTF-8
   * included), and a file whose path has a `%` is streamed.
   * @default 'either'
   */
  sendfile?: 'raw' | 'encoded' | 'either' | undefined
  /**
   * The form of an `X-Accel-Redirect` value: `'encoded'` (percent-encoded segments) for nginx,
   * `'raw'` for Caddy's `handle_response` (which decodes nothing: nginx's `a%20b.txt` is another
   * file to it). By default (`'either'`) the raw path is sent, which both read alike, and a file
   * whose path has a `%` or a `?` is streamed.
   * @default 'either'
   */
  accel?: 'encoded' | 'raw' | 'either' | undefined
}

export interface NegotiatedRule extends OffloadRule {
  readonly backend: 'negotiated'
  readonly allow: readonly NegotiableHeader[]
  readonly mapping: ReadonlyArray<{ readonly sourceDir: string, readonly destinationUrl: string }>
  readonly trustMappingHeader: boolean
  readonly sendfile: 'raw' | 'encoded' | 'either'
  readonly accel: 'encoded' | 'raw' | 'either'
}

const fn = 'negotiated()'
const canonical = new Map<string, NegotiableHeader>([['x-accel-redirect', 'X-Accel-Redirect'], ['x-sendfile', 'X-Sendfile']])

/**
 * Opt-in offload chosen per request by the proxy, as Rack::Sendfile and Symfony offer: the proxy
 * sends `X-Sendfile-Type: X-Accel-Redirect` (and, if trusted, `X-Accel-Mapping`). Nothing else in
 * koa-downloads reads those request headers. Values outside `allow` are ignored and logged
 * JSON-escaped; the mapping is a literal prefix replacement, never a regular expression.
 * @example
 * negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/files': '/protected/' } })
 */
export function negotiated (options: NegotiatedOptions): NegotiatedRule {
  const o = checkOptions(fn, options, ['allow', 'sourceDir', 'mapping', 'trustMappingHeader', 'sendfile', 'accel'])
  if (!Array.isArray(o.allow) || o.allow.length === 0) throw new TypeError(`${fn}: allow must be a non-empty array of 'X-Accel-Redirect' and/or 'X-Sendfile'`)
  const allow = o.allow.map((value: unknown) => {
    const name = typeof value === 'string' ? canonical.get(value.toLowerCase()) : undefined
    if (name === undefined) throw new TypeError(`${fn}: allow may only contain 'X-Accel-Redirect' and 'X-Sendfile', not ${JSON.stringify(value)}`)
    return name
  })
  const sourceDir = o.sourceDir === undefined ? undefined : normalizeDir(fn, 'sourceDir', o.sourceDir)
  if (o.mapping !== undefined && (o.mapping === null || typeof o.mapping !== 'object' || Array.isArray(o.mapping))) {
    throw new TypeError(`${fn}: mapping must be an object { '/local/dir': '/internal/location/' }`)
  }
  const mapping = Object.entries(o.mapping ?? {}).map(([dir, url]) => {
    const sourceDir = normalizeDir(fn, 'mapping key', dir)
    const destinationUrl = normalizeDestinationUrl(fn, url)
    // As for nginx(): behind nginx the redirect would go back into `location /`, to the app, which
    // offloads it again (500, "rewrite or internal redirection cycle").
    if (destinationUrl === '/') throw new TypeError(`${fn}: the location of mapping ${JSON.stringify(sourceDir)} cannot be "/": it would take every URL of the server, the app's too; use a prefix of its own, e.g. '/protected/'`)
    return { sourceDir, destinationUrl }
  })
  // Each destination is a proxy location (or Caddy matcher) of its own: two directories on one, or
  // one location inside another, would make the proxy serve one directory's files for the other's
  // (the longest prefix wins in nginx). destinationConflict() checks the same across rules.
  for (const [i, entry] of mapping.entries()) {
    for (const other of mapping.slice(0, i)) {
      const clash = destinationClash(other.destinationUrl, other.sourceDir, entry.destinationUrl, entry.sourceDir)
      if (clash === undefined) continue
      throw new TypeError(`${fn}: mapping ${JSON.stringify(other.sourceDir)} → ${other.destinationUrl} and ${JSON.stringify(entry.sourceDir)} → ${entry.destinationUrl} ` +
        `${clash === 'same' ? 'have the same destination' : 'have nested destinations'}, so the proxy would serve one directory's files for the other's: give each directory its own location, neither inside another`)
    }
  }
  if (o.trustMappingHeader !== undefined && typeof o.trustMappingHeader !== 'boolean') throw new TypeError(`${fn}: trustMappingHeader must be a boolean`)
  const trustMappingHeader = o.trustMappingHeader ?? false
  if (trustMappingHeader && (mapping.length > 0 || !allow.includes('X-Accel-Redirect'))) {
    throw new TypeError(`${fn}: trustMappingHeader needs 'X-Accel-Redirect' in allow and no mapping of your own`)
  }
  const sendfile = o.sendfile ?? 'either'
  if (sendfile !== 'raw' && sendfile !== 'encoded' && sendfile !== 'either') throw new TypeError(`${fn}: sendfile must be 'raw' (Apache), 'encoded' (lighttpd) or 'either'`)
  const accel = o.accel ?? 'either'
  if (accel !== 'raw' && accel !== 'encoded' && accel !== 'either') throw new TypeError(`${fn}: accel must be 'encoded' (nginx), 'raw' (Caddy) or 'either'`)
  const label = `negotiated(${allow.join('|')})`

  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: 'negotiated',
    ...(sourceDir === undefined ? {} : { sourceDir }),
    allow,
    mapping,
    trustMappingHeader,
    sendfile,
    accel,
    match (file: DownloadFile, request: OffloadRequest): OffloadTarget | undefined {
      const type = request.headers['x-sendfile-type']
      if (type === undefined) return void logNoMatch(label, file, 'the request has no X-Sendfile-Type')
      const header = typeof type === 'string' ? canonical.get(type.trim().toLowerCase()) : undefined
      if (header === undefined || !allow.includes(header)) {
        return void logNoMatch(label, file, `X-Sendfile-Type ${JSON.stringify(type)} is not allowed`)
      }
      if (typeof file.path !== 'string' || file.path === '') return void logNoMatch(label, file, 'the file has no path')
      const below = matchSource({ sourceDir: sourceDir ?? '/' }, file)
      if (typeof below === 'string') return void logNoMatch(label, file, below)
      if (header === 'X-Sendfile') {
        const whole = sourceDir === undefined || sourceDir === '/' ? below.segments : [...sourceDir.split('/').slice(1), ...below.segments]
        if (sendfile === 'either' && whole.some((segment) => segment.includes('%'))) {
          return void logNoMatch(label, file, 'a path with "%" reads as another file to Apache or to lighttpd (which decodes it): streamed (set sendfile: \'raw\' or \'encoded\' for your server)')
        }
        // mod_xsendfile's XSendFilePath is at most the file's own directory (written with a
        // trailing slash, perhaps): the PATH_MAX bound apache() keeps, taken at its longest.
        const value = sendfile === 'encoded' ? encodedFilePath('/', whole) : rawFilePathWithinPathMax('/' + whole.slice(0, -1).join('/') + '/', '/', whole)
        if (value === undefined) return void logNoMatch(label, file, 'the name cannot be carried by X-Sendfile (control characters, a trailing space, or too long for mod_xsendfile)')
        return { header, value, validators: true }
      }
      const rules = mapping.length > 0 ? mapping : trustMappingHeader ? trustedMapping(request, file) : []
      if (rules === undefined) return undefined
      if (rules.length === 0) return void logNoMatch(label, file, 'X-Accel-Redirect needs a mapping (none configured)')
      for (const rule of rules) {
        const found = matchSource({ sourceDir: rule.sourceDir }, file)
        if (typeof found === 'string') continue
        if (accel === 'either' && found.segments.some((segment) => segment.includes('%') || segment.includes('?'))) {
          return void logNoMatch(label, file, 'a path with "%" or "?" reads as another file to nginx (which decodes it) or to Caddy (which does not): streamed (set accel: \'encoded\' or \'raw\' for your server)')
        }
        const value = accel === 'encoded' ? encodedPath(rule.destinationUrl, found.segments) : caddyPath(rule.destinationUrl, found.segments)
        // nginx serves the local file (X-Accel-Redirect) with the app's own validators
        if (value !== undefined) return { header, value, validators: false, sameValidators: true }
      }
      // The mapping as understood, so that one that never matches (a typo, the direction reversed,
      // rack#1556) shows why.
      const shown = rules.map((rule) => `${JSON.stringify(rule.sourceDir)} → ${rule.destinationUrl}`).join(', ')
      return void logNoMatch(label, file, `no mapping covers ${JSON.stringify(path.resolve(file.path))} (${mapping.length > 0 ? 'mapping' : 'X-Accel-Mapping'}: ${shown})`)
    }
  })
}

/**
 * The request's `X-Accel-Mapping` lines as received. Node joins repeated header lines with ", " in
 * `headers`, so a line the client sent followed by the one an appending proxy added would read as
 * one mapping whose first entry the client chose. They are counted in `rawHeaders` of the Node
 * request (Koa's request keeps it as `req`), which HTTP/1.1 and HTTP/2 requests both have;
 * `headersDistinct` is HTTP/1.1's only, and over HTTP/2 the joined value won. `undefined` when there
 * is nothing to count them in (a plain `{ method, headers }`).
 */
function mappingLines (request: OffloadRequest): string[] | undefined {
  const raw = (request as { req?: { rawHeaders?: unknown } }).req?.rawHeaders
  if (!Array.isArray(raw)) return undefined
  const lines: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (typeof raw[i] === 'string' && (raw[i] as string).toLowerCase() === 'x-accel-mapping') lines.push(String(raw[i + 1]))
  }
  return lines
}

/** The request's mapping, or undefined (logged) when it has several lines or they cannot be counted. */
function trustedMapping (request: OffloadRequest, file: DownloadFile): Array<{ sourceDir: string, destinationUrl: string }> | undefined {
  const lines = mappingLines(request)
  if (lines === undefined) {
    if (request.headers['x-accel-mapping'] === undefined) return []
    // One line or a client's joined to the proxy's: the joined value cannot tell, so it is not used.
    return void logNoMatch('negotiated()', file, 'X-Accel-Mapping lines cannot be counted (the request has no rawHeaders)')
  }
  return parseMapping(lines.length <= 1 ? lines[0] : lines, file)
}

/**
 * `X-Accel-Mapping: /srv/files/=/protected/, /other/=/o/` → literal prefix pairs. Any malformed
 * entry rejects the whole header (undefined, logged escaped): a half-understood mapping is not used.
 */
export function parseMapping (header: string | string[] | undefined, file: DownloadFile): Array<{ sourceDir: string, destinationUrl: string }> | undefined {
  if (header === undefined) return []
  if (typeof header !== 'string') return void logNoMatch('negotiated()', file, 'several X-Accel-Mapping headers')
  // Node hands header bytes over one character per byte (latin1): nginx's `/srv/dätä/` arrives as
  // "/srv/dÃ¤tÃ¤/" and would never match the file's path. Read as UTF-8, as file names are; bytes
  // that are not UTF-8 name no directory this process could give, so the header is not used.
  const text = utf8Value(header)
  if (text === undefined) return void logNoMatch('negotiated()', file, `X-Accel-Mapping ${JSON.stringify(header)} is not UTF-8`)
  const result: Array<{ sourceDir: string, destinationUrl: string }> = []
  for (const entry of text.split(',')) {
    const eq = entry.indexOf('=')
    try {
      if (eq === -1) throw new TypeError('no "="')
      result.push({
        sourceDir: normalizeDir(fn, 'X-Accel-Mapping', entry.slice(0, eq).trim()),
        destinationUrl: normalizeDestinationUrl(fn, entry.slice(eq + 1).trim())
      })
    } catch {
      return void logNoMatch('negotiated()', file, `malformed X-Accel-Mapping ${JSON.stringify(text)}`)
    }
  }
  // The option's rule (negotiated(), nginx()): "/" is the app's own location, a redirect there loops.
  if (result.some((entry) => entry.destinationUrl === '/')) {
    return void logNoMatch('negotiated()', file, `X-Accel-Mapping ${JSON.stringify(text)} maps to "/", which would take every URL of the server, the app's too`)
  }
  return result
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A header value (one character per byte) read as strict UTF-8, or undefined. */
function utf8Value (value: string): string | undefined {
  // A character above U+00FF is no byte: only a request built by hand holds one.
  if (/[^\0-\xff]/u.test(value)) return undefined
  try { return utf8.decode(Buffer.from(value, 'latin1')) } catch { return undefined }
}
