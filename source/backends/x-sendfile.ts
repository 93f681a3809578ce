import { checkOptions, matchValue, normalizeDir, normalizeSource } from '../offload-rule.ts'
import type { OffloadRule, OffloadTarget, SourceOptions } from '../offload-rule.ts'
import type { DownloadFile } from '../types.ts'

export interface XSendfileOptions extends SourceOptions {
  /**
   * The directory the server reads the files from (inside its allow-list: Apache's `XSendFilePath`,
   * lighttpd's `x-sendfile-docroot`). The file's path below `sourceDir` (or its decoded URL path
   * below `sourceUrl`) is appended.
   * @example '/srv/files'
   */
  destinationDir: string
}

export interface XSendfileRule<B extends 'apache' | 'lighttpd'> extends OffloadRule {
  readonly backend: B
  /** Absolute, normalised, without trailing slash. */
  readonly destinationDir: string
}

interface Flavour<B> {
  backend: B
  /** The directive that allow-lists the directory, for the error message. */
  allowList: string
  /** The header value for the segments below the source, or undefined when it cannot be carried. */
  encode: (destinationDir: string, segments: readonly string[]) => string | undefined
  refusal: string
}

/**
 * The `X-Sendfile` rules of Apache and lighttpd: the same matching and validation, a different
 * encoding of the path. Both servers answer conditionals with the app's validators, so the offload
 * response carries the file's ETag and Last-Modified (`validators: true`).
 */
export function xSendfileRule<B extends 'apache' | 'lighttpd'> (options: XSendfileOptions, flavour: Flavour<B>): XSendfileRule<B> {
  const fn = `${flavour.backend}()`
  const o = checkOptions(fn, options, ['sourceDir', 'sourceUrl', 'destinationDir'])
  const source = normalizeSource(fn, o)
  if (o.destinationDir === undefined) throw new TypeError(`${fn}: destinationDir is required (the directory ${flavour.backend} serves, inside ${flavour.allowList})`)
  const destinationDir = normalizeDir(fn, 'destinationDir', o.destinationDir)
  const label = `${fn.slice(0, -1)}${source.sourceDir ?? source.sourceUrl} → ${destinationDir})`
  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: flavour.backend,
    ...source,
    destinationDir,
    match (file: DownloadFile): OffloadTarget | undefined {
      const value = matchValue(label, source, file, (found) => flavour.encode(destinationDir, found.segments), flavour.refusal)
      return value === undefined ? undefined : { header: 'X-Sendfile', value, validators: true }
    }
  })
}
