import { rawFilePath } from '../proxy-path.ts'
import { xSendfileRule } from './x-sendfile.ts'
import type { XSendfileOptions, XSendfileRule } from './x-sendfile.ts'

export type ApacheOptions = XSendfileOptions
export type ApacheRule = XSendfileRule<'apache'>

/**
 * Offload to Apache with mod_xsendfile: `X-Sendfile: <raw absolute path>` (Debian's 0.12 does not
 * decode, proxies.md §2, §8). Apache answers conditionals with the app's validators, so the
 * response carries the file's ETag and Last-Modified (one `stat()`); names with control characters
 * or a trailing space are streamed instead.
 * @example apache({ sourceDir: '/srv/files', destinationDir: '/srv/files' })
 */
export function apache (options: ApacheOptions): ApacheRule {
  return xSendfileRule(options, {
    backend: 'apache',
    allowList: 'XSendFilePath',
    encode: withinPathMax,
    refusal: 'the name has control characters or a trailing space, which a raw X-Sendfile cannot carry, or the path is too long for mod_xsendfile'
  })
}

/**
 * The raw path, unless mod_xsendfile cannot open it: it joins the value to the XSendFilePath it
 * matches (the rule's destinationDir) with apr_filepath_merge, which fails with ENAMETOOLONG — a
 * 404 from Apache — once both and the separators pass PATH_MAX (4096 bytes, its terminator
 * included; measured by an outside audit: 4062 + 30 served, 4063 + 30 refused). Such a file is
 * streamed by the app instead.
 */
function withinPathMax (dir: string, segments: readonly string[]): string | undefined {
  const value = rawFilePath(dir, segments)
  // `value` holds the UTF-8 bytes one per character (latin1).
  if (value === undefined || Buffer.byteLength(dir, 'utf8') + value.length + 4 > 4096) return undefined
  return value
}
