import type { Context, Middleware, Next } from 'koa'
import { debug } from '../../source/debug.ts'
import { responseDownload } from '../../source/download.ts'
import { toHttpError } from '../../source/errors.ts'
import { codingToUndo, storedCoding } from '../../source/plan.ts'
import { presentationHeaders } from '../../source/presentation.ts'
import { clearForError, clientGone, nextInsideServe } from '../../source/serve.ts'
import type { FileStat } from '../../source/types.ts'
import { StorageFile } from './storage-file.ts'

export interface PresignedRedirectOptions {
  /** Lifetime of the presigned URL in seconds. @default 300 */
  expiresIn?: number | undefined
  /** 302 (Found) or 307 (Temporary Redirect; keeps the method). @default 302 */
  status?: 302 | 307 | undefined
}

/**
 * For deployments without a proxy: a StorageFile download of an S3 or GCS disk is answered with a
 * redirect to a short-lived presigned URL, which carries the download's Content-Disposition and
 * Content-Type (`response-content-disposition` / `response-content-type`), so the storage serves
 * the bytes — Range and conditionals included — under the name the app chose.
 *
 * Mount it inside `downloads()` (on the way back up it runs before serve()):
 * `app.use(downloads()); app.use(presignedRedirect({ expiresIn: 300 }))`. The object is stat'ed
 * first (one metadata request), so a missing object is the app's 404, not the storage's XML error.
 * These pass through to serve(), which streams them: other files (local disks, memory, other
 * wrappers); objects of a disk that cannot sign URLs (its driver's `getSignedUrl` throws: a custom
 * driver); requests other than GET, and responses whose status the route set; an object shown
 * inline whose type may run script (HTML, SVG, an unknown type: the storage would send it without
 * the app's sandbox); an object stored gzip-coded, for a client that does not accept gzip (serve()
 * decodes it). The redirect is `Cache-Control: private, no-store`: the URL expires, so nothing may
 * keep it.
 *
 * Not an offload rule: rules answer 200 with a header for a proxy to act on, a redirect is for the
 * client itself.
 */
export function presignedRedirect (options: PresignedRedirectOptions = {}): Middleware {
  if (options === null || typeof options !== 'object') throw new TypeError('presignedRedirect(): options must be an object')
  for (const key of Object.keys(options)) {
    if (key !== 'expiresIn' && key !== 'status') throw new TypeError(`presignedRedirect(): unknown option "${key}" (allowed: expiresIn, status)`)
  }
  const { expiresIn = 300, status = 302 } = options
  if (!Number.isSafeInteger(expiresIn) || expiresIn < 1 || expiresIn > 604_800) {
    throw new TypeError('presignedRedirect(): expiresIn must be an integer number of seconds, 1 to 604800 (7 days, the S3 maximum)')
  }
  if (status !== 302 && status !== 307) throw new TypeError('presignedRedirect(): status must be 302 or 307')

  const nextChecked = nextInsideServe('presignedRedirect() runs outside downloads() and serve(), so it never sees a Download to redirect: mount it after them, app.use(downloads()); app.use(presignedRedirect())', 'KD_PRESIGNED_REDIRECT_ORDER')
  return async function presignedRedirectMiddleware (ctx: Context, next: Next): Promise<void> {
    await nextChecked(ctx, next)
    // (none under ctx.respond = false: no URL is signed, and none goes on the app's own response)
    const download = responseDownload(ctx)
    if (download === undefined || !(download.file instanceof StorageFile)) return
    // Only a GET: the URL is signed for a GET, and a HEAD redirected to it keeps its method (the
    // signature covers it: the storage answers 403). A HEAD is answered by serve() from the
    // object's metadata, the same request the redirect would have made first.
    if (ctx.method !== 'GET' || ctx.status !== 200) return
    const file = download.file
    if (file.path !== undefined) {
      debug('presignedRedirect: %s is on a local disk: streamed', JSON.stringify(file.key))
      return
    }
    let presentation: ReturnType<typeof presentationHeaders>
    let stat: FileStat
    // The client leaving aborts the metadata request (it held a socket of the storage client's
    // pool until idleTimeout, and Koa logged a 504 for nobody); serve() then finds it gone.
    const leaving = new AbortController()
    const onClose = (): void => { if (!ctx.res.writableEnded) leaving.abort(new Error('client went away')) }
    ctx.res.once('close', onClose)
    if (clientGone(ctx.res)) onClose()
    try {
      stat = await file.stat({ signal: leaving.signal })
      presentation = presentationHeaders(download, stat)
    } catch (error) {
      if (leaving.signal.aborted) return
      // As serve() does: an error page of the app's handler is not typed as the download.
      clearForError(ctx)
      throw toHttpError(error)
    } finally {
      ctx.res.off('close', onClose)
    }
    // Stored coded (gzip) for a client that refuses the coding: the storage would send it as
    // stored (S3 does not transcode), serve() decodes it.
    const coding = codingToUndo(storedCoding(stat), ctx.request.headers['accept-encoding'])
    if (coding !== undefined) {
      debug('presignedRedirect: %s is stored %s-coded and the client does not accept it: streamed, decoded', JSON.stringify(file.key), coding)
      return
    }
    // The storage would send it without the sandbox the app gives an inline page (HTML, SVG, an
    // unknown type), and a bucket on the app's own site would run its script there: streamed.
    if (presentation.sandboxed) {
      debug('presignedRedirect: %s is shown inline and may run script: streamed, for its Content-Security-Policy', JSON.stringify(file.key))
      return
    }
    let url: string
    try {
      url = await file.signedUrl({ expiresIn, contentDisposition: presentation.contentDisposition, contentType: presentation.contentType })
    } catch (error) {
      // A disk that cannot sign URLs (a custom driver, a store without credentials to sign with):
      // the file is there (stat() said so), so serve() streams it rather than failing the download.
      debug('presignedRedirect: %s cannot be signed (%s): streamed', JSON.stringify(file.key), (error as Error)?.message ?? String(error))
      return
    }
    debug('presignedRedirect: %s → %d presigned URL (%d s)', JSON.stringify(file.key), status, expiresIn)
    ctx.body = null
    ctx.status = status
    ctx.set('Location', url)
    ctx.set('Cache-Control', 'private, no-store')
    // A CDN reads these instead of Cache-Control (RFC 9213 §2.1): one the app set for its pages
    // would have the CDN keep one user's signed URL and hand it to others.
    ctx.remove('CDN-Cache-Control')
    ctx.remove('Surrogate-Control')
  }
}
