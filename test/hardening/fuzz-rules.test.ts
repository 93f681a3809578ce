import test from 'ava'
import { once } from 'node:events'
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Router from '@koa/router'
import fc from 'fast-check'
import Koa from 'koa'
import type { Middleware } from 'koa'
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
import { renderServerConfig } from '../../source/server-config.ts'
import type { ServerName } from '../../source/server-config.ts'
import { makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'
import { pool, rawRequest } from './raw-http.ts'
import type { RawResponse } from './raw-http.ts'
import { fuzzScale, fuzzSeed } from '../helpers/fuzz.ts'

// Several offload rules side by side, through the real proxies: random rule sets (1–5 rules, nested
// and sibling sources over a random tree of hostile names, random destinations and controls) for
// one server at a time. A set whose destinations clash must be refused by downloads() and by the
// config generator alike (an independent model says which do); every other set runs the proxy with
// the configuration `koa-downloads config` generates, in front of an app with those rules, and
// every file of the tree — by path, by URL of a fixed origin, and names differing only by case or
// encoding — must come back with exactly its own bytes, via the first rule that covers it (the app
// records what it sent), with that rule's controls, or streamed by Node when no rule covers it.
// Then the same with two routers, each with its own downloads({ rules }), the config made from the
// union of their rules: each downloads() sees only its own rules, so a union that clashes is
// refused by the generator alone (docs/deployment/nginx.md §1, test/server-config.test.ts).
//
// nginx controls: what the app sends is checked against the covering rule's options; of their
// effects only the charset is visible to the client (Content-Type). X-Accel-Expires is for nginx's
// own cache and must not show (no Expires, no Cache-Control); buffering is not observable, and
// limitRate only as time (rates here are 0 or 50 MB/s; nginx.md cites its own timing test).

const RULE_SETS = 2 * Math.ceil(fuzzScale(12) / 2)
// A seed of its own (test/helpers/fuzz.ts): about four in five random per-route nginx sets clash
// (two routers drawing from one small pool of destinations), so six random ones were all refused
// in one CI run of four, and nothing ran through the proxy. With this seed every test runs sets
// through its server (nginx per-route: 2 of 6). FUZZ_SEED=<n> or random explores other sets.
const SEED = fuzzSeed(3)

/** Directory names: nested and sibling sources, case and NFC/NFD twins, `%41` next to `A`. */
const dirNames = ['a', 'A', 'a b', 'ü', 'u\u0308', '%41', 'd;1', 'x+y', "it's", '日本', 'a#b', 'q?', 'd"q']
/** File names are made of these (and an extension). */
const namePieces = ['a', 'A', 'ü', 'u\u0308', '%41', '%', '+', ';', "'", '日本', ' ', '#', '?', '&', '(1)', '$', '~', ',', '=', '@', '!', '"', '[x]']
const extensions = ['.txt', '.bin', '.html', '.json', '']

interface Tree {
  /** Each directory below the tree's root, as segments; index 0 is the root itself ([]). */
  dirs: string[][]
  /** Each file below the root, as segments. */
  files: string[][]
}

const treeArb: fc.Arbitrary<Tree> = fc.record({
  dirs: fc.array(fc.array(fc.constantFrom(...dirNames), { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 6 }),
  names: fc.array(fc.tuple(fc.nat(), fc.array(fc.constantFrom(...namePieces), { minLength: 1, maxLength: 3 }), fc.constantFrom(...extensions)), { minLength: 6, maxLength: 14 })
}).map(({ dirs, names }) => {
  const all = new Map<string, string[]>([['', []]])
  for (const dir of dirs) for (let i = 1; i <= dir.length; i++) all.set(dir.slice(0, i).join('/'), dir.slice(0, i))
  const dirList = [...all.values()]
  const files = new Map<string, string[]>()
  for (const [index, pieces, ext] of names) {
    const name = pieces.join('') + ext
    if (name === '.' || name === '..') continue
    const file = [...(dirList[index % dirList.length] as string[]), name]
    if (!all.has(file.join('/'))) files.set(file.join('/'), file)
  }
  return { dirs: dirList, files: [...files.values()] }
})

// ---- rules ---------------------------------------------------------------------------------------

type SourceKind = 'dir' | 'url' | 'both' | 'remote'

interface RuleSpec {
  backend: 'nginx' | 'apache' | 'lighttpd' | 'caddy' | 'internal-redirect'
  source: SourceKind
  /** Index into Tree.dirs: the sourceDir, or the origin's directory for sourceUrl. */
  dir: number
  /** destinationUrl, or for Apache/lighttpd: 'same' (= the sourceDir) or 'mirror' (the same tree elsewhere). */
  destination: string
  header?: string | undefined
  buffering?: boolean | undefined
  limitRate?: number | undefined
  expires?: number | false | undefined
  charset?: string | false | undefined
  proxyRefusesSymlinks?: boolean | undefined
}

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 2 })

