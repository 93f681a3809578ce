import { rawFilePathWithinPathMax } from '../proxy-path.ts'
import { xSendfileRule } from './x-sendfile.ts'
import type { XSendfileOptions, XSendfileRule } from './x-sendfile.ts'

export type ApacheOptions = XSendfileOptions
export type ApacheRule = XSendfileRule<'apache'>

/**
 * Offload to Apache with mod_xsendfile: `X-Sendfile: <raw absolute path>` (Debian's 0.12 does not
 * decode, docs/deployment/apache.md). Apache answers conditionals with the app's validators, so the
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

/** The raw path, unless it is too long for mod_xsendfile (see rawFilePathWithinPathMax). */
function withinPathMax (dir: string, segments: readonly string[]): string | undefined {
  return rawFilePathWithinPathMax(dir, dir, segments)
}
