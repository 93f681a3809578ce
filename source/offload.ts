import type { Context, Middleware, Next } from 'koa'
import { debug, loggableUrl } from './debug.ts'
import { responseDownload } from './download.ts'
import { toHttpError } from './errors.ts'
import { isEntityTagList, parseEntityTag, wellFormedEtag } from './etag.ts'
import { formatHttpDate, parseHttpDate } from './http-date.ts'
import { destinationConflict, looksPresigned } from './offload-rule.ts'
import type { OffloadRule, OffloadTarget } from './offload-rule.ts'
import { PathFile } from './path-file.ts'
import { statUncached } from './stat-cache.ts'
import { acceptsCoding, codingToUndo, lastModifiedOf, storedCoding } from './plan.ts'
import { evaluatePreconditions, repeatedDateFields } from './preconditions.ts'
import { isPassiveType, lookupContentType } from './content-type.ts'
import { DEFAULT_CACHE_CONTROL, NOSNIFF, presentationHeaders, SANDBOX } from './presentation.ts'
import { appendPolicy, clearForError, nextInsideServe, servedPlan } from './serve.ts'
import type { FileStat } from './types.ts'

/**
 * The rules step: after the route has run, the first rule that covers the Download in `ctx.body`
 * replaces it by the proxy's offload response — status 200, an empty body (`Content-Length: 0`),
 * the offload header, and the Content-Type, Content-Disposition and Cache-Control of the download
 * (from the file's real name). Other headers the app set are kept. No rule matching, a file with
 * neither `path` nor `url`, or a method other than GET/HEAD → the Download passes through to
 * `serve()`, which streams it.
 *
 * Nothing is opened. A PathFile under a root is confined first (one realpath: symlinks out of the
 * root are a 404, as is a missing file); other local files are stat'ed, and so is every file for
 * Apache and lighttpd, which answer conditionals with the app's ETag and Last-Modified (only
 * those two get the validators). A PathFile without root or with `followSymlinks`, and any file
 * known by URL, cost no I/O at all — but a GET with a Range and an If-Range date to a
 * local file (stat'ed: a date of the current second is streamed, below), and a file whose origin
 * sends its stored coding whatever the client accepts (`sendsStoredCoding`: S3, presigned URLs),
 * for a client refusing gzip with no Range: its metadata are read, and a coded one is left to
 * serve(), which decodes it (StorageFile) or refuses it (HttpFile, 502). A failure is thrown as the
 * HTTP error `serve()` would give, with no offload header set.
 *
 * Range and `If-*` are left to the proxy: every authorised GET/HEAD gets the same offload response,
 * except these, which serve() answers (streams) itself, each for a proxy that would answer it
 * wrongly: a GET for several ranges of a file at an origin (the origin's multipart body would go
 * out under the app's Content-Type); for the proxies that get the app's validators (Apache,
 * lighttpd), a request whose preconditions fail (304, 412); where the proxy's validators are the
 * app's, a malformed conditional field or a Range with a number past 64 bits (a 416 from the
 * proxies, where the range is satisfiable); a GET with a Range and an If-Range date of a local file
 * modified within the current second or dated in the future (a weak validator the servers honour);
 * a HEAD of a presigned URL; an inline page that needs its sandbox, behind nginx; a stored-coded
 * object for a client refusing gzip. An nginx rule's rate controls still apply to those. A
 * response whose status the route set (anything but 200) is never offloaded.
 */
export function offload (rules: OffloadRule | readonly OffloadRule[]): Middleware {
  const step = offloadStep(rules)
  const nextChecked = nextInsideServe('offload() runs outside serve(), which has answered the download by then, so nothing is offloaded: mount serve() first, app.use(serve()); app.use(offload(rules)) — or use downloads({ rules })', 'KD_OFFLOAD_ORDER')
  return async function offloadMiddleware (ctx: Context, next: Next): Promise<void> {
    await nextChecked(ctx, next)
    await step(ctx)
  }
}

