import type { Context } from 'koa'
import { Download, downloadOptionNames, validateDownloadOptions } from './download.ts'
import { PathFile } from './path-file.ts'
import { isServed, resolveServeOptions, sendDownload } from './serve.ts'
import type { StatCache } from './stat-cache.ts'
import type { DownloadOptions } from './types.ts'

export interface SendfileOptions extends DownloadOptions {
  /** `true`: an attachment (Save as…); sendfile() is inline unless asked, as django-sendfile. @default false */
  attachment?: boolean | undefined
  /** Files outside this directory (lexically, or through symlinks unless `followSymlinks`) are a 404; a relative path is resolved against it. */
  root?: string | undefined
  /** See PathFileOptions.followSymlinks: the root is checked on the path as written only. @default false */
  followSymlinks?: boolean | undefined
  /** See PathFileOptions.statCache: a 304, 412 or HEAD within its maxAge makes no file system call. */
  statCache?: StatCache | undefined
}

const defaults = resolveServeOptions({}, 'sendfile()')
const optionNames = ['root', 'followSymlinks', 'statCache', ...downloadOptionNames]
/** Responses a sendfile() has already given a file: a second call is refused, not merged into it. */
const answered = new WeakSet<Context>()

/**
 * django-sendfile's one-call API: `await sendfile(ctx, path, { root })`. Inline by default
 * (`attachment: false`). Inside `downloads()` the file goes through the offload rules like any
 * download; without it, the file is streamed at once with full HTTP semantics.
 */
export async function sendfile (ctx: Context, path: string, options: SendfileOptions = {}): Promise<void> {
  if (options === null || typeof options !== 'object') throw new TypeError('sendfile(): options must be an object')
  for (const key of Object.keys(options)) {
    // A misspelt `root` would otherwise be reported against the download options only.
    if (!optionNames.includes(key)) throw new TypeError(`sendfile(): unknown option "${key}" (allowed: ${optionNames.join(', ')})`)
  }
  const { root, followSymlinks, statCache, ...rest } = options
  validateDownloadOptions(rest, 'sendfile()')
  // The file's headers could no longer be sent: its bytes would follow another response's head.
  if (ctx.headerSent) throw new Error('sendfile(): the response headers were already sent')
  // A second file for the same response would keep headers of the first (its Content-Range, the
  // status of its 304) that describe another file. A call that failed (a 404) gave none: a fallback
  // file may follow it.
  if (answered.has(ctx)) throw new Error('sendfile(): this response already has a file (sendfile() was called twice)')
  // `attachment: undefined` means the default too, and sendfile()'s default is inline.
  const download = new Download(new PathFile(path, { root, followSymlinks, statCache }), { ...rest, attachment: rest.attachment ?? false })
  if (isServed(ctx)) {
    ctx.body = download
    answered.add(ctx)
    return
  }
  await sendDownload(ctx, download, defaults)
  answered.add(ctx)
}
