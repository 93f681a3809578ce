import test from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { PathFile } from '../../source/path-file.ts'
import type { ServerName } from '../../source/server-config.ts'
import { makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import { examples, mtime, request } from './fuzz-requests.ts'
import { rawRequest } from './raw-http.ts'
import type { RawResponse } from './raw-http.ts'
import { checkMultipart, checkResponse, parseDate } from './rfc9110-check.ts'
import type { Sent, Served } from './rfc9110-check.ts'
import { fuzzScale } from '../helpers/fuzz.ts'

// The requests of fuzz-headers.test.ts (random Range, If-Range, If-Match, If-None-Match,
// If-Modified-Since, If-Unmodified-Since, GET and HEAD), sent through each real proxy running the
// configuration `koa-downloads config <server>` generates, in front of a Koa app that offloads: the
// app answers every authorised GET/HEAD with the same empty 200 + offload header, and the proxy
// answers the conditionals and ranges (reference/proxies.md §4) — except for Apache and lighttpd,
// which get the app's validators: there the app evaluates the preconditions first and answers a
// 304 or 412 itself, because those servers get some of them wrong. Each response is checked by the
// independent RFC 9110 checker against the validators a plain GET through that proxy shows, and:
// no offload header reaches the client, Content-Disposition is exactly the app's on 200/206, and
// a HEAD carries the headers of the same GET.

const RUNS = fuzzScale(60)
const CACHE_CONTROL = 'private, max-age=60'

interface Target {
  label: string
  server: ServerName
  /** The response header of the app that hands the download to the proxy. */
  offloadHeader: string
  rules: (protectedDir: string, originUrl: string) => OffloadRule[]
  /** Client paths fuzzed, each the download of a file whose bytes are `bytes[<name>]`. */
  paths: string[]
  /** The proxy gets the app's validators, and the app answers failing preconditions itself (offload.ts). */
  appPreconditions?: true
}

/** A name every offload header must carry encoded or raw (space, `#`, `;`, `+`, `,`, `'`, parentheses). */
const oddName = "a b#;+,'(x).bin"
const bytes: Record<string, Buffer> = { 'data.bin': randomBytes(1000), 'empty.txt': Buffer.alloc(0), [oddName]: randomBytes(700) }
/** The file name of a client path (its last segment, decoded). */
const nameOf = (path: string): string => decodeURIComponent(path.split('/').at(-1) ?? '')
const oddPath = `/files/${encodeURIComponent(oddName)}`

/** Files no rule covers: streamed by Node through the proxy, which must leave the answer as it is. */
const streamedPaths = ['/origin/data.bin', '/origin/empty.txt']

const targets: Target[] = [
  {
    label: 'nginx',
    server: 'nginx',
    offloadHeader: 'x-accel-redirect',
    rules: (dir, origin) => [
      nginx({ sourceDir: dir, destinationUrl: '/protected/' }),
      nginx({ sourceUrl: origin, destinationUrl: '/_origin/' })
    ],
    paths: ['/files/data.bin', '/files/empty.txt', oddPath, '/remote/data.bin', ...streamedPaths]
  },
  {
    label: 'apache',
    server: 'apache',
    offloadHeader: 'x-sendfile',
    rules: (dir) => [apache({ sourceDir: dir, destinationDir: dir })],
    paths: ['/files/data.bin', '/files/empty.txt', oddPath, ...streamedPaths],
    appPreconditions: true
  },
  {
    label: 'lighttpd',
    server: 'lighttpd',
    offloadHeader: 'x-sendfile',
    rules: (dir) => [lighttpd({ sourceDir: dir, destinationDir: dir })],
    paths: ['/files/data.bin', '/files/empty.txt', oddPath, ...streamedPaths],
    appPreconditions: true
  },
  {
    label: 'caddy',
    server: 'caddy',
    offloadHeader: 'x-accel-redirect',
    rules: (dir, origin) => [
      caddy({ sourceDir: dir, destinationUrl: '/protected/' }),
      caddy({ sourceUrl: origin, destinationUrl: '/_origin/' })
    ],
    paths: ['/files/data.bin', '/files/empty.txt', oddPath, '/remote/data.bin', ...streamedPaths]
  },
  {
    label: 'internalRedirect via caddy',
    server: 'caddy',
    offloadHeader: 'location',
    rules: (dir) => [internalRedirect({ sourceDir: dir, destinationUrl: '/protected/' })],
    paths: ['/files/data.bin', '/files/empty.txt', ...streamedPaths]
  }
]

const notDate = (value: string | undefined): boolean => value !== undefined && parseDate(value) === undefined

/** Whether the proxy answers `path` with the app's own validators: Apache and lighttpd (sent them), nginx for a local file (offload.ts). */
const sharesValidators = (target: Target, path: string): boolean => target.appPreconditions === true || (target.label === 'nginx' && path.startsWith('/files/'))

/** Whether If-Modified-Since or If-Unmodified-Since is not one HTTP-date. */
function malformedDate (headers: Record<string, string>): boolean {
  return notDate(headers['if-modified-since']) || notDate(headers['if-unmodified-since'])
}

/** Whether If-Match or If-None-Match is neither `*` nor a clean list of entity-tags. */
function malformedTagList (headers: Record<string, string>): boolean {
  return [headers['if-match'], headers['if-none-match']].some((value) => value !== undefined && !/^[ \t]*\*[ \t]*$/.test(value) && tagsOf(value) === undefined)
}

/** Whether a GET has a Range and an If-Range that is neither one entity-tag nor one HTTP-date. */
function malformedIfRange (method: string, headers: Record<string, string>): boolean {
  const ifRange = headers['if-range']
  return method === 'GET' && headers.range !== undefined && ifRange !== undefined && !/^(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/.test(ifRange) && notDate(ifRange)
}

/** Headers that differ between two responses of the same resource for reasons of their own. */
const volatile = new Set(['date', 'connection', 'keep-alive', 'server', 'age'])
const offloadHeaders = ['x-accel-redirect', 'x-accel-buffering', 'x-accel-limit-rate', 'x-accel-expires', 'x-accel-charset', 'x-sendfile', 'x-sendfile2', 'x-lighttpd-send-file', 'location']

interface Running {
  proxy: RunningProxy
  /** The X-Fuzz-Id of every request the app answered with its offload header. */
  offloaded: Set<string>
  /** What a plain GET through the proxy shows, by path. */
  served: Map<string, Served>
  stop: () => Promise<void>
}


async function start (target: Target): Promise<Running> {
  const root = await mkdtemp(join(tmpdir(), 'kd-fuzz-offload-'))
  const protectedDir = join(root, 'protected')
  const originDir = join(root, 'origin')
  for (const dir of [protectedDir, originDir]) {
    await mkdir(dir)
    for (const [name, content] of Object.entries(bytes)) {
      await writeFile(join(dir, name), content)
      await utimes(join(dir, name), mtime / 1000, mtime / 1000)
    }
  }
  makeWorldReadable(root)
  // The app is listening before its rules exist: the fixed-origin rule needs its URL (the origin is
  // the app's own /origin/, streamed by Node: no rule covers it).
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const rules = target.rules(protectedDir, `${appUrl}/origin/`)
  const offloaded = new Set<string>()
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    await next()
    if (ctx.response.get(target.offloadHeader) !== undefined) offloaded.add(ctx.get('x-fuzz-id'))
  })
  app.use(downloads({ rules }))
  app.use((ctx) => {
    let name: string
    try { name = nameOf(ctx.path) } catch { return }
    if (!(name in bytes)) return
    if (ctx.path.startsWith('/files/')) ctx.body = download(new PathFile(name, { root: protectedDir }), { cacheControl: CACHE_CONTROL })
    else if (ctx.path.startsWith('/origin/')) ctx.body = download(new PathFile(name, { root: originDir }), { cacheControl: CACHE_CONTROL })
    else if (ctx.path.startsWith('/remote/')) ctx.body = download(new HttpFile(`${appUrl}/origin/${name}`), { cacheControl: CACHE_CONTROL })
  })
  server.on('request', app.callback())
  let proxy: RunningProxy
  try {
    proxy = await startProxy(target.server, { rules, appPort: (server.address() as AddressInfo).port })
  } catch (error) {
    server.close()
    await rm(root, { recursive: true, force: true })
    throw error
  }
  const served = new Map<string, Served>()
  for (const path of target.paths) {
    const res = await rawRequest(proxy.port, 'GET', path)
    const file = bytes[nameOf(path)] as Buffer
    if (res.status !== 200 || !res.body.equals(file)) throw new Error(`${target.label}: a plain GET ${path} → ${res.status}\n${res.head}\n${proxy.logs()}`)
    const lastModified = res.headers['last-modified']
    served.set(path, { bytes: file, etag: res.headers.etag, lastModified: lastModified === undefined ? undefined : Date.parse(lastModified) })
  }
  return {
    proxy,
    offloaded,
    served,
    stop: async () => {
      await proxy.stop()
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      await rm(root, { recursive: true, force: true })
    }
  }
}

