import { contentDisposition, sanitizeFilename } from './content-disposition.ts'
import { contentTypeFor, isPassiveType, lookupContentType } from './content-type.ts'
import type { DownloadBody } from './download.ts'
import type { DownloadFile, DownloadOptions, FileStat } from './types.ts'

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
  return new LazyPresentation(download.options, download.file, stat)
}

// A class rather than an object literal with getters: one shared shape, no closures per response.
class LazyPresentation implements Presentation {
  readonly cacheControl: string | undefined
  readonly #options: DownloadOptions
  /** Its name gives the type when no name is offered; its declared type, when `stat` gives none. */
  readonly #file: DownloadFile
  /** The name offered to the user (`''`: none). */
  readonly #name: string
  readonly #stat: FileStat | undefined

  constructor (options: DownloadOptions, file: DownloadFile, stat: FileStat | undefined) {
    this.cacheControl = options.cacheControl
    this.#options = options
    this.#file = file
    this.#name = options.filename ?? file.name
    this.#stat = stat
  }

  /** Worked out once: an inline download reads it for its header and for `sandboxed`. */
  #type: string | undefined

  get contentType (): string {
    return this.#type ??= contentTypeFor(this.#typeName(), this.#sourceType(), this.#options.contentType)
  }

  /**
   * The type the source gives: its stat's, else the one the wrapper declares without I/O
   * (DownloadFile.contentType, e.g. a record's column), so that a file offloaded unstat'ed and the
   * same file streamed get one Content-Type.
   */
  #sourceType (): string | undefined {
    const stated = this.#stat?.contentType
    if (stated !== undefined && stated !== '') return stated
    const declared: unknown = this.#file.contentType
    return typeof declared === 'string' ? declared : undefined
  }

  /**
   * The name whose extension gives the type: the one offered, as the browser saves it (without
   * control characters, trailing dots or spaces), or the file's own when that one tells no type
   * (`filename: ''`, `'.'`, `'Invoice'`): the bytes are still the file's.
   */
  #typeName (): string {
    const name = this.#name
    const fileName = this.#file.name
    // The file's own name, offered as it is, ending as most names do (`report.pdf`): nothing to strip.
    if (name === fileName && /[A-Za-z0-9]$/.test(name)) return name
    const offered = name === '' ? '' : sanitizeFilename(name).replace(/[ .]+$/, '')
    return offered === '' || lookupContentType(offered) === 'application/octet-stream' ? fileName : offered
  }

  get contentDisposition (): string {
    return contentDisposition(this.#name, this.#options.attachment === false)
  }

  get sandboxed (): boolean {
    return this.#options.attachment === false && this.#options.sandbox !== false && !isPassiveType(this.contentType)
  }
}