/**
 * What offload() does once the route has run, for `downloads()` to call from its own middleware
 * (one async frame per request instead of two composed ones). Checks the rules now.
 */
export function offloadStep (rules: OffloadRule | readonly OffloadRule[], where = 'offload()'): (ctx: Context) => Promise<void> {
  const list = Array.isArray(rules) ? [...rules] : [rules]
  list.forEach((rule, i) => {
    if (rule === null || typeof rule !== 'object' || typeof rule.match !== 'function' || typeof rule.backend !== 'string') {
      throw new TypeError(`${where}: rules[${i}] must be an offload rule (nginx(), apache(), lighttpd(), caddy(), internalRedirect(), negotiated())`)
    }
  })
  // Checked here, not only by the config generator: an app whose rules collide would hand the
  // proxy values it serves from another rule's directory, whatever config the proxy runs.
  const conflict = destinationConflict(list)
  if (conflict !== undefined) throw new TypeError(`${where}: ${conflict}`)

  if (list.length === 0) return async function noRules (): Promise<void> {}
  // nginx serves a rule's destinationUrl from an internal location; a client asking for it gets
  // nginx's 404. A request under it that reaches the app is an X-Accel-Redirect nginx had no
  // location for (it fell through to `location /`, with the client's headers), or a client that
  // reached the app without nginx: the app's own 404 is all anyone would see. Said once.
  const internalPrefixes = list.flatMap((rule) => {
    const fields = rule as { destinationUrl?: unknown, mapping?: ReadonlyArray<{ destinationUrl: string }>, allow?: readonly string[] }
    const prefixes = rule.backend === 'nginx' && typeof fields.destinationUrl === 'string'
      ? [fields.destinationUrl]
      // negotiated(): its mapping's locations, when nginx may ask for X-Accel-Redirect
      : rule.backend === 'negotiated' && fields.allow?.includes('X-Accel-Redirect') === true && Array.isArray(fields.mapping) ? fields.mapping.map((entry) => entry.destinationUrl) : []
    return prefixes.filter((prefix) => prefix !== '/')
  })
  let fellThroughWarned = false
  return async function offloadResponse (ctx: Context): Promise<void> {
    const download = responseDownload(ctx)
    if (download === undefined) {
      if (ctx.status === 404 && !fellThroughWarned && internalPrefixes.length > 0) {
        const prefix = internalPrefixes.find((candidate) => ctx.path.startsWith(candidate))
        if (prefix !== undefined) {
          fellThroughWarned = true
          process.emitWarning(`${ctx.method} ${JSON.stringify(ctx.path.slice(0, 200))} reached the app (404), under the destinationUrl ${prefix} of an X-Accel-Redirect rule, which nginx serves from an internal location: nginx has no location for it (its X-Accel-Redirect fell through to the app: regenerate the config with koa-downloads config nginx), or a client reached the app without nginx (SECURITY.md)`, { type: 'KoaDownloadsWarning', code: 'KD_DESTINATION_REACHED_APP' })
        }
      }
      return
    }
    const { file } = download
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      debug('offload: %s not offloaded: method %s is answered by serve()', JSON.stringify(file.name), ctx.method)
      return
    }
    if (ctx.status !== 200) {
      debug('offload: %s not offloaded: the route set status %d', JSON.stringify(file.name), ctx.status)
      return
    }
    if (file.path === undefined && file.url === undefined) {
      debug(file instanceof PathFile
        ? 'offload: %s not offloaded: its path was refused (NUL byte, empty, ending with "/", or outside the root), which serve() answers with 404'
        : 'offload: %s streamed: the file has neither path nor url (memory or generated; a storage object with no public URL — an S3 disk built from a client: pass storage(disk, { url }) —; or a refused or missing key)', JSON.stringify(file.name))
      return
    }
    let target: OffloadTarget | undefined
    let rule: OffloadRule | undefined
    for (const candidate of list) {
      target = candidate.match(file, ctx.request)
      if (target !== undefined) { rule = candidate; break }
    }
    if (target === undefined || rule === undefined) {
      if (debug.enabled) debug('offload: %s streamed: no rule covers it', file.path !== undefined ? JSON.stringify(file.path) : loggableUrl(file.url ?? ''))
      return
    }
    // The rule's rate controls go on whatever answers: the offload, or the app when it streams
    // the download itself (the requests handed back below).
    keepRateControls(ctx, target)
    // A rule without sourceDir (negotiated() aside: local files only) offloads to an origin: the
    // proxy forwards the client's Range to it and hides the origin's Content-Type (the app's wins),
    // so the origin's multipart/byteranges would reach the client under the download's own type
    // (measured with nginx and Caddy). Several ranges are streamed instead.
    const range = ctx.request.headers.range
    if (rule.sourceDir === undefined && rule.backend !== 'negotiated' && ctx.method === 'GET' && typeof range === 'string' && range.includes(',')) {
      debug('offload: %s streamed: a request for several ranges (the origin\'s multipart answer would lose its type)', loggableUrl(file.url ?? ''))
      return
    }
    // A HEAD of a presigned URL: the proxy would send the storage a HEAD, which the signature (made
    // for a GET) does not cover — a 403, the client a 502. serve() answers it from the metadata.
    if (rule.sourceDir === undefined && rule.backend !== 'negotiated' && ctx.method === 'HEAD' && file.url !== undefined && looksPresigned(file.url)) {
      debug('offload: %s streamed: a HEAD of a presigned URL (signed for GET)', loggableUrl(file.url))
      return
    }
    // An object an origin sends with its stored coding whatever the client accepts (S3: a gzip
    // export reached wget, which sends `Accept-Encoding: identity`, as gzip bytes under its .csv
    // name): for a client refusing gzip, the metadata decides. A coded object is left to serve(),
    // which decodes it for that client; any other is offloaded as usual. Only gzip triggers the
    // metadata call: it is the coding objects are stored with, and clients that take gzip but not
    // br (Node's fetch, Go, Python's requests) would otherwise cost one on every download. Nor does
    // a request with a Range: browsers and fetch() send `Accept-Encoding: identity` with every
    // range (a video's seeks, a resumed download), of objects that are next to never coded.
    // Read for its coding alone: the offloaded response is presented as it is without the call (the
    // name's type, or the declared one), whatever the client's Accept-Encoding — it carries no Vary.
    if (file.sendsStoredCoding === true && rule.sourceDir === undefined && rule.backend !== 'negotiated' && range === undefined && !acceptsCoding(ctx.request.headers['accept-encoding'], 'gzip')) {
      let stored: FileStat
      try {
        stored = await file.stat()
      } catch (error) {
        clearForError(ctx)
        throw toHttpError(error)
      }
      const coding = storedCoding(stored)
      if (codingToUndo(coding, ctx.request.headers['accept-encoding']) !== undefined) {
        debug('offload: %s streamed: stored %s, which the client does not accept (serve() decodes it, or refuses it: 502)', JSON.stringify(file.name), coding)
        return
      }
    }
    // Malformed conditional fields, which the app ignores and some servers read: an
    // If-Modified-Since or If-Unmodified-Since that is not one HTTP-date (ignored, §13.1.3–4); next
    // to a GET's Range, an If-Range that is neither one entity-tag nor one HTTP-date (it cannot
    // match: the whole file is due); an If-Match or If-None-Match that is not `*` or a list of
    // entity-tags. nginx and Apache read the date at the start of `<date>, <date>` or `<date>x`, and
    // Apache takes any If-None-Match that starts with `*` for `*`; they answer 304, 412 or the range
    // (measured, test/hardening/fuzz-offload.test.ts). No client sends such a field of its own
    // accord: the request is streamed, and answered as the app reads it — where the server's
    // validators are the app's, so that the client sees one ETag either way: Apache and lighttpd
    // are sent the app's, and nginx computes the same for a local file. (Go's, in Caddy, differ:
    // the generated Caddy block drops the Range next to such an If-Range itself.)
    // So is, there too, a Range with a number past 64 bits (`bytes=0-18446744073709551615`, as some
    // clients write "to the end"): RFC 9110 §14.1.2 cuts a last-pos or suffix-length beyond the file
    // to the file, a satisfiable range. nginx 1.22 answers 416 from 2^63, lighttpd 1.4.69 from
    // 2^63 − 1, and Apache 2.4 sends the whole file. The app reads numbers of any length. (A HEAD
    // stays offloaded: nginx applies a HEAD's Range, as it does to any, docs/deployment/nginx.md.
    // The generated Caddy block drops such a Range: the whole file.)
    if (target.validators || target.sameValidators === true) {
      const malformed = malformedField(ctx)
      if (malformed !== undefined) {
        debug('offload: %s streamed: a malformed %s', JSON.stringify(file.name), malformed)
        return
      }
      if (ctx.method === 'GET' && typeof range === 'string' && HUGE_NUMBER.test(range)) {
        debug('offload: %s streamed: a Range number past 64 bits', JSON.stringify(file.name))
        return
      }
    }

    // Offloading opens nothing, and touches the file only where the answer depends on it: a PathFile
    // under a root is confined first (one realpath: the proxy would follow a symlink out of the
    // root; a missing file becomes the app's own 404); other local files (storage on a local disk)
    // are stat'ed; Apache and lighttpd answer conditionals with the app's validators, so they get a
    // stat. A PathFile without root, or under a rule whose proxy refuses symlinks itself
    // (proxyRefusesSymlinks: it checks the path it opens), costs no syscall, like a hand-written
    // X-Accel-Redirect handler; a file known by URL is left to the proxy entirely (the app fetches
    // nothing from the origin), so its Content-Type comes from its name unless `contentType` is given.
    // A GET with a Range and an If-Range date, to a server that serves a local file (nginx, Apache,
    // lighttpd, Caddy): the stat tells whether that date is a Last-Modified of the current second,
    // below. nginx's and Caddy's offloads pay it for such requests only. (Go's ETag is not the
    // app's, but a resume by date has no ETag to compare: the client sees the app's on that 200.)
    const ifRange = ctx.request.headers['if-range']
    const servesLocalFile = target.validators || target.sameValidators === true || (rule.backend === 'caddy' && rule.sourceDir !== undefined)
    const dateIfRange = ctx.method === 'GET' && range !== undefined && typeof ifRange === 'string' && servesLocalFile
      ? parseHttpDate(ifRange)
      : undefined
    let stat: FileStat | undefined
    try {
      // Never from a StatCache: this stat() is the confinement of a file the proxy will read, and
      // its validators are the ones the proxy answers conditionals and If-Range with.
      if (target.validators || dateIfRange !== undefined || (file.path !== undefined && !(file instanceof PathFile))) stat = await statUncached(file)
      else if (file instanceof PathFile && rule.proxyRefusesSymlinks !== true) await file.confine()
    } catch (error) {
      clearForError(ctx)
      throw toHttpError(error)
    }
    const validators = target.validators && stat !== undefined ? { etag: wellFormedEtag(stat.etag), lastModified: lastModifiedOf(stat, Date.now()) } : undefined
    if (validators !== undefined) {
      // Apache and lighttpd answer conditionals with the validators sent below, but not all as
      // RFC 9110 says: lighttpd evaluates neither If-Match nor If-Unmodified-Since on an X-Sendfile
      // response (it sends the file where 412 is due), and Apache ignores If-None-Match next to an
      // If-Modified-Since that says modified, or a Range (test/hardening/fuzz-offload.test.ts). The
      // stat is made, so the app evaluates them first, at no I/O cost: a 304 or 412 is left to
      // serve(), and only a request that passes is offloaded. They are judged with the validators
      // of that serve() (its etag / lastModified options; both without one), so that what is left
      // to it is what it answers with 304 or 412: with the file's ETag under serve({ etag: false }),
      // a revalidation by ETag was left to serve(), which ignores it and streamed the whole file.
      // The offload response still carries both validators: without an ETag, Apache's
      // mod_xsendfile sends `ETag: "0"` for every file (docs/deployment/apache.md).
      const plan = servedPlan(ctx)
      const verdict = evaluatePreconditions(ctx.method, ctx.request.headers, {
        etag: plan?.etag !== false ? validators.etag : undefined,
        lastModified: plan?.lastModified !== false ? validators.lastModified : undefined
      })
      if (verdict.status !== 200) {
        debug('offload: %s answered by serve(): %d, %s', JSON.stringify(file.name), verdict.status, verdict.reason)
        return
      }
    }
    // An If-Range date equal to a Last-Modified of the current second: lighttpd, nginx and Caddy
    // compare the date alone and send the range (measured: 1.4.69, 1.22.1, 2.6.2), but such a date is no strong
    // validator — the file may change again within that second, unseen (RFC 9110 §13.1.5, §8.8.2.2)
    // — and a resume would join two versions written in one second. serve() sends the whole file
    // (without that Last-Modified, which lighttpd would otherwise match in the app's 200 too).
    // The Last-Modified the server compares with: the app's for Apache and lighttpd (sent below,
    // clamped to now), the file's own mtime for nginx and Caddy — one in the future (a clock ahead,
    // a copy that kept its date) is weak too, and they sent the range for it.
    if (dateIfRange !== undefined && stat !== undefined) {
      const modified = validators !== undefined ? validators.lastModified : lastModifiedOf(stat, Infinity)
      if (modified !== undefined && dateIfRange === modified && modified > Date.now() - 1000) {
        debug('offload: %s answered by serve(): an If-Range date of the current second (weak)', JSON.stringify(file.name))
        return
      }
    }
    // Nothing stat'ed (a file offloaded by URL): the presentation takes the type the file declares
    // without I/O, if any.
    const presentation = presentationHeaders(download, stat)
    // A CGI-style gateway (Apache mod_proxy_scgi's ProxySCGIInternalRedirect, mod_wsgi) serves the
    // Location with the type its own mod_mime gives the stored name, not the app's (measured: a
    // stored page.html offered as notes.txt or with contentType text/plain went out as text/html,
    // and Chromium ran its script); it keeps the app's policy. So the sandbox is also decided on
    // the type the gateway gives the name it serves.
    const sandboxed = presentation.sandboxed || (rule.backend === 'internal-redirect' && gatewayTypeMayRunScript(download.options, target.value))
    // nginx passes on six of an X-Accel-Redirect response's headers, not Content-Security-Policy
    // nor nosniff: an inline HTML, SVG or XML download, or one of an unknown type Chromium sniffs,
    // would reach the browser without its sandbox, and run script in the app's origin. Node streams
    // those (Caddy's generated config copies both headers).
    if (sandboxed && target.header === 'X-Accel-Redirect' && rule.backend !== 'caddy') {
      debug('offload: %s is shown inline and runs script: streamed, for its Content-Security-Policy', JSON.stringify(file.name))
      return
    }
    // The arguments cost a JSON.stringify and two URL redactions per response: only when logging.
    if (debug.enabled) debug('offload: %s → %s %s: %s', file.path !== undefined ? JSON.stringify(file.path) : loggableUrl(file.url ?? ''), rule.backend, target.header, loggableUrl(target.value))

    // Koa sets a text/plain type for a string body; the download's own type is set after it.
    ctx.body = ''
    ctx.status = 200
    // Header values made here (and by the rules: already checked) go to setHeader directly.
    const res = ctx.res
    res.setHeader('Content-Type', presentation.contentType)
    res.setHeader('Content-Disposition', presentation.contentDisposition)
    res.setHeader('X-Content-Type-Options', NOSNIFF)
    if (sandboxed) appendPolicy(res, SANDBOX)
    // The proxy passes it on (nginx keeps six of the app's headers, this one among them).
    if (presentation.cacheControl !== undefined) res.setHeader('Cache-Control', presentation.cacheControl)
    else if (!res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', DEFAULT_CACHE_CONTROL)
    if (validators !== undefined) {
      // The proxy answers the conditionals with these: the same clamped date streaming sends.
      if (validators.etag !== undefined) res.setHeader('ETag', validators.etag)
      if (validators.lastModified !== undefined) res.setHeader('Last-Modified', formatHttpDate(validators.lastModified))
    }
    res.setHeader(target.header, target.value)
    const controls = target.controls
    if (controls !== undefined) for (const name in controls) res.setHeader(name, controls[name] as string)
  }
}