/** Destinations drawn from a small pool, so that equal, nested and case-twin prefixes are common. */
const urlDestinations = ['/p/', '/P/', '/p/q/', '/pq/', '/dl/', '/d;l/', "/it's/", '/(x)!*/', '/a+b/', '/x/y/', '/x/', '/_o/', '/m/', '/n/', '/k/', '/j/', '/h/', '/g/', '/e/', '/c/', '/b/']

const nginxSpec: fc.Arbitrary<RuleSpec> = fc.record({
  source: fc.constantFrom<SourceKind>('dir', 'dir', 'dir', 'url', 'both', 'remote'),
  dir: fc.nat(),
  destination: fc.constantFrom(...urlDestinations),
  buffering: optional(fc.boolean()),
  limitRate: optional(fc.constantFrom(0, 50_000_000)),
  expires: optional(fc.constantFrom<number | false>(0, 3600, false)),
  charset: optional(fc.constantFrom<string | false>('utf-8', 'UTF-8', 'iso-8859-1', 'koi8-r', false)),
  proxyRefusesSymlinks: optional(fc.boolean())
}).map((spec) => ({
  ...spec,
  backend: 'nginx' as const,
  proxyRefusesSymlinks: spec.source === 'dir' || spec.source === 'both' ? spec.proxyRefusesSymlinks : undefined
}))

const sendfileSpec = (backend: 'apache' | 'lighttpd'): fc.Arbitrary<RuleSpec> => fc.record({
  source: fc.constantFrom<SourceKind>('dir', 'dir', 'url', 'both'),
  dir: fc.nat(),
  destination: fc.constantFrom('same', 'mirror')
}).map((spec) => ({ ...spec, backend }))

const caddySpec: fc.Arbitrary<RuleSpec> = fc.record({
  backend: fc.constantFrom<'caddy' | 'internal-redirect'>('caddy', 'caddy', 'internal-redirect'),
  source: fc.constantFrom<SourceKind>('dir', 'dir', 'url', 'both'),
  dir: fc.nat(),
  destination: fc.constantFrom(...urlDestinations),
  header: optional(fc.constantFrom('X-Accel-Redirect', 'x-accel-redirect', 'X-Caddy-File'))
}).map((spec) => ({ ...spec, header: spec.backend === 'caddy' ? spec.header : undefined }))

/** 1–maxLength rules, sometimes one repeated with other controls (the same location, other headers). */
const specsArb = (one: fc.Arbitrary<RuleSpec>, maxLength: number): fc.Arbitrary<RuleSpec[]> => fc.tuple(
  fc.array(one, { minLength: 1, maxLength }),
  fc.option(fc.tuple(fc.nat(), fc.nat(), one), { nil: undefined })
).map(([specs, repeat]) => {
  if (repeat === undefined) return specs
  const [from, at, other] = repeat
  const base = specs[from % specs.length] as RuleSpec
  const copy: RuleSpec = { ...other, backend: base.backend, source: base.source, dir: base.dir, destination: base.destination }
  if (base.proxyRefusesSymlinks === undefined) copy.proxyRefusesSymlinks = undefined
  if (base.backend !== 'caddy') copy.header = undefined
  return [...specs.slice(0, at % (specs.length + 1)), copy, ...specs.slice(at % (specs.length + 1))]
})

interface World {
  root: string
  mirror: string
  originUrl: string
  tree: Tree
}

const dirOf = (world: World, spec: RuleSpec): string[] => world.tree.dirs[spec.dir % world.tree.dirs.length] as string[]
const pathOf = (base: string, segments: readonly string[]): string => segments.length === 0 ? base : join(base, ...segments)
const urlPath = (segments: readonly string[]): string => segments.map(encodeURIComponent).join('/')
const sourceUrlOf = (world: World, segments: readonly string[]): string => `${world.originUrl}/o/${segments.length === 0 ? '' : urlPath(segments) + '/'}`

