import { checkOptions, matchValue, normalizeDir, normalizeSource } from '../offload-rule.ts'
import type { OffloadRule, OffloadTarget, SourceOptions } from '../offload-rule.ts'
import { encodedFilePath } from '../proxy-path.ts'
import type { DownloadFile } from '../types.ts'

export interface LighttpdOptions extends SourceOptions {
  /**
   * The directory lighttpd reads the files from (inside `x-sendfile-docroot`). The file's path below
   * `sourceDir` (or its decoded URL path below `sourceUrl`) is appended.
   * @example '/srv/files'
   */
  destinationDir: string
}

export interface LighttpdRule extends OffloadRule {
  readonly backend: 'lighttpd'
  /** Absolute, normalised, without trailing slash. */
  readonly destinationDir: string
}

const fn = 'lighttpd()'

/**
 * Offload to lighttpd's mod_proxy (`"x-sendfile" => "enable"`): `X-Sendfile` with the absolute path
 * percent-encoded per segment, since lighttpd decodes it (proxies.md §2, §7). Only `X-Sendfile`
 * works through mod_proxy (`X-LIGHTTPD-send-file` silently sends an empty 200). lighttpd answers
 * conditionals with the app's validators, so the response carries the file's ETag and Last-Modified.
 * @example lighttpd({ sourceDir: '/srv/files', destinationDir: '/srv/files' })
 */
export function lighttpd (options: LighttpdOptions): LighttpdRule {
  const o = checkOptions(fn, options, ['sourceDir', 'sourceUrl', 'destinationDir'])
  const source = normalizeSource(fn, o)
  if (o.destinationDir === undefined) throw new TypeError(`${fn}: destinationDir is required (the directory lighttpd serves, inside x-sendfile-docroot)`)
  const destinationDir = normalizeDir(fn, 'destinationDir', o.destinationDir)
  const label = `lighttpd(${source.sourceDir ?? source.sourceUrl} → ${destinationDir})`
  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: 'lighttpd',
    ...source,
    destinationDir,
    match (file: DownloadFile): OffloadTarget | undefined {
      const value = matchValue(label, source, file, (found) => encodedFilePath(destinationDir, found.segments),
        'the name cannot be percent-encoded')
      return value === undefined ? undefined : { header: 'X-Sendfile', value, validators: true }
    }
  })
}
