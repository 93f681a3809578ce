import { renderApache } from './server-config/apache.ts'
import { renderCaddy } from './server-config/caddy.ts'
import { renderLighttpd } from './server-config/lighttpd.ts'
import { renderNginx } from './server-config/nginx.ts'
import type { ConfigRule, FullConfig } from './server-config/shared.ts'
import { destinationConflict, normalizeDir } from './offload-rule.ts'

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
   * `host:port` of the Koa app, for the snippets that contain the proxy line (lighttpd, Caddy).
   * @default '127.0.0.1:3000'
   */
  upstream?: string | undefined
}

// Which rules each server executes. Caddy can also honour the CGI-style Location + 200, through a
// handle_response matcher on Location; the other three pass it to the client (reference/proxies.md §11).
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
export function renderServerConfig (server: ServerName, rules: readonly ConfigRule[], options: ServerConfigOptions = {}): string {
  if (!serverNames.includes(server)) {
    throw new TypeError(`renderServerConfig(): server must be one of ${serverNames.join(', ')}, got ${JSON.stringify(server)}`)
  }
  if (!Array.isArray(rules)) throw new TypeError('renderServerConfig(): rules must be an array of offload rules')
  for (const rule of rules) {
    if (rule === null || typeof rule !== 'object' || typeof rule.backend !== 'string') {
      throw new TypeError('renderServerConfig(): every rule must be an offload rule (nginx(), apache(), …)')
    }
  }
  // A config module may hold plain data that no factory normalised: a relative directory would be
  // written as is (`alias ../etc/;`), read by the server from wherever it runs. What nginx(),
  // caddy() … refuse is refused here too.
  for (const [index, rule] of rules.entries()) {
    const mapping = (rule as { mapping?: unknown }).mapping
    const dirs: Array<[string, unknown]> = [['sourceDir', rule.sourceDir], ['destinationDir', rule.destinationDir]]
    if (Array.isArray(mapping)) {
      for (const [i, entry] of mapping.entries()) dirs.push([`mapping[${i}].sourceDir`, (entry as { sourceDir?: unknown } | null)?.sourceDir])
    }
    for (const [option, value] of dirs) {
      if (value === undefined) continue
      try {
        normalizeDir(`renderServerConfig(): rules[${index}] (${rule.backend})`, option, value)
      } catch (error) {
        throw new TypeError(`${(error as Error).message}, got ${JSON.stringify(value)}`)
      }
    }
  }
  const { full, upstream } = options
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
  if (own.length === 0) {
    throw new TypeError(`renderServerConfig(): none of the ${rules.length} rules is for ${server} (backends: ${[...new Set(rules.map((r) => r.backend))].join(', ') || 'none'})`)
  }
  let text: string
  switch (server) {
    case 'nginx': text = renderNginx(own, full); break
    case 'apache': text = renderApache(own, full); break
    case 'lighttpd': text = renderLighttpd(own, full, upstream); break
    case 'caddy': text = renderCaddy(own, full, upstream); break
  }
  if (skipped > 0) text += `# ${skipped} rule(s) for other servers skipped\n`
  // negotiated() is chosen per request by a header the proxy adds (X-Sendfile-Type): a server-wide
  // decision of the operator, not something to derive from the app's rules.
  if (negotiated > 0) text += `# ${negotiated} negotiated() rule(s) not rendered: the proxy must send X-Sendfile-Type itself\n`
  return text
}
