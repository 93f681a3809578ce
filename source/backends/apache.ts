import { checkOptions, matchValue, normalizeDir, normalizeSource } from '../offload-rule.ts'
import type { OffloadRule, OffloadTarget, SourceOptions } from '../offload-rule.ts'
import { rawFilePath } from '../proxy-path.ts'
import type { DownloadFile } from '../types.ts'

export interface ApacheOptions extends SourceOptions {
  /**
   * The directory Apache reads the files from (inside `XSendFilePath`). The file's path below
   * `sourceDir` (or its decoded URL path below `sourceUrl`) is appended.
   * @example '/srv/files'
   */
  destinationDir: string
}

export interface ApacheRule extends OffloadRule {
  readonly backend: 'apache'
  /** Absolute, normalised, without trailing slash. */
  readonly destinationDir: string
}

const fn = 'apache()'

/**
 * Offload to Apache with mod_xsendfile: `X-Sendfile: <raw absolute path>` (Debian's 0.12 does not
 * decode, proxies.md §2, §8). Apache answers conditionals with the app's validators, so the
 * response carries the file's ETag and Last-Modified (one `stat()`); names with control characters
 * or a trailing space are streamed instead.
 * @example apache({ sourceDir: '/srv/files', destinationDir: '/srv/files' })
 */
export function apache (options: ApacheOptions): ApacheRule {
  const o = checkOptions(fn, options, ['sourceDir', 'sourceUrl', 'destinationDir'])
  const source = normalizeSource(fn, o)
  if (o.destinationDir === undefined) throw new TypeError(`${fn}: destinationDir is required (the directory Apache serves, inside XSendFilePath)`)
  const destinationDir = normalizeDir(fn, 'destinationDir', o.destinationDir)
  const label = `apache(${source.sourceDir ?? source.sourceUrl} → ${destinationDir})`
  // Frozen: the config generator reads these fields, and they must stay what match() uses.
  return Object.freeze({
    backend: 'apache',
    ...source,
    destinationDir,
    match (file: DownloadFile): OffloadTarget | undefined {
      const value = matchValue(label, source, file, (found) => rawFilePath(destinationDir, found.segments),
        'the name has control characters or a trailing space, which a raw X-Sendfile cannot carry')
      return value === undefined ? undefined : { header: 'X-Sendfile', value, validators: true }
    }
  })
}
