import { encodedFilePath } from '../proxy-path.ts'
import { xSendfileRule } from './x-sendfile.ts'
import type { XSendfileOptions, XSendfileRule } from './x-sendfile.ts'

export type LighttpdOptions = XSendfileOptions
export type LighttpdRule = XSendfileRule<'lighttpd'>

/**
 * Offload to lighttpd's mod_proxy (`"x-sendfile" => "enable"`): `X-Sendfile` with the absolute path
 * percent-encoded per segment, since lighttpd decodes it (docs/deployment/lighttpd.md). Only `X-Sendfile`
 * works through mod_proxy (`X-LIGHTTPD-send-file` silently sends an empty 200). lighttpd answers
 * conditionals with the app's validators, so the response carries the file's ETag and Last-Modified.
 * @example lighttpd({ sourceDir: '/srv/files', destinationDir: '/srv/files' })
 */
export function lighttpd (options: LighttpdOptions): LighttpdRule {
  return xSendfileRule(options, {
    backend: 'lighttpd',
    allowList: 'x-sendfile-docroot',
    encode: encodedFilePath,
    refusal: 'the name is not well-formed Unicode or has a control character (lighttpd would read it as "_", another file)'
  })
}