function buildRule (world: World, spec: RuleSpec): OffloadRule {
  const dir = dirOf(world, spec)
  const source = {
    sourceDir: spec.source === 'dir' || spec.source === 'both' ? pathOf(world.root, dir) : undefined,
    sourceUrl: spec.source === 'url' || spec.source === 'both' ? sourceUrlOf(world, dir) : undefined
  }
  switch (spec.backend) {
    case 'nginx': {
      const controls = { buffering: spec.buffering, limitRate: spec.limitRate, expires: spec.expires, charset: spec.charset }
      if (spec.source === 'remote') return nginx({ remote: true, destinationUrl: spec.destination, ...controls })
      return nginx({ ...source, destinationUrl: spec.destination, ...controls, proxyRefusesSymlinks: spec.proxyRefusesSymlinks })
    }
    case 'apache':
    case 'lighttpd': {
      const destinationDir = pathOf(spec.destination === 'mirror' ? world.mirror : world.root, dir)
      return spec.backend === 'apache' ? apache({ ...source, destinationDir }) : lighttpd({ ...source, destinationDir })
    }
    case 'caddy': return caddy({ ...source, destinationUrl: spec.destination, header: spec.header })
    case 'internal-redirect': return internalRedirect({ ...source, destinationUrl: spec.destination })
  }
}

// ---- the model: which sets clash, which rule covers which file, what it sends ----------------------

/** Where a rule's destination is dispatched, or undefined (Apache and lighttpd name directories). */
function spaceOf (spec: RuleSpec): string | undefined {
  if (spec.backend === 'nginx') return 'nginx'
  if (spec.backend === 'caddy') return `caddy ${(spec.header ?? 'X-Accel-Redirect').toLowerCase()}`
  if (spec.backend === 'internal-redirect') return 'location'
  return undefined
}
/** What the proxy serves under the destination: the source directory, or the origin. */
const targetOf = (spec: RuleSpec): string => spec.source === 'remote' ? 'any' : spec.source === 'url' ? `url ${spec.dir}` : `dir ${spec.dir}`
/** The charset an nginx rule sends, which its location must know (rules sharing one that both send one must agree). */
const charsetOf = (spec: RuleSpec): string | undefined => typeof spec.charset === 'string' ? spec.charset.toLowerCase() : undefined

/** Why two rules cannot share one proxy (README "Offload: rules"; docs/deployment/nginx.md §1). */
function clashOf (world: World, specs: readonly RuleSpec[]): string | undefined {
  const norm = (spec: RuleSpec): RuleSpec => ({ ...spec, dir: spec.dir % world.tree.dirs.length })
  for (let i = 0; i < specs.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = norm(specs[j] as RuleSpec)
      const b = norm(specs[i] as RuleSpec)
      if (spaceOf(a) === undefined || spaceOf(a) !== spaceOf(b)) continue
      if (a.destination === b.destination) {
        if (targetOf(a) !== targetOf(b)) return `rules ${j} and ${i}: same destination ${a.destination}, other sources`
        if (a.backend === 'nginx' && charsetOf(a) !== undefined && charsetOf(b) !== undefined && charsetOf(a) !== charsetOf(b)) return `rules ${j} and ${i}: one location, charsets ${charsetOf(a)} and ${charsetOf(b)}`
      } else if (a.destination.startsWith(b.destination) || b.destination.startsWith(a.destination)) {
        return `rules ${j} and ${i}: nested destinations ${a.destination} and ${b.destination}`
      }
    }
  }
  return undefined
}

const below = (source: readonly string[], file: readonly string[]): string[] | undefined =>
  file.length > source.length && source.every((s, i) => file[i] === s) ? file.slice(source.length) : undefined

interface Pick { index: number, spec: RuleSpec, segments: string[] }

/** The first rule covering a file known by path or by URL (offload-rule.ts, read as documented). */
function pickRule (world: World, specs: readonly RuleSpec[], file: readonly string[], by: 'path' | 'url'): Pick | undefined {
  for (const [index, spec] of specs.entries()) {
    if (spec.source === 'remote') {
      if (by === 'url') return { index, spec, segments: [...file] }
      continue
    }
    const viaPath = spec.source === 'dir' || spec.source === 'both'
    const viaUrl = spec.source === 'url' || spec.source === 'both'
    if (by === 'path' ? !viaPath : !viaUrl) continue
    const segments = below(dirOf(world, spec), file)
    if (segments === undefined) continue
    // nginx and Caddy re-encode a fixed origin's path writing + and ; unescaped: another URL at
    // some origins, so such names are streamed (proxy-path.ts sameOnTheWire, proxies.md)
    if (by === 'url' && (spec.backend === 'nginx' || spec.backend === 'caddy') && segments.some((s) => /[+;]/.test(s))) continue
    // Caddy takes the value raw as a URI: no "?" (it starts the query), no trailing space (trimmed)
    if (spec.backend === 'caddy' && (segments.some((s) => s.includes('?')) || /[ \t]$/.test(segments.at(-1) ?? ''))) continue
    // Apache's raw X-Sendfile value would lose a trailing space
    if (spec.backend === 'apache' && / $/.test(segments.at(-1) ?? '')) continue
    return { index, spec, segments }
  }
  return undefined
}

