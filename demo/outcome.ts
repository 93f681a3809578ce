// What one cell of the table does, computed from the real rules (not written by hand): which rule
// takes the file and what header it sends, or why Node streams it.
import type { OffloadTarget } from '../source/index.ts'
import type { DemoDelivery } from './deliveries.ts'
import { readableHeader } from './html.ts'
import type { DemoEnv, DemoSource } from './sources.ts'

export interface Outcome {
  kind: 'stream' | 'offload' | 'redirect' | 'unavailable'
  /** One sentence for the cell. */
  note: string
  target?: OffloadTarget | undefined
  /**
   * false: the proxy in front of the demo would not serve this offload (Caddy answers 404 to a
   * percent-encoded Location, docs/deployment/caddy.md §5), so the cell offers no live download.
   */
  proxyServes?: boolean | undefined
}

export async function outcomeOf (env: DemoEnv, source: DemoSource, delivery: DemoDelivery): Promise<Outcome> {
  const file = await source.file(env)
  if (file === undefined) return { kind: 'unavailable', note: `No S3 server: ${env.s3Problem ?? 'not configured'}.` }
  if (delivery.id === 'node') {
    // An in-memory stream without a size or validator (the generated CSV) gets neither ranges nor
    // conditionals; stat() costs nothing for such a file (a remote or stored one is not asked).
    const stat = file.path === undefined && file.url === undefined ? await file.stat() : undefined
    if (stat !== undefined && stat.size === undefined && stat.etag === undefined && stat.lastModified === undefined) {
      return { kind: 'stream', note: 'Node streams it chunked: no length and no validator, so no ranges (Accept-Ranges: none) and no conditionals; HEAD.' }
    }
    return { kind: 'stream', note: 'Node streams it: ranges, conditionals, HEAD.' }
  }
  if (delivery.id === 'presigned') {
    if (source.objectStore === true) return { kind: 'redirect', note: '302 to a presigned S3 URL (5 minutes, presignedRedirect()); S3 sends the bytes, the Content-Disposition and Content-Type signed into it.' }
    return { kind: 'stream', note: 'Not in an object store, so there is no URL to sign: Node streams it.' }
  }
  for (const rule of delivery.rules(env)) {
    const target = rule.match(file, { method: 'GET', headers: {} })
    if (target !== undefined) {
      const value = readableHeader(target.value)
      const note = `${target.header}: ${value.length > 90 ? value.slice(0, 87) + '…' : value}`
      if (delivery.id === 'internal-redirect' && target.value.split('?')[0]?.includes('%') === true) {
        return { kind: 'offload', target, proxyServes: false, note: `${note} — percent-encoded, so Caddy answers 404 (a CGI gateway decodes it); use caddy() rules with Caddy.` }
      }
      return { kind: 'offload', target, note }
    }
  }
  if (file.path === undefined && file.url === undefined) return { kind: 'stream', note: 'In memory, no path or URL: no proxy can read it, so Node streams it.' }
  return { kind: 'stream', note: `No ${delivery.label} rule covers it (${file.path !== undefined ? 'a path outside the rules' : 'a URL this server cannot fetch'}): Node streams it.` }
}
