import { realpath } from 'node:fs/promises'
import { join, sep } from 'node:path'

/** How each server reads its offload value (reference/proxies.md §2): decoded once, or raw bytes. */
export type ValueForm = 'encoded' | 'raw'

const forms: Record<string, ValueForm> = {
  nginx: 'encoded',
  lighttpd: 'encoded',
  'internal-redirect': 'encoded',
  apache: 'raw',
  caddy: 'raw',
  // negotiated()'s default: a value that nginx or Caddy (X-Accel-Redirect), Apache or lighttpd
  // (X-Sendfile) must read alike, whichever asked: raw bytes with nothing either would decode.
  'either-accel': 'raw',
  'either-sendfile': 'raw'
}

/**
 * An independent reading of an offload value, the way the proxy would read it: decode it (or take
 * its raw UTF-8 bytes), check that it lies below `destination`, and return the segments below it.
 * A string result is the reason the value is unsafe. Deliberately not the library's own parser.
 */
export function readOffloadValue (backend: string, value: string, destination: string): string[] | string {
  const form = forms[backend]
  if (form === undefined) return `unknown backend ${backend}`
  if (/[\r\n\0]/.test(value)) return 'raw CR, LF or NUL in the header value'
  if (value !== value.trim()) return 'leading or trailing white space (a parser would trim it)'
  const prefix = destination.endsWith('/') ? destination : destination + '/'
  let path: string
  if (form === 'encoded') {
    if (!/^[\x21-\x7e]+$/.test(value)) return 'an encoded value with a byte outside visible ASCII'
    if (/[?#]/.test(value)) return 'a query or fragment in the value'
    // nginx refuses ".." before decoding too; a proxy may also look at the raw segments.
    const rawProblem = segmentProblem(value.split('/').slice(1))
    if (rawProblem !== undefined) return `raw value: ${rawProblem}`
    try {
      path = decodeURIComponent(value)
    } catch {
      return 'does not percent-decode to UTF-8'
    }
  } else {
    if (/[^\x00-\xff]/.test(value)) return 'a char above U+00FF (setHeader would throw)'
    try {
      path = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(value, 'latin1'))
    } catch {
      return 'raw bytes are not UTF-8'
    }
    // Caddy's rewrite starts a query at `?`; a raw `#` is served (proxies.md §2).
    if ((backend === 'caddy' || backend === 'either-accel') && path.includes('?')) return 'a ? that Caddy would take as a query'
    // nginx and lighttpd decode `%XX` in the value, Caddy and Apache do not: another file to one of them.
    if (backend.startsWith('either-') && path.includes('%')) return 'a % that one of the two servers would decode'
  }
  if (/[\0\r\n]/.test(path)) return 'NUL, CR or LF after decoding'
  if (!path.startsWith(prefix)) return `${JSON.stringify(path)} is not below ${prefix}`
  const segments = path.slice(prefix.length).split('/')
  const problem = segmentProblem(segments)
  if (problem !== undefined) return `decoded value: ${problem}`
  return segments
}

function segmentProblem (segments: string[]): string | undefined {
  for (const segment of segments) {
    if (segment === '') return 'an empty segment (//)'
    if (segment === '.' || segment === '..') return `a "${segment}" segment`
  }
  return undefined
}

/**
 * Where the proxy would end up on disk when `destination` maps to `root`: the real path must be
 * inside `root` (a proxy follows symlinks unless told otherwise). Missing files are fine (the proxy
 * answers 404). Returns the reason when it is outside.
 */
export async function resolvesOutside (root: string, segments: string[]): Promise<string | undefined> {
  let real: string
  try {
    real = await realpath(join(root, ...segments))
  } catch {
    return undefined
  }
  return real === root || real.startsWith(root + sep) ? undefined : `the proxy would serve ${real}, outside ${root}`
}