const fromLatin1 = (value: string): string => Buffer.from(value, 'latin1').toString('utf8')
const decodeAll = (parts: string[]): string[] | undefined => { try { return parts.map(decodeURIComponent) } catch { return undefined } }

/** Whether `value` is the offload value of `pick` for the file (decoded, so independent of the escaping chosen). */
function valueProblem (world: World, pick: Pick, fileUrl: string, value: string | undefined, header: string | undefined): string | undefined {
  const { spec, segments } = pick
  const expectedHeader = spec.backend === 'nginx' ? 'x-accel-redirect' : spec.backend === 'internal-redirect' ? 'location' : spec.backend === 'caddy' ? (spec.header ?? 'X-Accel-Redirect').toLowerCase() : 'x-sendfile'
  if (header !== expectedHeader || value === undefined) return `expected ${expectedHeader} from rule ${pick.index}, the app sent ${header ?? 'nothing'}`
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)
  switch (spec.backend) {
    case 'nginx':
    case 'internal-redirect':
      if (spec.source === 'remote') {
        const url = new URL(fileUrl)
        return value === `${spec.destination}http/${url.host}${url.pathname.replaceAll('%', '%25')}` ? undefined : `remote value ${value}`
      }
      return /^[\x21-\x7e]+$/.test(value) && value.startsWith(spec.destination) && same(decodeAll(value.slice(spec.destination.length).split('/')), segments) ? undefined : `value ${value} is not ${spec.destination} + ${JSON.stringify(segments)}`
    case 'caddy':
      return fromLatin1(value) === spec.destination + segments.join('/') ? undefined : `value ${JSON.stringify(fromLatin1(value))}`
    case 'apache':
    case 'lighttpd': {
      const dir = pathOf(spec.destination === 'mirror' ? world.mirror : world.root, dirOf(world, spec))
      const decoded = spec.backend === 'apache' ? fromLatin1(value) : decodeAll(value.split('/'))?.join('/')
      return decoded === join(dir, ...segments) ? undefined : `value ${JSON.stringify(decoded)} is not in ${dir}`
    }
  }
}

/**
 * The Content-Type the client gets for an nginx offload (docs/deployment/nginx.md §1, `charset`):
 * the app's, plus `; charset=<X-Accel-Charset>` when it has none; a type that names a charset keeps
 * it (nginx has no charset_map to recode: measured, documented).
 */
function nginxContentType (appType: string, accelCharset: string | undefined): string {
  if (accelCharset === undefined || /;\s*charset=/i.test(appType)) return appType
  return `${appType}; charset=${accelCharset}`
}

// ---- running it --------------------------------------------------------------------------------

interface Sent { header?: string | undefined, value?: string | undefined, controls: Record<string, string>, contentType?: string | undefined, disposition?: string | undefined }

const offloadHeaders = ['x-accel-redirect', 'x-accel-buffering', 'x-accel-limit-rate', 'x-accel-expires', 'x-accel-charset', 'x-sendfile', 'x-caddy-file']

/** The app's record of what it answered each X-Fuzz-Id with (its offload header and controls). */
function recorder (log: Map<string, Sent>): Middleware {
  return async (ctx, next) => {
    await next()
    const header = (name: string): string | undefined => {
      const value: unknown = ctx.response.get(name)
      return typeof value === 'string' && value !== '' ? value : undefined
    }
    const sent: Sent = { controls: {}, contentType: header('content-type'), disposition: header('content-disposition') }
    for (const name of ['x-accel-redirect', 'x-sendfile', 'x-caddy-file', 'location']) {
      const value = header(name)
      if (value !== undefined) { sent.header = name; sent.value = value }
    }
    for (const name of ['x-accel-buffering', 'x-accel-limit-rate', 'x-accel-expires', 'x-accel-charset']) {
      const value = header(name)
      if (value !== undefined) sent.controls[name] = value
    }
    log.set(ctx.get('x-fuzz-id'), sent)
  }
}