/**
 * A download a rule covers, offloaded or streamed by the app itself (a request handed back, above):
 * nginx acts on X-Accel-Limit-Rate and X-Accel-Buffering in any response of the app, so the rule's
 * rate holds either way — a client cannot lift it by sending a malformed field or several ranges.
 * Not X-Accel-Expires: nginx's cache of the app's location would keep one user's streamed download
 * for the next; nor X-Accel-Charset: the streamed Content-Type says its own charset. (An offload
 * sets every control again, below.)
 */
function keepRateControls (ctx: Context, target: OffloadTarget): void {
  const controls = target.controls
  if (controls === undefined) return
  for (const name of STREAMED_CONTROLS) {
    const value = controls[name]
    if (value !== undefined) ctx.res.setHeader(name, value)
  }
}
const STREAMED_CONTROLS = ['X-Accel-Limit-Rate', 'X-Accel-Buffering'] as const

/** A number of 19 digits or more, leading zeros aside: from 10^18, which covers 2^63 − 1 and up. */
const HUGE_NUMBER = /[1-9]\d{18}/

/**
 * The first malformed conditional field, which the app ignores and a proxy may read in a way of its
 * own: an If-Modified-Since or If-Unmodified-Since that is not one HTTP-date (or comes in more than
 * one line), an If-Match or
 * If-None-Match that is not `*` or a list of entity-tags, an If-Range next to a GET's Range that is
 * neither one entity-tag nor one HTTP-date.
 */
