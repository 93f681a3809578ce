import { contentDisposition, sanitizeFilename } from './content-disposition.ts'
import { contentTypeFor, isPassiveType, lookupContentType } from './content-type.ts'
import type { DownloadBody } from './download.ts'
import type { DownloadOptions, FileStat } from './types.ts'

/** The headers that present a download, whether Node streams it or a proxy does. */
export interface Presentation {
  readonly contentType: string
  readonly contentDisposition: string
  readonly cacheControl: string | undefined
  /**
   * Shown inline (not an attachment) and of a type that is not known to be passive (HTML, SVG, XML,
   * an unknown type a browser would sniff): the response gets `Content-Security-Policy: sandbox`,
   * so that a file an untrusted user uploaded or named cannot run script in the app's origin.
   * `sandbox: false` turns it off (the app's own pages served as files).
   */
  readonly sandboxed: boolean
}

/**
 * The Cache-Control of a download whose options name none and whose route set none: `private`. A
 * response with a Last-Modified and no Cache-Control may be stored by a shared cache and given to
 * the next user (RFC 9111 §4.2.2, heuristic freshness; §3.5 protects only requests carrying
 * Authorization, not cookies): Apache's mod_cache and an nginx proxy_cache served one user's
 * authorised download to another, and an old version of a replaced file, measured by an outside
 * audit. `private` keeps it to the browser that asked, as before.
 */
export const DEFAULT_CACHE_CONTROL = 'private'

/** Sent with every download the app answers or offloads (nginx drops it): the browser takes the Content-Type as it is (no sniffing). */
export const NOSNIFF = 'nosniff'
/** A CSP without a sandbox token's allowances: no script, no form, no plugin, an opaque origin. */
export const SANDBOX = 'sandbox'

/**
 * Content-Type, Content-Disposition and Cache-Control of a download, computed from the file's real
 * name (never from an encoded redirect value), so that streamed and offloaded responses agree.
 * `stat` supplies the source's declared type, when it has been fetched. The type and disposition
 * are worked out when first read: a 304 carries neither.
 */
export function presentationHeaders (download: DownloadBody, stat?: FileStat): Presentation {
  return new LazyPresentation(download.options, download.options.filename ?? download.file.name, download.file.name, stat, download.file.contentType)
}

// A class rather than an object literal with getters: one shared shape, no closures per response.
class LazyPresentation implements Presentation {
  readonly cacheControl: string | undefined
  readonly #options: DownloadOptions
  /** The name offered to the user (`''`: none). */
  readonly #name: string
  /** The file's own name, for the type when no name is offered. */
  readonly #fileName: string
  readonly #stat: FileStat | undefined
  /** The type the file declares without I/O (DownloadFile.contentType), for a stat that gives none. */
  readonly #declared: unknown

  constructor (options: DownloadOptions, name: string, fileName: string, stat: FileStat | undefined, declared: unknown) {
    this.cacheControl = options.cacheControl
    this.#options = options
    this.#name = name
    this.#fileName = fileName
    this.#stat = stat
    this.#declared = declared
  }

  /** Worked out once: an inline download reads it for its header and for `sandboxed`. */
  #type: string | undefined

  get contentType (): string {
    // A wrapper's stat() with no type falls back on the type it declares, as an offload (which
    // stats nothing) does: the same Content-Type streamed or offloaded.
    const stated = this.#stat?.contentType
    const declared = this.#declared
    return this.#type ??= contentTypeFor(this.#typeName(), stated !== undefined && stated !== '' ? stated : typeof declared === 'string' ? declared : undefined, this.#options.contentType)
  }

  /**
   * The name whose extension gives the type: the one offered, as the browser saves it (without
   * control characters, trailing dots or spaces), or the file's own when that one tells no type
   * (`filename: ''`, `'.'`, `'Invoice'`): the bytes are still the file's.
   */
  #typeName (): string {
    const name = this.#name
    // The file's own name, offered as it is, ending as most names do (`report.pdf`): nothing to strip.
    if (name === this.#fileName && /[A-Za-z0-9]$/.test(name)) return name
    const offered = name === '' ? '' : sanitizeFilename(name).replace(/[ .]+$/, '')
    return offered === '' || lookupContentType(offered) === 'application/octet-stream' ? this.#fileName : offered
  }

  get contentDisposition (): string {
    return contentDisposition(this.#name, this.#options.attachment === false)
  }

  get sandboxed (): boolean {
    return this.#options.attachment === false && this.#options.sandbox !== false && !isPassiveType(this.contentType)
  }
}
