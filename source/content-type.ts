import mime from 'mime-types'
import { isHeaderSafe } from './download.ts'

const utf8Types = /^(?:text\/|application\/(?:json|javascript|x-javascript|ecmascript|ld\+json|manifest\+json)$)/

/**
 * The Content-Type of a download: the explicit option verbatim,
 * else the source's declared type verbatim, else looked up from the name's extension, with
 * `; charset=utf-8` added only to looked-up text, JSON and JavaScript types; never sniffed.
 */
export function contentTypeFor (name: string, declared?: string, explicit?: string): string {
  if (explicit !== undefined) return explicit
  // A declared type that cannot be a header value (a third-party wrapper's, stored metadata) would
  // fail the response when it is set: the name decides instead.
  if (declared !== undefined && declared !== '' && isHeaderSafe(declared)) return declared
  return lookupContentType(name)
}

const cache = new Map<string, string>()
const gzipped = new Set(['svgz', 'x3dz'])

export function lookupContentType (name: string): string {
  const dot = name.lastIndexOf('.')
  const ext = dot === -1 ? '' : name.slice(dot + 1).toLowerCase()
  let type = cache.get(ext)
  if (type === undefined) {
    // `.svgz` and `.x3dz` are gzip files, as `.tar.gz` is (reference §7.5): mime-types gives them
    // the type of the XML inside, which the bytes are not. Sent as image/svg+xml with no
    // Content-Encoding (which is never taken from a name), an inline one was a broken image.
    const found = ext === '' ? false : gzipped.has(ext) ? 'application/gzip' : mime.lookup(ext)
    type = found === false ? 'application/octet-stream' : found
    // XML carries its encoding in its own declaration (reference §7.4): text/xml and MathML are left alone.
    if (utf8Types.test(type) && type !== 'text/xml' && type !== 'text/mathml') type += '; charset=utf-8'
    if (cache.size < 1000) cache.set(ext, type)
  }
  return type
}

/**
 * Whether a browser shows a response of this type inline without running anything of its own:
 * images other than SVG, audio, video, PDF, plain text, CSV, JSON. Anything else — HTML, SVG, XML,
 * an unknown or unparsable type (which browsers sniff, HTML included) — can run script in the
 * serving origin when rendered. Only one plain `type/subtype` with parameters is read: a list
 * (`text/plain, text/html` is HTML to Chromium, which takes the last valid member) or any other
 * shape is not passive.
 */
export function isPassiveType (type: string): boolean {
  const essence = browserEssence(type)
  if (essence === undefined) return false
  if (essence === 'image/svg+xml') return false
  const slash = essence.indexOf('/')
  const top = essence.slice(0, slash)
  if (top === 'image' || top === 'audio' || top === 'video' || top === 'font') return true
  return passiveTypes.has(essence)
}

const passiveTypes = new Set(['application/pdf', 'text/plain', 'text/csv', 'application/json', 'application/octet-stream'])

const MIME_ESSENCE = /^[\t\n\r ]*([!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)[\t\n\r ]*(?:;|$)/

/**
 * The essence (`type/subtype`, lower case) of a Content-Type value, or undefined for a value a
 * browser might read otherwise: a list (browsers take its last valid member, and where a member
 * ends — at a space, a `(`, a comma inside quotes — is theirs to decide), or anything but one plain
 * `type/subtype` with parameters. Undefined is never passive: such a type is sandboxed.
 */
function browserEssence (value: string): string | undefined {
  if (value.includes(',')) return undefined
  const match = MIME_ESSENCE.exec(value)
  return match === null ? undefined : (match[1] as string).toLowerCase()
}