/** `/prefix/<segments>` → the decoded segments, or undefined. */
function segmentsOf (path: string, prefix: string): string[] | undefined {
  if (!path.startsWith(prefix)) return undefined
  return decodeAll(path.slice(prefix.length).split('/'))
}

/** Files by path (`/f/…`, `/z/…` outside the tree) and by URL of the origin (`/u/…`). */
function fileRoutes (world: World, elsewhere: string, routePrefix: string): Middleware {
  return (ctx) => {
    const path = ctx.path.slice(routePrefix.length)
    for (const [prefix, base] of [['/f/', world.root], ['/z/', elsewhere]] as const) {
      const segments = segmentsOf(path, prefix)
      if (segments !== undefined) { ctx.body = download(new PathFile(segments.join('/'), { root: base })); return }
    }
    if (path.startsWith('/u/')) ctx.body = download(new HttpFile(`${world.originUrl}/o/${path.slice(3)}`))
  }
}

interface Setup {
  /** Rule sets, each with the client prefix of its route (`''` for app-wide). */
  groups: Array<{ prefix: string, specs: RuleSpec[] }>
}

interface Case { target: string, label: string, group: number, file: string[] | undefined, by: 'path' | 'url' | 'outside', bytes: Buffer | undefined, range?: boolean }

let nextId = 0

async function serveTree (tree: Tree): Promise<{ world: World, elsewhere: string, outside: Map<string, Buffer>, bytes: Map<string, Buffer>, origin: Server, cleanup: () => Promise<void> }> {
  const base = await realpath(await mkdtemp(join(tmpdir(), 'kd-fuzz-rules-')))
  const root = join(base, 'tree')
  const mirror = join(base, 'mirror')
  const elsewhere = join(base, 'elsewhere')
  const bytes = new Map<string, Buffer>()
  for (const top of [root, mirror]) {
    for (const dir of tree.dirs) await mkdir(pathOf(top, dir), { recursive: true })
    for (const [i, file] of tree.files.entries()) {
      // Each file's bytes name it: a wrong file shows; one is empty
      const content = i === 1 ? Buffer.alloc(0) : Buffer.from(`${JSON.stringify(file)} ${'•'.repeat(i * 7)}\n`)
      bytes.set(file.join('/'), content)
      await writeFile(pathOf(top, file), content)
    }
  }
  await mkdir(elsewhere)
  const outside = new Map([['z.txt', Buffer.from('outside every source\n')], ['a b.bin', Buffer.from('also outside\n')]])
  for (const [name, content] of outside) await writeFile(join(elsewhere, name), content)
  makeWorldReadable(base)
  // The fixed origin of the sourceUrl rules: the same tree, streamed by Node.
  const originApp = new Koa()
  originApp.silent = true
  originApp.use(downloads())
  originApp.use((ctx) => {
    const segments = segmentsOf(ctx.path, '/o/')
    if (segments !== undefined) ctx.body = new PathFile(segments.join('/'), { root })
  })
  const origin = originApp.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  const world: World = { root, mirror, originUrl: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, tree }
  return {
    world,
    elsewhere,
    outside,
    bytes,
    origin,
    cleanup: async () => {
      origin.closeAllConnections()
      await new Promise<void>((resolve) => { origin.close(() => { resolve() }) })
      await rm(base, { recursive: true, force: true })
    }
  }
}

/** Request targets whose names differ from a real file's only by case, normalisation or `%41`/`A`. */
function twins (file: readonly string[]): string[][] {
  const out: string[][] = []
  const name = file.at(-1) as string
  const dirs = file.slice(0, -1)
  for (const other of [name.toUpperCase(), name.toLowerCase(), name.normalize('NFD'), name.normalize('NFC'), name.replaceAll('%41', 'A'), name.replaceAll('A', '%41')]) {
    if (other !== name) out.push([...dirs, other])
  }
  return out
}

/** Lower-case hex escapes: the same name for any decoder. */
const lowerHex = (target: string): string => target.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())