function malformedField (ctx: Context): string | undefined {
  const method = ctx.method
  const headers = ctx.request.headers
  const match = headers['if-match']
  if (match !== undefined && !isEntityTagList(match)) return 'If-Match'
  const noneMatch = headers['if-none-match']
  if (noneMatch !== undefined && !isEntityTagList(noneMatch)) return 'If-None-Match'
  const modified = headers['if-modified-since']
  if (modified !== undefined && parseHttpDate(modified) === undefined) return 'If-Modified-Since'
  const unmodified = headers['if-unmodified-since']
  if (unmodified !== undefined && parseHttpDate(unmodified) === undefined) return 'If-Unmodified-Since'
  // Node keeps the first line of a repeated date field: ignored by the app, read by the servers.
  if ((modified !== undefined || unmodified !== undefined) && repeatedDateFields(ctx.req.rawHeaders).length > 0) return 'repeated If-Modified-Since or If-Unmodified-Since'
  const ifRange = headers['if-range']
  if (method === 'GET' && headers.range !== undefined && typeof ifRange === 'string' && parseEntityTag(ifRange) === undefined && parseHttpDate(ifRange) === undefined) return 'If-Range'
  return undefined
}

/**
 * Whether a gateway that types the file by the name in `location` could give an inline download a
 * type that runs script. Apache's mod_mime types a name by its rightmost extension that has a type
 * (`page.html.x` is text/html), from its own table (/etc/mime.types), which is not ours: any
 * extension that our table types as active counts, so a `report.com.pdf` is sandboxed too.
 */
function gatewayTypeMayRunScript (options: { attachment?: boolean | undefined, sandbox?: boolean | undefined }, location: string): boolean {
  if (options.attachment !== false || options.sandbox === false) return false
  const path = location.split('?')[0] ?? ''
  let name = path.slice(path.lastIndexOf('/') + 1)
  try { name = decodeURIComponent(name) } catch {}
  return name.split('.').slice(1).some((ext) => ext !== '' && !isPassiveType(lookupContentType(`x.${ext}`)))
}
