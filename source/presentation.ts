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
 * `stat` supplies the source's declared type, when it has been fetched.
 */
export function presentationHeaders (download: Download, stat?: FileStat): Presentation {
  const { file, options } = download
  const name = options.filename ?? file.name
  return {
    contentType: contentTypeFor(options.filename ?? file.name, stat?.contentType, options.contentType),
    contentDisposition: contentDisposition(name, options.attachment === false),
    cacheControl: options.cacheControl
  }
}
