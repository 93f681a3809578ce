import { contentDisposition } from './content-disposition.ts'
import { contentTypeFor } from './content-type.ts'
import type { Download } from './download.ts'
import type { FileStat } from './types.ts'

/** The headers that present a download, whether Node streams it or a proxy does. */
export interface Presentation {
  contentType: string
  contentDisposition: string
  cacheControl: string | undefined
}

/**
 * Content-Type, Content-Disposition and Cache-Control of a download, computed from the file's real
 * name (never from an encoded redirect value), so that streamed and offloaded responses agree.
 * `stat` supplies the source's declared type, when it has been fetched. The type and disposition
 * are worked out when first read: a 304 carries neither.
 */
export function presentationHeaders (download: Download, stat?: FileStat): Presentation {
  const { file, options } = download
  const name = options.filename ?? file.name
  return {
    get contentType () { return contentTypeFor(name, stat?.contentType, options.contentType) },
    get contentDisposition () { return contentDisposition(name, options.attachment === false) },
    cacheControl: options.cacheControl
  }
}
