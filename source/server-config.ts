import { renderApache } from './server-config/apache.ts'
import { renderCaddy } from './server-config/caddy.ts'
import { renderLighttpd } from './server-config/lighttpd.ts'
import { nginxString, renderNginx } from './server-config/nginx.ts'
import type { ConfigRule, FullConfig } from './server-config/shared.ts'
import { destinationConflict, normalizeDestinationUrl, normalizeDir } from './offload-rule.ts'
import { apache } from './backends/apache.ts'
import { caddy } from './backends/caddy.ts'
import { internalRedirect } from './backends/internal-redirect.ts'
import { lighttpd } from './backends/lighttpd.ts'
import { nginx } from './backends/nginx.ts'
import { parseHostPort, withSlash } from './server-config/shared.ts'

export type { ConfigRule, FullConfig } from './server-config/shared.ts'

export type ServerName = 'nginx' | 'apache' | 'lighttpd' | 'caddy'
export const serverNames: readonly ServerName[] = ['nginx', 'apache', 'lighttpd', 'caddy']

export interface ServerConfigOptions {
  /**
   * Render a complete, runnable configuration (listener, upstream, pid, logs and temp files under
   * `prefix`) instead of the snippet to paste into an existing server block.
   * @default undefined (snippet)
   * @example { listen: '127.0.0.1:8080', upstream: '127.0.0.1:3000', prefix: '/tmp/kd-nginx' }
   */
  full?: FullConfig | undefined
  /**
   * `host:port` of the Koa app, for the snippets that contain the proxy line (Apache, lighttpd, Caddy).
   * @default '127.0.0.1:3000'
   */
  upstream?: string | undefined
  /**
   * nginx: the CA bundle against which the certificates of https origins (`sourceUrl` and `remote`
   * rules) are verified (`proxy_ssl_trusted_certificate`); nginx reads it when it starts, and does
   * not start without it (a `remote` rule needs it even if it only ever meets http origins).
   * `false`: no verification (nginx's defaults), e.g. for an https origin addressed by IP, whose
   * certificate nginx cannot verify.
   * @default '/etc/ssl/certs/ca-certificates.crt' (Debian, Ubuntu; elsewhere e.g. '/etc/pki/tls/certs/ca-bundle.crt')
   */
  trustedCertificate?: string | false | undefined
}

// Which rules each server executes. Caddy can also honour the CGI-style Location + 200, through a
// handle_response matcher on Location; the other three pass it to the client (docs/deployment/caddy.md §5).
const backendsOf: Record<ServerName, readonly string[]> = {
  nginx: ['nginx'],
  apache: ['apache'],
  lighttpd: ['lighttpd'],
  caddy: ['caddy', 'internal-redirect']
}

/**
 * The server configuration that makes `server` execute the offload `rules` of the app: nginx
 * internal locations, Apache `XSendFilePath`s, lighttpd `x-sendfile-docroot`s, Caddy
 * `handle_response` blocks. Rules of other backends are skipped (a comment says so).
 */
