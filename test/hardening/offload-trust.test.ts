import test from 'ava'
import { once } from 'node:events'
import { mkdir, mkdtemp, readdir, realpath, rm, utimes, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import { StorageFile } from '../../adapters/flydrive/storage-file.ts'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { negotiated } from '../../source/backends/negotiated.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { PathFile } from '../../source/path-file.ts'
import type { DownloadFile } from '../../source/types.ts'
import { readOffloadValue } from './offload-check.ts'
import { rawRequest } from './raw-http.ts'
import type { RawResponse } from './raw-http.ts'

let root = ''
let server: Server
let port = 0

/** Names Linux allows on disk that try to break out of a header line. */
const hostileNames = [
  'a\r\nX-Injected: 1.txt', 'b\nSet-Cookie: sid=evil.txt', 'c\rLocation: https:\\evil.example.txt', 'd\u2028X-Injected: 2.txt',
  'e\u2029f.txt', 'g\u0085h.txt', 'i\u000bj\u000ck.txt', 'l\tX-Tab: 1.txt', ' m.txt ', 'n\u202egnp.exe', 'o"; filename="evil.exe', 'p%0d%0aX-Injected: 3.txt',
  // Not a possible name on disk (so a 404 for paths), but a possible key or filename option.
  'q\0\r\nX-Injected: 4.txt'
]

const rules: Record<string, { rules: OffloadRule[], header: string | undefined, backend: string, destination: string }> = {}

test.before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'kd-trust-')))
  await mkdir(join(root, 'files'))
  await writeFile(join(root, 'files', 'plain.txt'), 'plain\n')
  for (const name of hostileNames.filter((n) => !n.includes('\0'))) await writeFile(join(root, 'files', name), 'hostile\n')
  // at rest: a file of the current second has a weak ETag until the second ends (etag.ts statEtag)
  const past = new Date(Date.now() - 3_600_000)
  for (const name of await readdir(join(root, 'files'))) await utimes(join(root, 'files', name), past, past)
  const dir = join(root, 'files')
  Object.assign(rules, {
    none: { rules: [], header: undefined, backend: '', destination: '' },
    nginx: { rules: [nginx({ sourceDir: dir, destinationUrl: '/protected/' })], header: 'x-accel-redirect', backend: 'nginx', destination: '/protected/' },
    apache: { rules: [apache({ sourceDir: dir, destinationDir: dir })], header: 'x-sendfile', backend: 'apache', destination: dir },
    lighttpd: { rules: [lighttpd({ sourceDir: dir, destinationDir: dir })], header: 'x-sendfile', backend: 'lighttpd', destination: dir },
    caddy: { rules: [caddy({ sourceDir: dir, destinationUrl: '/protected/' })], header: 'x-accel-redirect', backend: 'caddy', destination: '/protected/' },
    'internal-redirect': { rules: [internalRedirect({ sourceDir: dir, destinationUrl: '/private/' })], header: 'location', backend: 'internal-redirect', destination: '/private/' },
    negotiated: { rules: [negotiated({ allow: ['X-Accel-Redirect'], mapping: { [dir]: '/protected/' } })], header: 'x-accel-redirect', backend: 'either-accel', destination: '/protected/' }
  })
  const disk = new Disk(new FSDriver({ location: dir, visibility: 'public' }))
  const app = new Koa()
  app.silent = true
  const mounted = new Map(Object.entries(rules).map(([name, { rules: list }]) => [name, downloads({ rules: list })]))
  app.use(async (ctx, next) => {
    const [, backend = '', source = '', ...rest] = ctx.path.split('/')
    const mw = mounted.get(backend)
    if (mw === undefined) return await next()
    const name = Buffer.from(rest.join('/'), 'base64url').toString('utf8')
    await mw(ctx, async () => {
      let file: DownloadFile
      if (source === 'path') file = new PathFile(name, { root: dir })
      else if (source === 'key') file = new StorageFile(disk, name)
      else file = new PathFile('plain.txt', { root: dir })
      ctx.body = download(file, source === 'filename' ? { filename: name } : {})
    })
  })
  server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
})

test.after.always(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => { if (server === undefined) resolve(); else server.close(() => { resolve() }) })
  if (root !== '') await rm(root, { recursive: true, force: true })
})

/** The only header names a download response may carry (any case), each at most once. */
const expectedNames = new Set(['content-type', 'content-disposition', 'content-length', 'cache-control', 'etag', 'last-modified', 'accept-ranges',
  'x-content-type-options', 'date', 'connection', 'keep-alive', 'x-accel-redirect', 'x-accel-charset', 'x-sendfile', 'location'])