function casesFor (world: World, setup: Setup, bytes: Map<string, Buffer>, outside: Map<string, Buffer>): Case[] {
  const cases: Case[] = []
  const known = (segments: string[]): Buffer | undefined => bytes.get(segments.join('/'))
  for (const [group, { prefix }] of setup.groups.entries()) {
    for (const file of world.tree.files) {
      const content = known(file) as Buffer
      cases.push({ target: `${prefix}/f/${urlPath(file)}`, label: 'path', group, file, by: 'path', bytes: content })
      cases.push({ target: `${prefix}/u/${urlPath(file)}`, label: 'url', group, file, by: 'url', bytes: content })
      if (content.length >= 3) cases.push({ target: `${prefix}/f/${urlPath(file)}`, label: 'path, Range', group, file, by: 'path', bytes: content, range: true })
      if (/%[0-9A-F]{2}/.test(urlPath(file))) cases.push({ target: lowerHex(`${prefix}/f/${urlPath(file)}`), label: 'path, lower-case escapes', group, file, by: 'path', bytes: content })
      for (const twin of twins(file)) {
        cases.push({ target: `${prefix}/f/${urlPath(twin)}`, label: 'twin by path', group, file: twin, by: 'path', bytes: known(twin) })
      }
    }
    // directories are not files, whoever answers
    for (const dir of world.tree.dirs.slice(1)) cases.push({ target: `${prefix}/f/${urlPath(dir)}`, label: 'directory', group, file: dir, by: 'path', bytes: undefined })
    for (const [name, content] of outside) cases.push({ target: `${prefix}/z/${encodeURIComponent(name)}`, label: 'outside', group, file: undefined, by: 'outside', bytes: content })
  }
  return cases
}

/** Every problem of one response, or []. */
function problemsOf (server: ServerName, world: World, setup: Setup, c: Case, res: RawResponse, sent: Sent | undefined): string[] {
  const problems: string[] = []
  if (res.status >= 500) problems.push(`${res.status}`)
  for (const [name] of res.all) if (offloadHeaders.includes(name)) problems.push(`the offload header ${name} reached the client`)
  if (res.status === 200 && c.bytes !== undefined && server !== 'lighttpd' && res.headers.location !== undefined) problems.push('a Location on the 200')
  const specs = setup.groups[c.group]?.specs ?? []
  const pick = c.file === undefined || c.by === 'outside' ? undefined : pickRule(world, specs, c.file, c.by)
  if (c.bytes === undefined) {
    // no such file: 404 from the app or the proxy, never another file's bytes
    if (res.status !== 404) problems.push(`a missing file or a directory → ${res.status}, expected 404`)
    return problems
  }
  const expected = c.range === true ? c.bytes.subarray(1, 3) : c.bytes
  // Caddy does not percent-decode a Location: internalRedirect values with an escape are refused
  // with 404 (docs/deployment/caddy.md §5, "One limitation, pinned by tests")
  const caddyRefused = (server === 'caddy' && pick?.spec.backend === 'internal-redirect' && sent?.value?.includes('%') === true)
  if (caddyRefused) {
    if (res.status !== 404) problems.push(`internalRedirect value with % through Caddy → ${res.status}, documented 404`)
  } else {
    const status = c.range === true ? 206 : 200
    if (res.status !== status) problems.push(`status ${res.status}, expected ${status}`)
    else if (!res.body.equals(expected)) problems.push(`wrong bytes: ${JSON.stringify(res.body.toString().slice(0, 80))}`)
  }
  if (sent === undefined) return [...problems, 'the app recorded nothing']
  if (pick === undefined) {
    if (sent.header !== undefined) problems.push(`no rule covers it, yet the app sent ${sent.header}: ${sent.value}`)
    return problems
  }
  const fileUrl = `${world.originUrl}/o/${urlPath(c.file as string[])}`
  const wrong = valueProblem(world, pick, fileUrl, sent.value, sent.header)
  if (wrong !== undefined) problems.push(wrong)
  if (caddyRefused || res.status >= 300) return problems
  // what the client sees of the download's presentation: the app's, through any proxy
  const dispositions = res.all.filter(([n]) => n === 'content-disposition').map(([, v]) => v)
  if (dispositions.length !== 1 || dispositions[0] !== sent.disposition) problems.push(`Content-Disposition ${JSON.stringify(dispositions)}, the app sent ${sent.disposition}`)
  if (pick.spec.backend === 'nginx') {
    const spec = pick.spec
    // the rule's own controls, and only its own
    const controls: Record<string, string> = {}
    if (spec.buffering !== undefined) controls['x-accel-buffering'] = spec.buffering ? 'yes' : 'no'
    if (spec.limitRate !== undefined) controls['x-accel-limit-rate'] = String(spec.limitRate)
    if (spec.expires !== undefined) controls['x-accel-expires'] = spec.expires === false ? '0' : String(spec.expires)
    const charset = typeof spec.charset === 'string' ? spec.charset : undefined
    if (charset !== undefined) controls['x-accel-charset'] = charset
    if (JSON.stringify(sent.controls, Object.keys(sent.controls).sort()) !== JSON.stringify(controls, Object.keys(controls).sort())) {
      problems.push(`controls ${JSON.stringify(sent.controls)}, rule ${pick.index} has ${JSON.stringify(controls)}`)
    }
    // charset names are case-insensitive (RFC 9110 §8.3.2): nginx writes the X-Accel-Charset's spelling
    const type = nginxContentType(sent.contentType ?? '', charset)
    if (res.headers['content-type']?.toLowerCase() !== type.toLowerCase()) problems.push(`Content-Type ${res.headers['content-type']}, expected ${type} (app: ${sent.contentType}, X-Accel-Charset ${charset})`)
    // X-Accel-Expires is for nginx's own cache, not the client's (docs/deployment/nginx.md §1): the
    // client gets the download's own Cache-Control (the default, private), no Expires of nginx's
    if (res.headers.expires !== undefined || res.headers['cache-control'] !== 'private') problems.push(`Expires ${res.headers.expires} / Cache-Control ${res.headers['cache-control']} reached the client (the download's is private)`)
  } else if (res.headers['content-type'] !== sent.contentType) {
    problems.push(`Content-Type ${res.headers['content-type']}, the app sent ${sent.contentType}`)
  }
  return problems
}