const outcomeOf = (res: RawResponse): string => res.status === 206 && res.headers['content-type']?.startsWith('multipart/') === true ? '206 multipart' : String(res.status)

/** The header lines of a response that must be the same for a HEAD and its GET. */
function stableHeaders (res: RawResponse): string[] {
  return res.all.filter(([name]) => !volatile.has(name)).map(([name, value]) => `${name}: ${value}`).sort()
}

/** Every problem of one response beyond the RFC 9110 checker's: offload leaks, Content-Disposition, Cache-Control, If-Match. */
function offloadProblems (path: string, sent: Sent, res: RawResponse, served: Served): string[] {
  const problems: string[] = []
  for (const [name] of res.all) if (offloadHeaders.includes(name)) problems.push(`the offload header ${name} reached the client`)
  const name = nameOf(path)
  const dispositions = res.all.filter(([n]) => n === 'content-disposition').map(([, v]) => v)
  if (res.status === 200 || res.status === 206) {
    if (dispositions.length !== 1 || dispositions[0] !== `attachment; filename="${name}"`) problems.push(`${res.status} with Content-Disposition ${JSON.stringify(dispositions)}`)
    if (res.headers['cache-control'] !== CACHE_CONTROL) problems.push(`${res.status} with Cache-Control ${res.headers['cache-control']}`)
  } else if (res.status >= 400 && dispositions.length !== 0) problems.push(`${res.status} with Content-Disposition ${JSON.stringify(dispositions)}`)
  // RFC 9110 §13.1.1: If-Match that lists only other entity-tags (strong comparison) → 412.
  const ifMatch = sent.headers['if-match']
  const tags = ifMatch === undefined ? undefined : tagsOf(ifMatch)
  if (tags !== undefined && tags.length > 0 && served.etag !== undefined && !tags.includes(served.etag) && res.status !== 412) {
    problems.push(`If-Match lists none of the current ETag ${served.etag}: expected 412, got ${res.status}`)
  }
  // RFC 9110 §15.4.5: a 304 carries the Cache-Control the 200 would have.
  if (res.status === 304 && res.headers['cache-control'] !== CACHE_CONTROL) problems.push(`304 with Cache-Control ${res.headers['cache-control']}`)
  return problems
}