function checkShape (res: RawResponse, backend: string, what: string): string[] {
  const problems: string[] = []
  const entry = rules[backend]
  if (entry === undefined) return [`unknown backend ${backend}`]
  const counts = new Map<string, number>()
  for (const [name] of res.all) counts.set(name, (counts.get(name) ?? 0) + 1)
  for (const [name, n] of counts) {
    if (!expectedNames.has(name)) problems.push(`${what}: unexpected header ${name}`)
    if (n > 1) problems.push(`${what}: ${n} ${name} headers`)
  }
  const offloads = ['x-accel-redirect', 'x-sendfile', 'location'].filter((n) => counts.has(n))
  if (offloads.some((n) => n !== entry.header)) problems.push(`${what}: offload header ${offloads.join(',')} where only ${String(entry.header)} may appear`)
  if (entry.header !== undefined && counts.has(entry.header)) {
    const value = res.headers[entry.header] ?? ''
    const read = readOffloadValue(entry.backend, value, entry.destination)
    if (typeof read === 'string') problems.push(`${what}: ${entry.header} ${JSON.stringify(value)}: ${read}`)
  }
  return problems
}

const target = (backend: string, source: string, name: string): string => `/${backend}/${source}/${Buffer.from(name, 'utf8').toString('base64url')}`

test('a client cannot select a backend or inject a mapping: with any X-Sendfile-Type / X-Accel-Mapping, every response has exactly the headers of the same request without them', async t => {
  const tricks: Array<Record<string, string>> = [
    { 'X-Sendfile-Type': 'X-Accel-Redirect' },
    { 'X-Sendfile-Type': 'X-Sendfile' },
    { 'X-Sendfile-Type': 'X-Lighttpd-Send-File' },
    { 'X-Sendfile-Type': 'Content-Type' },
    { 'X-Sendfile-Type': 'Location' },
    { 'X-Sendfile-Type': 'X-Accel-Redirect, X-Sendfile' },
    { 'X-Sendfile-Type': 'X-Accel-Redirect', 'X-Accel-Mapping': `${root}/files/=/internal-admin/` },
    { 'X-Sendfile-Type': 'X-Accel-Redirect', 'X-Accel-Mapping': '/=/' },
    { 'X-Accel-Mapping': '/.*=/admin/' },
    { 'X-Accel-Redirect': '/etc/passwd', 'X-Sendfile': '/etc/passwd', Location: '/admin' }
  ]
  const problems: string[] = []
  for (const backend of Object.keys(rules)) {
    const path = target(backend, 'path', 'plain.txt')
    const baseline = await rawRequest(port, 'GET', path, backend === 'negotiated' ? { 'X-Sendfile-Type': 'X-Accel-Redirect' } : {})
    const shape = (res: RawResponse): string => JSON.stringify(res.all.filter(([n]) => n !== 'date'))
    for (const headers of tricks) {
      const sent = backend === 'negotiated' && headers['X-Sendfile-Type'] === undefined ? { ...headers, 'X-Sendfile-Type': 'X-Accel-Redirect' } : headers
      const res = await rawRequest(port, 'GET', path, sent)
      const what = `${backend} ${JSON.stringify(sent)}`
      problems.push(...checkShape(res, backend, what))
      const honoured = backend === 'negotiated' && /^x-accel-redirect$/i.test(sent['X-Sendfile-Type'] ?? '')
      if (backend !== 'negotiated' || honoured) {
        if (shape(res) !== shape(baseline)) problems.push(`${what}: the response differs from the baseline:\n${shape(res)}\n${shape(baseline)}`)
      } else if (['x-accel-redirect', 'x-sendfile', 'location'].some((n) => res.headers[n] !== undefined)) {
        problems.push(`${what}: negotiated() offloaded for a type outside its allow-list`)
      }
      if (res.headers['content-type'] !== 'text/plain; charset=utf-8') problems.push(`${what}: Content-Type became ${res.headers['content-type']}`)
    }
  }
  t.deepEqual(problems, [])
})

test('no header can be smuggled through a file name on disk, a storage key or a filename option: one line per header, only the expected names, offload values clean', async t => {
  const problems: string[] = []
  let offloaded = 0
  for (const backend of Object.keys(rules)) {
    for (const source of ['path', 'key', 'filename']) {
      for (const name of hostileNames) {
        const res = await rawRequest(port, 'GET', target(backend, source, name), backend === 'negotiated' ? { 'X-Sendfile-Type': 'X-Accel-Redirect' } : {})
        const what = `${backend}/${source} ${JSON.stringify(name)}`
        if (res.status >= 500) problems.push(`${what}: ${res.status}`)
        problems.push(...checkShape(res, backend, what))
        if (/x-injected|set-cookie|evil\.example/i.test(res.head.split('\r\n').map((l) => l.split(':')[0]).join('\n'))) problems.push(`${what}: a smuggled header`)
        const disposition = res.headers['content-disposition']
        if (disposition !== undefined && !/^(attachment|inline)(; filename="[^"\\]*(?:\\.[^"\\]*)*")?(; filename\*=UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]+)?$/.test(disposition)) problems.push(`${what}: Content-Disposition ${JSON.stringify(disposition)}`)
        if (res.headers[rules[backend]?.header ?? '-'] !== undefined) offloaded++
      }
    }
  }
  t.deepEqual(problems, [])
  t.true(offloaded > 0, 'some hostile names are offloaded, with clean values (the check sees them)')
})