async function runSetup (server: ServerName, tree: Tree, setup: Setup, counts: Map<string, number>): Promise<void> {
  const served = await serveTree(tree)
  const { world } = served
  try {
    const groups = setup.groups.map(({ prefix, specs }) => ({ prefix, specs, rules: specs.map((spec) => buildRule(world, spec)) }))
    const union = groups.flatMap((g) => g.rules)
    const unionSpecs = groups.flatMap((g) => g.specs)
    // Setup: each downloads() refuses a set of its own that clashes; the config generator refuses
    // the union that clashes. Both say so in a TypeError naming the destinations.
    const middlewares: Middleware[] = []
    for (const group of groups) {
      const clash = clashOf(world, group.specs)
      let error: unknown
      try { middlewares.push(downloads({ rules: group.rules })) } catch (e) { error = e }
      if (clash === undefined && error !== undefined) throw new Error(`downloads() refused rules the model accepts: ${String(error)}\n${JSON.stringify(group.specs)}`)
      if (clash !== undefined && !(error instanceof TypeError && /^downloads\(\): .*(destinationUrl|charset)/.test(error.message))) throw new Error(`downloads() accepted rules that clash (${clash}): ${String(error)}\n${JSON.stringify(group.specs)}`)
    }
    const unionClash = clashOf(world, unionSpecs)
    let configError: unknown
    try { renderServerConfig(server, union) } catch (e) { configError = e }
    if (unionClash === undefined && configError !== undefined) throw new Error(`renderServerConfig() refused rules the model accepts: ${String(configError)}\n${JSON.stringify(unionSpecs)}`)
    if (unionClash !== undefined && !(configError instanceof TypeError && /^renderServerConfig\(\): .*(destinationUrl|charset)/.test(configError.message))) throw new Error(`renderServerConfig() accepted rules that clash (${unionClash}): ${String(configError)}`)
    counts.set(unionClash === undefined ? 'started' : 'refused', (counts.get(unionClash === undefined ? 'started' : 'refused') ?? 0) + 1)
    if (middlewares.length < groups.length || unionClash !== undefined) return

    const log = new Map<string, Sent>()
    const app = new Koa()
    app.silent = true
    // The app's own failures (a 502 it answered itself records nothing): named in a problem's line.
    const appErrors = new Map<string, string>()
    app.on('error', (error: Error & { status?: number }, ctx?: Koa.Context) => {
      const cause = (error.cause as Error | undefined)?.message
      appErrors.set(ctx?.get('x-fuzz-id') ?? '', `${error.status ?? 500} ${error.message}${cause === undefined ? '' : ` (${cause})`}`)
    })
    app.use(recorder(log))
    if (groups.length === 1 && groups[0]?.prefix === '') {
      app.use(middlewares[0] as Middleware)
      app.use(fileRoutes(world, served.elsewhere, ''))
    } else {
      for (const [i, group] of groups.entries()) {
        const router = new Router({ prefix: group.prefix })
        router.get('/{*rest}', middlewares[i] as Middleware, fileRoutes(world, served.elsewhere, group.prefix))
        app.use(router.routes())
      }
    }
    const appServer = app.listen(0, '127.0.0.1')
    await once(appServer, 'listening')
    let proxy: RunningProxy | undefined
    try {
      proxy = await startProxy(server, { rules: union, appPort: (appServer.address() as AddressInfo).port })
      const running = proxy
      const problems: string[] = []
      await pool(casesFor(world, setup, served.bytes, served.outside), 8, async (c) => {
        const id = String(++nextId)
        const res = await rawRequest(running.port, 'GET', c.target, { 'X-Fuzz-Id': id, ...(c.range === true ? { Range: 'bytes=1-2' } : {}) })
        const found = problemsOf(server, world, setup, c, res, log.get(id))
        const sent = log.get(id)
        for (const label of [c.label, sent?.header === undefined ? `${res.status} streamed` : `${res.status} via ${sent.header}`]) counts.set(label, (counts.get(label) ?? 0) + 1)
        if (found.length > 0) problems.push(`${c.label} ${c.target} → ${res.status}: ${found.join('; ')}\n  app sent ${JSON.stringify(log.get(id))}${appErrors.has(id) ? `\n  app error: ${appErrors.get(id) ?? ''}` : ''}`)
      })
      if (problems.length > 0) {
        throw new Error(`${problems.length} problem(s) with rules\n${groups.map((g) => `${g.prefix || 'app-wide'}: ${JSON.stringify(g.specs)}`).join('\n')}\ntree ${JSON.stringify(tree.dirs)}\n${problems.slice(0, 12).join('\n')}\n--- config ---\n${running.config}\n--- ${server} output ---\n${running.logs().slice(-2000)}`)
      }
    } finally {
      await proxy?.stop()
      appServer.closeAllConnections()
      await new Promise<void>((resolve) => { appServer.close(() => { resolve() }) })
    }
  } finally {
    await served.cleanup()
  }
}

