import type { Middleware } from 'koa'
import { offloadStep } from './offload.ts'
import type { OffloadRule } from './offload-rule.ts'
import { resolveServeOptions, serveWith } from './serve.ts'
import type { ServeOptions } from './serve.ts'

export interface DownloadsOptions extends ServeOptions {
  /**
   * Offload rules, tried in order; the first that covers the file hands the transfer to the proxy.
   * Files no rule covers (and memory or generated files) are streamed by Node.
   * @default [] (everything is streamed)
   */
  rules?: OffloadRule | readonly OffloadRule[] | undefined
}

/**
 * serve + offload, for `app.use(downloads(options))` or per route
 * (`router.get('/files/:id', downloads({ rules }), handler)`): a handler sets
 * `ctx.body = download(file, options)` (or a bare file wrapper) and this delivers it.
 */
export function downloads (options: DownloadsOptions = {}): Middleware {
  if (options === null || typeof options !== 'object') throw new TypeError('downloads(): options must be an object')
  const { rules = [], ...serveOptions } = options
  const resolved = resolveServeOptions(serveOptions, 'downloads()')
  // No rule: nothing to offload. Otherwise the offload step runs inside serve()'s own middleware,
  // as if offload() came right after it: one async frame per request, not two composed ones.
  return serveWith(resolved, Array.isArray(rules) && rules.length === 0 ? undefined : offloadStep(rules, 'downloads()'))
}
