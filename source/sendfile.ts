import type { Context } from 'koa'
import { Download, validateDownloadOptions } from './download.ts'
import { PathFile } from './path-file.ts'
import { isServed, resolveServeOptions, sendDownload } from './serve.ts'
import type { DownloadOptions } from './types.ts'

export interface SendfileOptions extends DownloadOptions {
  /** Files outside this directory (lexically, or through symlinks unless `followSymlinks`) are a 404; a relative path is resolved against it. */
  root?: string | undefined
  /** See PathFileOptions.followSymlinks: the root is checked on the path as written only. @default false */
  followSymlinks?: boolean | undefined
}

const defaults = resolveServeOptions({}, 'sendfile()')

/**
 * django-sendfile's one-call API: `await sendfile(ctx, path, { root })`. Inline by default
 * (`attachment: false`). Inside `downloads()` the file goes through the offload rules like any
 * download; without it, the file is streamed at once with full HTTP semantics.
 */
export async function sendfile (ctx: Context, path: string, options: SendfileOptions = {}): Promise<void> {
  if (options === null || typeof options !== 'object') throw new TypeError('sendfile(): options must be an object')
  const { root, followSymlinks, ...rest } = options
  validateDownloadOptions(rest, 'sendfile()')
  // `attachment: undefined` means the default too, and sendfile()'s default is inline.
  const download = new Download(new PathFile(path, { root, followSymlinks }), { ...rest, attachment: rest.attachment ?? false })
  if (isServed(ctx)) {
    ctx.body = download
    return
  }
  await sendDownload(ctx, download, defaults)
}
