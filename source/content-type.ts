import mime from 'mime-types'
import { isHeaderSafe } from './download.ts'

const utf8Types = /^(?:text\/|application\/(?:json|javascript|x-javascript|ecmascript|ld\+json|manifest\+json)$)/

/**
 * The Content-Type of a download (reference/http-semantics.md §7): the explicit option verbatim,
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

export function lookupContentType (name: string): string {
  const dot = name.lastIndexOf('.')
  const ext = dot === -1 ? '' : name.slice(dot + 1).toLowerCase()
  let type = cache.get(ext)
  if (type === undefined) {
    const found = ext === '' ? false : mime.lookup(ext)
    type = found === false ? 'application/octet-stream' : found
    if (utf8Types.test(type) && type !== 'text/xml') type += '; charset=utf-8'
    if (cache.size < 1000) cache.set(ext, type)
  }
  return type
}


/**
 * Whether a browser navigated to a response of this type renders it as a document that can run
 * script in the serving origin: HTML, XHTML, SVG and other XML (an XHTML-namespaced element in any
 * XML document runs script).
 */
export function isActiveType (type: string): boolean {
  const semicolon = type.indexOf(';')
  const essence = (semicolon === -1 ? type : type.slice(0, semicolon)).trim().toLowerCase()
  return essence === 'text/html' || essence === 'text/xml' || essence === 'application/xml' || essence === 'text/xsl' || essence.endsWith('+xml')
}
