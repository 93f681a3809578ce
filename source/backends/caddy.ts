import { checkOptions, matchValue, normalizeDestinationUrl, normalizeSource } from '../offload-rule.ts'
import type { OffloadRule, OffloadTarget, SourceOptions } from '../offload-rule.ts'
import { caddyLiteral, caddyPath, placeholderSafeQuery, sameOnTheWire } from '../proxy-path.ts'
import type { DownloadFile } from '../types.ts'

export interface CaddyOptions extends SourceOptions {
  /**
   * The URL prefix the `handle_response` matcher looks for (`@accel header X-Accel-Redirect
   * /protected/*`); the file's path below the source is appended, raw.
   * @example '/protected/'
   */
  destinationUrl: string
  /**
   * The response header the Caddyfile's `handle_response` matcher names.
   * @default 'X-Accel-Redirect'
   */
  header?: string | undefined
  /**
   * For `sourceUrl` matches: append the file URL's query string (for a fixed remote origin behind
   * `reverse_proxy` whose object address includes it). Off by default (see nginx()'s option).
   * @default false
   */
  forwardQuery?: boolean | undefined
}

export interface CaddyRule extends OffloadRule {
  readonly backend: 'caddy'
  /** Normalised: starts and ends with `/`. */
  readonly destinationUrl: string
  readonly header: string
  readonly forwardQuery: boolean
}

const fn = 'caddy()'
// Headers the proxy or the browser give a meaning of their own: never an offload header.
const reserved = new Set(['content-type', 'content-length', 'content-disposition', 'content-encoding', 'content-range',
  'cache-control', 'etag', 'last-modified', 'location', 'set-cookie', 'transfer-encoding', 'connection', 'vary',
  'expires', 'date', 'accept-ranges', 'host', 'server',
  // Node refuses a Trailer field on a response with a Content-Length (every offload a 500); the
  // other hop-by-hop fields, and the headers the generated block copies, are not the rule's either
  'trailer', 'te', 'keep-alive', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'content-location',
  'content-security-policy', 'x-content-type-options'])

/**
 * Offload to Caddy: a header (by convention `X-Accel-Redirect`) with the raw path, which a
 * `reverse_proxy { handle_response }` block matches, rewrites to and serves with `file_server`
 * (docs/deployment/caddy.md). Caddy drops the app's headers unless copied, so
 * the Caddyfile must `copy_response_headers`. Names containing `?` cannot go through `rewrite`:
 * those files are streamed.
 * @example caddy({ sourceDir: '/srv/files', destinationUrl: '/protected/' })
 */
export function caddy (options: CaddyOptions): CaddyRule {
  const o = checkOptions(fn, options, ['sourceDir', 'sourceUrl', 'destinationUrl', 'header', 'forwardQuery'])
  const source = normalizeSource(fn, o)
  if (o.destinationUrl === undefined) throw new TypeError(`${fn}: destinationUrl is required (the prefix the handle_response matcher names, e.g. '/protected/')`)
  const destinationUrl = normalizeDestinationUrl(fn, o.destinationUrl)
  const header = o.header ?? 'X-Accel-Redirect'
  // Letters, digits and "-": the Caddyfile matcher that names it takes no more (a backquote quotes
  // there, a "#" starts a comment), and `koa-downloads config caddy` writes no other.
  if (typeof header !== 'string' || !/^[A-Za-z0-9-]+$/.test(header) || reserved.has(header.toLowerCase())) {
    throw new TypeError(`${fn}: header must be a header name of your own, of letters, digits and "-" (default 'X-Accel-Redirect'), not a standard one`)
  }
  if (o.forwardQuery !== undefined && typeof o.forwardQuery !== 'boolean') throw new TypeError(`${fn}: forwardQuery must be a boolean`)
  const forwardQuery = o.forwardQuery ?? false
  const label = `caddy(${source.sourceDir ?? source.sourceUrl} → ${destinationUrl})`
  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: 'caddy',
    ...source,
    destinationUrl,
    header,
    forwardQuery,
    match (file: DownloadFile): OffloadTarget | undefined {
      const value = matchValue(label, source, file, (found) => {
        // the origin must get the file URL itself, not another spelling of it (see sameOnTheWire)
        if (found.rawSegments !== undefined && !sameOnTheWire(found.rawSegments, found.segments, caddyLiteral)) return undefined
        const path = caddyPath(destinationUrl, found.segments)
        return path === undefined || !forwardQuery ? path : path + placeholderSafeQuery(found.search)
      }, 'Caddy cannot serve a name with "?", control characters or a trailing space, nor fetch a URL that escapes "+" or ";" (it sends them unescaped: another URL at some origins)')
      return value === undefined ? undefined : { header, value, validators: false }
    }
  })
}