export function renderServerConfig (server: ServerName, given: readonly ConfigRule[], options: ServerConfigOptions = {}): string {
  if (!serverNames.includes(server)) {
    throw new TypeError(`renderServerConfig(): server must be one of ${serverNames.join(', ')}, got ${JSON.stringify(server)}`)
  }
  if (!Array.isArray(given)) throw new TypeError('renderServerConfig(): rules must be an array of offload rules')
  for (const rule of given) {
    if (rule === null || typeof rule !== 'object' || typeof rule.backend !== 'string') {
      throw new TypeError('renderServerConfig(): every rule must be an offload rule (nginx(), apache(), …)')
    }
  }
  // A config module may hold plain data that no factory normalised: a relative directory would be
  // written as is (`alias ../etc/;`), read by the server from wherever it runs. What nginx(),
  // caddy() … refuse is refused here too.
  const refuse = (check: () => unknown, value: unknown): void => {
    try {
      check()
    } catch (error) {
      throw new TypeError(`${(error as Error).message}, got ${JSON.stringify(value)}`)
    }
  }
  for (const [index, rule] of given.entries()) {
    const where = `renderServerConfig(): rules[${index}] (${rule.backend})`
    for (const option of ['sourceDir', 'destinationDir'] as const) {
      if (rule[option] !== undefined) refuse(() => normalizeDir(where, option, rule[option]), rule[option])
    }
    // A negotiated() mapping is printed in a comment (the locations to write by hand): a line
    // break in it would be a line of the configuration.
    const mapping = (rule as { mapping?: unknown }).mapping
    if (rule.backend !== 'negotiated' || !Array.isArray(mapping)) continue
    for (const [i, entry] of mapping.entries()) {
      const { sourceDir, destinationUrl } = (entry ?? {}) as { sourceDir?: unknown, destinationUrl?: unknown }
      refuse(() => normalizeDir(`${where} mapping[${i}]`, 'sourceDir', sourceDir), sourceDir)
      refuse(() => normalizeDestinationUrl(`${where} mapping[${i}]`, destinationUrl), destinationUrl)
    }
  }
  const rules = given.map(throughFactory)
  const { full, upstream } = options
  // Checked for every server, also where a snippet has no line for it (nginx's): never ignored.
  if (upstream !== undefined) parseHostPort(typeof upstream === 'string' ? upstream : String(upstream), 'upstream')
  if (full !== undefined) {
    if (full === null || typeof full !== 'object') throw new TypeError('renderServerConfig(): full must be { listen, upstream, prefix }')
    if (typeof full.prefix !== 'string' || !full.prefix.startsWith('/')) throw new TypeError('renderServerConfig(): full.prefix must be an absolute directory')
  }
  // The same check as offload(): a config that maps one rule's values to another rule's files is
  // refused, not written (the rules of a config module are plain data, never checked by offload()).
  const conflict = destinationConflict(rules)
  if (conflict !== undefined) throw new TypeError(`renderServerConfig(): ${conflict}`)
  const own = rules.filter((rule) => backendsOf[server].includes(rule.backend))
  const negotiated = rules.filter((rule) => rule.backend === 'negotiated').length
  const skipped = rules.length - own.length - negotiated
  const byHand = handWritten(server, rules)
  if (own.length === 0) {
    throw new TypeError(`renderServerConfig(): none of the ${rules.length} rules is for ${server} (backends: ${[...new Set(rules.map((r) => r.backend))].join(', ') || 'none'})` +
      (negotiated === 0 ? '' : '; negotiated() rules are not rendered: the proxy must send X-Sendfile-Type itself') +
      (byHand === undefined ? '' : `; ${byHand.title}:\n${byHand.lines.map((line) => `    ${line}`).join('\n')}`))
  }
  const trusted = options.trustedCertificate
  if (typeof trusted === 'string' && !trusted.startsWith('/')) {
    throw new TypeError(`renderServerConfig(): trustedCertificate must be an absolute path (nginx would read a relative one from its own prefix), or false: ${JSON.stringify(trusted)}`)
  }
  if (trusted !== undefined && typeof trusted !== 'string' && trusted !== false) throw new TypeError('renderServerConfig(): trustedCertificate must be an absolute path or false')
  let text: string
  switch (server) {
    case 'nginx': text = renderNginx(own, full, options.trustedCertificate); break
    case 'apache': text = renderApache(own, full, upstream); break
    case 'lighttpd': text = renderLighttpd(own, full, upstream); break
    case 'caddy': text = renderCaddy(own, full, upstream); break
  }
  if (skipped > 0) text += `# ${skipped} rule(s) for other servers skipped\n`
  // negotiated() is chosen per request by a header the proxy adds (X-Sendfile-Type): a server-wide
  // decision of the operator, not something to derive from the app's rules.
  if (byHand !== undefined) text += `# negotiated() mappings are not rendered: ${byHand.title}:\n${byHand.lines.map((line) => `#     ${line}\n`).join('')}`
  if (negotiated > 0) text += `# ${negotiated} negotiated() rule(s) not rendered: the proxy must send X-Sendfile-Type itself\n`
  return text
}

