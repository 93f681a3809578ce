import { checkOptions, matchValue, normalizeDestinationUrl, normalizeSource } from '../offload-rule.ts'
import type { OffloadRule, OffloadTarget, SourceOptions } from '../offload-rule.ts'
import { encodedPath, placeholderSafeQuery } from '../proxy-path.ts'
import type { DownloadFile } from '../types.ts'

export interface InternalRedirectOptions extends SourceOptions {
  /**
   * The local URL path the server re-dispatches to (shield it from direct requests); the file's path
   * below the source is appended, percent-encoded per segment (RFC 3875 §6.3.2).
   * @example '/private/'
   */
  destinationUrl: string
  /**
   * For `sourceUrl` matches: append the file URL's query string. Off by default.
   * @default false
   */
  forwardQuery?: boolean | undefined
}

export interface InternalRedirectRule extends OffloadRule {
  readonly backend: 'internal-redirect'
  /** Normalised: starts and ends with `/`. */
  readonly destinationUrl: string
  readonly forwardQuery: boolean
}

const fn = 'internalRedirect()'

/**
 * The CGI "local redirect" (RFC 3875 §6.2.2): status 200, an empty body and `Location: /local/path`,
 * which makes the gateway serve that URL itself, as django-sendfile's mod_wsgi backend does. Only
 * gateways that implement it act on it (mod_wsgi daemon mode, Apache mod_proxy_scgi's
 * `ProxySCGIInternalRedirect`); plain HTTP reverse proxies pass it to the client (docs/deployment/caddy.md §5).
 * @example internalRedirect({ sourceDir: '/srv/files', destinationUrl: '/private/' })
 */
export function internalRedirect (options: InternalRedirectOptions): InternalRedirectRule {
  const o = checkOptions(fn, options, ['sourceDir', 'sourceUrl', 'destinationUrl', 'forwardQuery'])
  const source = normalizeSource(fn, o)
  if (o.destinationUrl === undefined) throw new TypeError(`${fn}: destinationUrl is required (the local URL path, e.g. '/private/')`)
  const destinationUrl = normalizeDestinationUrl(fn, o.destinationUrl)
  if (o.forwardQuery !== undefined && typeof o.forwardQuery !== 'boolean') throw new TypeError(`${fn}: forwardQuery must be a boolean`)
  const forwardQuery = o.forwardQuery ?? false
  const label = `internalRedirect(${source.sourceDir ?? source.sourceUrl} → ${destinationUrl})`
  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: 'internal-redirect',
    ...source,
    destinationUrl,
    forwardQuery,
    match (file: DownloadFile): OffloadTarget | undefined {
      const value = matchValue(label, source, file, (found) => {
        const path = encodedPath(destinationUrl, found.segments)
        return path === undefined || !forwardQuery ? path : path + placeholderSafeQuery(found.search)
      }, 'the name cannot be percent-encoded')
      return value === undefined ? undefined : { header: 'Location', value, validators: false }
    }
  })
}