/**
 * App-wide sets that every run of a server's test starts with: counterexamples of random seeds.
 * Caddy: an internalRedirect() rule whose sourceUrl path holds a "%" (the directory "%41", so
 * `/o/%2541/`), with a sourceDir as well (FUZZ_SEED=-1395020069, then expected 404) or alone (its
 * generated `path_regexp %` ran after `uri replace` had put that path in front: 404 for every file).
 */
const percentDir: Tree = { dirs: [[], ['%41']], files: [['%41', 'a.txt'], ['b.txt']] }
const appWideExamples: Partial<Record<ServerName, Array<[Tree, Setup]>>> = {
  caddy: (['both', 'url'] as const).map((source) => [percentDir, { groups: [{ prefix: '', specs: [{ backend: 'internal-redirect', source, dir: 1, destination: '/p/' }] }] }])
}

const servers: Array<[ServerName, fc.Arbitrary<RuleSpec>]> = [
  ['nginx', nginxSpec],
  ['apache', sendfileSpec('apache')],
  ['lighttpd', sendfileSpec('lighttpd')],
  ['caddy', caddySpec]
]

for (const [server, spec] of servers) {
  const { test: proxied } = proxyTest(server)
  for (const perRoute of [false, true]) {
    proxied(`${server}: random ${perRoute ? 'per-route rule sets (two routers, config from the union)' : 'app-wide rule sets'}: clashes refused alike by downloads() and the config; every file arrives whole via the first rule covering it, with that rule's controls, or streamed`, async (t) => {
      t.timeout(fuzzScale(300_000))
      const counts = new Map<string, number>()
      const setupArb: fc.Arbitrary<Setup> = perRoute
        ? fc.tuple(specsArb(spec, 3), specsArb(spec, 3)).map(([a, b]) => ({ groups: [{ prefix: '/r1', specs: a }, { prefix: '/r2', specs: b }] }))
        : specsArb(spec, 5).map((specs) => ({ groups: [{ prefix: '', specs }] }))
      try {
        await fc.assert(fc.asyncProperty(treeArb, setupArb, async (tree, setup) => {
          await runSetup(server, tree, setup, counts)
        }), {
          numRuns: perRoute ? RULE_SETS / 2 : RULE_SETS,
          endOnFailure: true,
          examples: perRoute ? [] : appWideExamples[server] ?? [],
          ...(SEED === undefined ? {} : { seed: SEED })
        })
      } catch (error) {
        t.log(String((error as Error).cause ?? error))
        throw error
      }
      t.log([...counts].map(([k, n]) => `${k}×${n}`).join(' '))
      t.true((counts.get('started') ?? 0) > 0, 'some rule sets ran through the proxy')
    })
  }
}