// ---- the proxies' own deviations ---------------------------------------------------------------
// Each was measured here, cannot be changed by the configuration koa-downloads generates, and is
// documented where cited. Each is tolerated only for the proxies named and only in the exact shape
// described; the checker itself is unchanged.

/** The quoted entity-tags of a clean comma list (empty elements allowed), or undefined. */
function tagsOf (list: string): string[] | undefined {
  if (!/^[ \t]*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"[ \t]*)?(?:,[ \t]*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"[ \t]*)?)*$/.test(list)) return undefined
  return list.match(/(?:W\/)?"[^"]*"/g) ?? []
}
const listsWeak = (list: string | undefined, etag: string | undefined): boolean =>
  list !== undefined && etag !== undefined && (tagsOf(list)?.some((tag) => tag.replace(/^W\//, '') === etag.replace(/^W\//, '')) ?? false)

interface Deviation {
  where: string
  servers: ServerName[]
  covers: (problem: string, sent: Sent, res: RawResponse, served: Served) => boolean
}

const deviations: Deviation[] = [
  {
    // RFC 9110 §15.4.5: a 304 SHOULD NOT carry representation metadata beyond the listed fields.
    where: 'docs/deployment/<server>.md, "Conditional and range requests: what the server answers": a 304',
    // (Apache's and lighttpd's 304s are the app's own: offload.ts)
    servers: ['nginx', 'caddy'],
    covers: (problem, _sent, res) => res.status === 304 && /^304 with content-(type|disposition)$/.test(problem)
  },
  {
    // RFC 9110 §13.1.3: If-Modified-Since MUST be ignored when If-None-Match is present.
    where: 'docs/deployment/nginx.md: If-None-Match with If-Modified-Since',
    servers: ['nginx'],
    covers: (problem, sent, res) => [200, 206, 416].includes(res.status) && sent.headers['if-modified-since'] !== undefined &&
      /^If-None-Match lists the current ETag .*: expected 304, got (200|206|416)$/.test(problem)
  },
  {
    // RFC 9110 §13.2.2: If-Unmodified-Since is evaluated only without If-Match.
    where: 'docs/deployment/{nginx,apache}.md: If-Match with If-Unmodified-Since',
    servers: ['nginx', 'apache'],
    covers: (problem, sent, res) => res.status === 412 && sent.headers['if-unmodified-since'] !== undefined && problem === 'If-Match lists the current strong ETag, yet 412'
  },
  {
    where: 'docs/deployment/apache.md: If-Match with a weak entity-tag in the list',
    servers: ['apache'],
    covers: (problem, sent, res) => res.status === 412 && (sent.headers['if-match'] ?? '').includes('W/') && problem === 'If-Match lists the current strong ETag, yet 412'
  },
  {
    // RFC 9110 §15.5.17: a 416 SHOULD carry Content-Range: bytes */<size>.
    where: 'docs/deployment/{apache,lighttpd,caddy}.md: 416 without Content-Range',
    servers: ['apache', 'lighttpd', 'caddy'],
    covers: (problem, _sent, res) => res.status === 416 && problem.startsWith('416: Content-Range undefined')
  },
  {
    where: 'docs/deployment/apache.md: its 416 page is close-delimited',
    servers: ['apache'],
    covers: (problem, _sent, res) => res.status === 416 && res.headers['content-length'] === undefined && /close/i.test(res.headers.connection ?? '') &&
      problem === "416: Content-Length is not the error body's length"
  },
  {
    // The proxy writes its own 412/416 page with the headers the app sent along with the offload.
    where: 'docs/deployment/<server>.md, "Conditional and range requests: what the server answers"',
    servers: ['nginx', 'apache', 'caddy'],
    covers: (problem, _sent, res) => (res.status === 412 || res.status === 416) && /^41[26] with (etag|last-modified|content-disposition|Content-Disposition \[.*\])$/.test(problem)
  },
  {
    // Go's http.ServeContent (Caddy 2.6.2's file_server): a suffix range on an empty file, or a
    // `-0` among several ranges, gives the range "first-(first-1)".
    where: 'docs/deployment/caddy.md: suffix ranges on an empty file, and -0',
    servers: ['caddy'],
    covers: (problem, _sent, res) => res.status === 206 && /bytes (\d+)-(-?\d+)\//.test(problem) &&
      Number(/bytes (\d+)-(-?\d+)\//.exec(problem)?.[2]) === Number(/bytes (\d+)-(-?\d+)\//.exec(problem)?.[1]) - 1
  },
  {
    where: 'docs/deployment/apache.md: HEAD of an empty file',
    servers: ['apache'],
    covers: (problem, sent, res, served) => sent.method === 'HEAD' && served.bytes.length === 0 && res.headers['content-length'] === undefined &&
      problem === '200: Content-Length undefined is not the size 0'
  },
  {
    // Not a deviation: chunked framing is as valid as Content-Length (the checker asks for the
    // Content-Length koa-downloads itself always sends). Apache chunks a long multipart body.
    where: 'RFC 9112 §6.1',
    servers: ['apache'],
    covers: (problem, _sent, res) => res.status === 206 && res.complete && res.headers['transfer-encoding'] === 'chunked' && problem.startsWith('206: Content-Length undefined')
  }
]

/** HEAD with a Range is answered as the GET would be, without the body (RFC 9110 §14.2: Range is for GET only). */
const headRangeServers = new Set<ServerName>(['nginx', 'apache', 'caddy'])
/** A Range with a number past 64 bits (19 digits or more, leading zeros aside): the app streams its GET where the server shares its validators. */
function hugeRange (headers: Record<string, string>): boolean {
  return /[1-9]\d{18}/.test(headers.range ?? '')
}
/** Their HEAD of an error status differs from the GET in Content-Length or Content-Type (the error body's). */
const headErrorBodyServers = new Set<ServerName>(['apache', 'caddy'])

function untolerated (target: Target, problems: string[], sent: Sent, res: RawResponse, served: Served): string[] {
  return problems.filter((problem) => !deviations.some((d) => d.servers.includes(target.server) && d.covers(problem, sent, res, served)))
}

for (const target of targets) {
  const { available, test: proxied } = proxyTest(target.server)
  let running: Running | undefined
  if (available) {
    test.before(async () => { running = await start(target) })
    test.after.always(async () => { await running?.stop() })
  }
  const context = (): Running => {
    if (running === undefined) throw new Error(`${target.label} did not start (see test.before)`)
    return running
  }

  if (target.paths.includes('/remote/data.bin')) {
    proxied(`${target.label}: GET with two ranges of a file at a fixed origin → 206 multipart/byteranges with both parts, streamed by the app (offloaded, the origin's multipart body came under the download's Content-Type)`, async (t) => {
      const { proxy, offloaded } = context()
      const res = await rawRequest(proxy.port, 'GET', '/remote/data.bin', { range: 'bytes=0-9,200-209', 'x-fuzz-id': `${target.label} two ranges` })
      const data = bytes['data.bin'] as Buffer
      t.is(res.status, 206)
      const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(res.headers['content-type'] ?? '')?.[1]
      t.truthy(boundary, `Content-Type: ${res.headers['content-type']}`)
      t.deepEqual(checkMultipart(res.body, boundary ?? '', data), [])
      t.true(res.body.includes(Buffer.concat([Buffer.from('Content-Range: bytes 200-209/1000\r\n\r\n'), data.subarray(200, 210)])))
      t.is(res.headers['content-disposition'], 'attachment; filename="data.bin"')
      t.false(offloaded.has(`${target.label} two ranges`), 'the app streamed it')
    })
  }

  for (const path of target.paths) {
    for (const conditionals of [false, true]) {
      const headers = conditionals ? 'Range, If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since' : 'Range and If-Range'
      proxied(`fuzz offload, ${target.label}: ${headers} on GET/HEAD ${path} → a valid RFC 9110 response, no offload header, HEAD = GET`, async (t) => {
        t.timeout(fuzzScale(60_000))
        const { proxy, offloaded, served: servedByPath } = context()
        const served = servedByPath.get(path) as Served
        const statuses = new Map<string, number>()
        let id = 0
        /** Sends one request, and proves that the app offloaded it (the proxy answered it). */
        const send = async (method: string, headers: Record<string, string>): Promise<RawResponse> => {
          const tag = `${target.label} ${path} ${conditionals ? 'c' : 'r'} ${++id}`
          const res = await rawRequest(proxy.port, method, path, { ...headers, 'x-fuzz-id': tag })
          // Several ranges of a file at an origin are streamed by the app (offload.ts): the proxy
          // would hand the client the origin's multipart body under the download's own type.
          // So is, where the proxy's validators are the app's (Apache, lighttpd, nginx's local files),
          // a request with an If-Modified-Since or If-Unmodified-Since that is not one HTTP-date, an
          // If-Match or If-None-Match that is not `*` or a list of entity-tags, or a GET with a Range
          // and an If-Range that is neither one entity-tag nor one HTTP-date: nginx and Apache read
          // some of those their own way (offload.ts); and so is there a Range with a number past 64
          // bits, which the servers answer 416 where the range is satisfiable (Caddy's block drops it).
          const streamed = path.startsWith('/origin/') || (path.startsWith('/remote/') && method === 'GET' && (headers.range ?? '').includes(',')) ||
            (sharesValidators(target, path) && (malformedIfRange(method, headers) || malformedDate(headers) || malformedTagList(headers) || (method === 'GET' && hugeRange(headers))))
          // Apache and lighttpd: a 304 or 412 may come from the app, which evaluates the
          // preconditions first, or from the server (an empty If-Match, which the app ignores);
          // anything else must have been offloaded.
          const eitherWay = target.appPreconditions === true && (res.status === 304 || res.status === 412)
          if (!eitherWay && offloaded.has(tag) === streamed) throw new Error(`the app ${streamed ? 'offloaded' : 'did not offload'} ${method} ${path} ${JSON.stringify(headers)} (${res.status})`)
          return res
        }
        try {
          await fc.assert(fc.asyncProperty(request(served, conditionals), async (sent: Sent) => {
            const res = await send(sent.method, sent.headers)
            const outcome = outcomeOf(res)
            statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1)
            let problems: string[]
            if (sent.method === 'HEAD' && sent.headers.range !== undefined && (res.status === 206 || res.status === 416) && headRangeServers.has(target.server)) {
              // The server applies the Range to a HEAD (tolerated, see headRangeServers): the head must
              // then be the one of the GET with the same headers, and the GET must be right.
              const get = await send('GET', sent.headers)
              problems = untolerated(target, [...checkResponse({ ...sent, method: 'GET' }, get, served), ...offloadProblems(path, sent, get, served)], { ...sent, method: 'GET' }, get, served)
              if (res.body.length !== 0) problems.push('a body on a HEAD')
              // (a GET may chunk what the HEAD announces with no framing at all)
              const boundaryless = (r: RawResponse): string[] => stableHeaders(r).filter((line) => !line.startsWith('transfer-encoding:')).map((line) => line.replace(/boundary=\S+/, 'boundary=…'))
              // Except where the app streams the GET and the server answers the HEAD: a malformed
              // If-Range, which nginx reads as a date (the GET is then the whole file, as the RFC
              // says, and the HEAD nginx's range: docs/deployment/nginx.md, "HEAD with a Range"); a
              // Range with a number past 64 bits (the GET gets the range, checked above; the HEAD
              // nginx's 416, or Apache's range of the other specs).
              const ifRangeStreamed = target.server === 'nginx' && sharesValidators(target, path) && malformedIfRange('GET', sent.headers)
              const streamedGet = ifRangeStreamed || (sharesValidators(target, path) && hugeRange(sent.headers))
              if (streamedGet) {
                if (ifRangeStreamed && get.status === 206) problems.push('the GET with a malformed If-Range got the range')
              } else if (get.status !== res.status || boundaryless(res).join('\n') !== boundaryless(get).join('\n')) problems.push(`HEAD with Range differs from its GET:\nHEAD ${res.status} ${stableHeaders(res).join(' | ')}\nGET  ${get.status} ${stableHeaders(get).join(' | ')}`)
            } else {
              problems = untolerated(target, [...checkResponse(sent, res, served), ...offloadProblems(path, sent, res, served)], sent, res, served)
            }
            if (sent.method === 'HEAD') {
              // HEAD ignores Range (RFC 9110 §14.2): compare with the GET without Range and If-Range.
              const { range: _range, 'if-range': _ifRange, ...rest } = sent.headers
              const get = await send('GET', rest)
              const skip = new Set<string>()
              if (get.status >= 400 && headErrorBodyServers.has(target.server)) { skip.add('content-length'); skip.add('content-type') }
              if (target.server === 'apache' && served.bytes.length === 0) skip.add('content-length')
              const lines = (r: RawResponse): string => stableHeaders(r).filter((line) => !skip.has(line.split(':')[0] ?? '')).join(' | ')
              if (sent.headers.range !== undefined && headRangeServers.has(target.server) && (res.status === 206 || res.status === 416)) {
                // compared with its GET above
              } else if (get.status !== res.status) problems.push(`HEAD → ${res.status} but GET → ${get.status}`)
              else if (lines(res) !== lines(get)) problems.push(`HEAD headers differ from GET's:\nHEAD ${lines(res)}\nGET  ${lines(get)}`)
            }
            if (problems.length > 0) throw new Error(`${problems.join('; ')}\nrequest: ${sent.method} ${path} ${JSON.stringify(sent.headers)}\nresponse head: ${res.head}`)
          }), { numRuns: RUNS, examples: examples(served) })
        } catch (error) {
          t.log(String((error as Error).cause ?? error))
          t.log(proxy.logs().slice(-3000))
          throw error
        }
        t.log(`statuses: ${[...statuses].sort().map(([s, n]) => `${s}×${n}`).join(' ')}`)
        const reached = (...outcomes: string[]): boolean => outcomes.every((o) => statuses.has(o))
        const empty = path.endsWith('empty.txt')
        if (conditionals) t.true(reached('200', '304', '412'), 'the generators reach every precondition outcome')
        else if (empty) t.true(reached('200', '416') || reached('200'), 'an empty file: 200 (or 416 for a range)')
        else t.true(reached('200', '206', '206 multipart', '416'), 'the generators reach every range outcome')
      })
    }
  }
}