const factories = new Map<string, (options: never) => ConfigRule>([
  ['nginx', nginx], ['apache', apache], ['lighttpd', lighttpd], ['caddy', caddy], ['internal-redirect', internalRedirect]
])

/**
 * A rule of plain data (a config module that writes `{ backend: 'apache', … }` instead of calling
 * apache()) made by its factory: checked and normalised as the app's own rules are (a `destinationUrl`
 * with a query or `..`, a standard header for Caddy, credentials in a `sourceUrl`, no source at all
 * are refused; `/srv/x/./y/..` is written as `/srv/x`, which mod_xsendfile compares as it is). A
 * rule object that has its `match` (a factory's, or one of the app's own making) stays as it is, and
 * so does a negotiated() one, whose plain form (its `mapping` a list) is not negotiated()'s options.
 */
function throughFactory (rule: ConfigRule, index: number): ConfigRule {
  const factory = factories.get(rule.backend)
  if (factory === undefined || typeof (rule as { match?: unknown }).match === 'function') return rule
  const { backend: _, ...options } = rule as ConfigRule & Record<string, unknown>
  try {
    return factory(options as never)
  } catch (error) {
    throw new TypeError(`renderServerConfig(): rules[${index}] (plain data for ${rule.backend}()): ${(error as Error).message}`)
  }
}

/**
 * What serves the X-Accel-Redirect values of the negotiated() rules' mappings, which the proxy
 * dispatches like any other (nginx by its internal locations, Caddy by its matchers) but which are
 * not rendered: the proxy asks for them with X-Sendfile-Type, a choice of the operator. For nginx a
 * line to paste per mapping (by default the values are raw paths below the location that nginx and
 * Caddy both read alike: an internal location with an alias serves them); for Caddy what its
 * matcher must cover.
 * Apache and lighttpd get X-Sendfile, the file's own path: a mapping means nothing to them.
 */
function handWritten (server: ServerName, rules: readonly ConfigRule[]): { title: string, lines: string[] } | undefined {
  if (server !== 'nginx' && server !== 'caddy') return undefined
  const entries = rules.flatMap((rule) => {
    const { allow, mapping } = rule as { allow?: unknown, mapping?: unknown }
    if (rule.backend !== 'negotiated' || !Array.isArray(allow) || !allow.includes('X-Accel-Redirect') || !Array.isArray(mapping)) return []
    return mapping as Array<{ sourceDir: string, destinationUrl: string }>
  })
  if (entries.length === 0) return undefined
  if (server === 'caddy') {
    return {
      title: 'write by hand, for each mapping, a handle_response on X-Accel-Redirect that serves its directory (the values are raw paths below the location, as caddy() sends; keep the accel option of negotiated() at its default, or raw)',
      lines: entries.map(({ sourceDir, destinationUrl }) => `X-Accel-Redirect "${withSlash(destinationUrl)}*" from ${sourceDir}`)
    }
  }
  return {
    title: 'write the internal location of each mapping by hand, inside the server { } block',
    lines: entries.map(({ sourceDir, destinationUrl }) => {
      if (withSlash(destinationUrl) === '/') throw new TypeError(`renderServerConfig(): a negotiated() mapping to "/" cannot have an internal location (it would take every URL of the server, the app's too): map ${sourceDir} to a location of its own, e.g. '/protected/'`)
      if (sourceDir.includes('$')) throw new TypeError(`renderServerConfig(): a negotiated() mapping's directory contains "$", which nginx would read as a variable: ${JSON.stringify(sourceDir)}`)
      // Quoted as the generated locations are: a `;` or a quote in either would break the line.
      return `location ^~ ${nginxString(withSlash(destinationUrl), 'a negotiated() destinationUrl')} { internal; alias ${nginxString(withSlash(sourceDir), 'a negotiated() directory')}; }`
    })
  }
}
