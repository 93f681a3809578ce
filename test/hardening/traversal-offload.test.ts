import test from 'ava'
import fc from 'fast-check'
import { relative, resolve } from 'node:path'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { negotiated } from '../../source/backends/negotiated.ts'
import { nginx } from '../../source/backends/nginx.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import type { DownloadFile } from '../../source/types.ts'
import { fill, label, loadCorpus, variants } from './corpus.ts'
import { readOffloadValue } from './offload-check.ts'
import { toTarget } from './raw-http.ts'

const sourceDir = '/srv/files'
const sourceUrl = 'https://cdn.example/media/'
const places = { root: sourceDir, secret: '/srv/secret.txt' }

/** Every backend, matching on sourceDir and sourceUrl, with the destination its value must stay below. */
const rules: Array<{ rule: OffloadRule, backend: string, destination: string, request?: Record<string, string> }> = [
  { rule: nginx({ sourceDir, sourceUrl, destinationUrl: '/protected/' }), backend: 'nginx', destination: '/protected/' },
  { rule: apache({ sourceDir, sourceUrl, destinationDir: '/var/www/files' }), backend: 'apache', destination: '/var/www/files' },
  { rule: lighttpd({ sourceDir, sourceUrl, destinationDir: '/var/www/files' }), backend: 'lighttpd', destination: '/var/www/files' },
  { rule: caddy({ sourceDir, sourceUrl, destinationUrl: '/protected/' }), backend: 'caddy', destination: '/protected/' },
  { rule: internalRedirect({ sourceDir, sourceUrl, destinationUrl: '/private/' }), backend: 'internal-redirect', destination: '/private/' },
  {
    rule: negotiated({ allow: ['X-Accel-Redirect'], mapping: { [sourceDir]: '/protected/' } }),
    backend: 'either-accel',
    destination: '/protected/',
    request: { 'x-sendfile-type': 'X-Accel-Redirect' }
  },
  {
    rule: negotiated({ allow: ['X-Accel-Redirect'], mapping: { [sourceDir]: '/protected/' }, accel: 'encoded' }),
    backend: 'nginx',
    destination: '/protected/',
    request: { 'x-sendfile-type': 'X-Accel-Redirect' }
  },
  {
    rule: negotiated({ allow: ['X-Accel-Redirect'], mapping: { [sourceDir]: '/protected/' }, accel: 'raw' }),
    backend: 'caddy',
    destination: '/protected/',
    request: { 'x-sendfile-type': 'X-Accel-Redirect' }
  },
  { rule: negotiated({ allow: ['X-Sendfile'], sourceDir }), backend: 'either-sendfile', destination: sourceDir, request: { 'x-sendfile-type': 'X-Sendfile' } },
  { rule: negotiated({ allow: ['X-Sendfile'], sourceDir, sendfile: 'raw' }), backend: 'apache', destination: sourceDir, request: { 'x-sendfile-type': 'X-Sendfile' } },
  { rule: negotiated({ allow: ['X-Sendfile'], sourceDir, sendfile: 'encoded' }), backend: 'lighttpd', destination: sourceDir, request: { 'x-sendfile-type': 'x-sendfile' } }
]

/** A custom wrapper (not a PathFile): its path and url are whatever the application put there. */
const fileAt = (path: string | undefined, url: string | undefined): DownloadFile => ({
  name: 'x',
  path,
  url,
  stat: async () => ({}),
  open: async () => { throw new Error('never opened') }
})

test('offload matching: for every payload as a raw file.path below sourceDir, a value is emitted only for the same file, below the destination, with no "..", NUL, CR or LF', t => {
  const problems: string[] = []
  let emitted = 0
  let tried = 0
  for (const { payload } of loadCorpus()) {
    for (const value of variants(fill(payload, places))) {
      const path = `${sourceDir}/${value}`
      for (const { rule, backend, destination, request } of rules) {
        tried++
        const target = rule.match(fileAt(path, undefined), { method: 'GET', headers: request ?? {} })
        if (target === undefined) continue
        emitted++
        const segments = readOffloadValue(backend, target.value, destination)
        const what = `${rule.backend}→${backend} ${label(path)}: ${target.header} ${label(target.value)}`
        if (typeof segments === 'string') {
          problems.push(`${what}: ${segments}`)
          continue
        }
        // The value must name exactly the file the path names (resolved lexically), inside sourceDir.
        const expected = relative(sourceDir, resolve(path))
        if (expected === '..' || expected.startsWith('../') || segments.join('/') !== expected) problems.push(`${what}: names ${JSON.stringify(segments.join('/'))}, the path is ${JSON.stringify(expected)}`)
      }
    }
  }
  t.log(`${tried} matches tried, ${emitted} values emitted, all below their destination`)
  t.deepEqual(problems.slice(0, 30), [], `${problems.length} problems`)
  t.true(emitted > 100, 'legitimate names are offloaded (the check sees values)')
})

test('offload matching: for every payload appended to a sourceUrl, a value is emitted only below the destination and only for the URL\'s normalised path below sourceUrl', t => {
  const problems: string[] = []
  let emitted = 0
  for (const { payload } of loadCorpus()) {
    for (const value of variants(fill(payload, places))) {
      const url = sourceUrl + toTarget(value)
      let parsed: URL
      try { parsed = new URL(url) } catch { continue }
      for (const { rule, backend, destination, request } of rules) {
        const target = rule.match(fileAt(undefined, url), { method: 'GET', headers: request ?? {} })
        if (target === undefined) continue
        emitted++
        const what = `${rule.backend} ${label(url)}: ${target.header} ${label(target.value)}`
        const segments = readOffloadValue(backend, target.value, destination)
        if (typeof segments === 'string') {
          problems.push(`${what}: ${segments}`)
          continue
        }
        // What the origin would serve: the WHATWG-normalised path, decoded, below the source path.
        const below = parsed.pathname.startsWith('/media/') ? parsed.pathname.slice('/media/'.length).split('/').map((s) => decodeURIComponent(s)) : undefined
        if (below === undefined || segments.join('/') !== below.join('/')) problems.push(`${what}: names ${JSON.stringify(segments.join('/'))}, the URL is ${parsed.pathname}`)
      }
    }
  }
  t.deepEqual(problems.slice(0, 30), [], `${problems.length} problems`)
  t.true(emitted > 50)
})

test('offload matching: nginx remote values name exactly the file URL (as normalised), below its /_remote/<scheme>/<host>/ and, with sourceUrl, below that prefix; no dot segment nginx would resolve', t => {
  const problems: string[] = []
  let emitted = 0
  for (const restricted of [false, true]) {
    const rule = nginx({ remote: true, destinationUrl: '/_remote/', ...(restricted ? { sourceUrl } : {}) })
    for (const { payload } of loadCorpus()) {
      for (const value of variants(fill(payload, places))) {
        const url = `${sourceUrl}${toTarget(value)}?sig=a%2Fb`
        let parsed: URL
        try { parsed = new URL(url) } catch { continue }
        const target = rule.match(fileAt(undefined, url), { method: 'GET', headers: {} })
        if (target === undefined) continue
        emitted++
        const what = `${restricted ? 'restricted' : 'any'} ${label(url)} → ${label(target.value)}`
        checkRemote(what, target.value, parsed, restricted, problems)
      }
    }
  }
  t.deepEqual(problems.slice(0, 30), [], `${problems.length} problems`)
  t.true(emitted > 50)
})

function checkRemote (what: string, value: string, parsed: URL, restricted: boolean, problems: string[]): void {
  {
    {
      if (!/^[\x21-\x7e]+$/.test(value)) problems.push(`${what}: not visible ASCII`)
      const q = value.indexOf('?')
      const path = q === -1 ? value : value.slice(0, q)
      const search = q === -1 ? '' : value.slice(q)
      if (search !== (parsed.search === '?' ? '' : parsed.search)) problems.push(`${what}: the query is not carried unchanged`)
      let decoded: string
      try { decoded = decodeURIComponent(path) } catch { problems.push(`${what}: does not decode`); return }
      if (decoded !== `/_remote/https/cdn.example${parsed.pathname}`) problems.push(`${what}: does not name the URL's own path ${parsed.pathname}`)
      if (restricted && !decoded.startsWith('/_remote/https/cdn.example/media/')) problems.push(`${what}: leaves the sourceUrl prefix`)
      for (const form of [path, decoded]) {
        if (form.split('/').slice(1).some((s) => s === '' || s === '.' || s === '..')) problems.push(`${what}: a dot or empty segment in ${JSON.stringify(form)}`)
      }
    }
  }
}

test('offload matching: a sibling directory sharing the source prefix, the source itself and its parent are never covered', t => {
  for (const path of ['/srv/files-evil/secret.txt', '/srv/files', '/srv/files/', '/srv', '/srv/files/..', '/srv/filesx', '/srv/files/../files-evil/x']) {
    for (const { rule, request } of rules) {
      t.is(rule.match(fileAt(path, undefined), { method: 'GET', headers: request ?? {} }), undefined, `${rule.backend} ${path}`)
    }
  }
  for (const url of ['https://cdn.example/media', 'https://cdn.example/media-evil/x', 'https://cdn.example/media/', 'https://cdn.example.evil/media/x', 'http://cdn.example/media/x', 'https://user:pw@cdn.example/media/x', 'https://cdn.example:444/media/x']) {
    for (const { rule, request } of rules) {
      t.is(rule.match(fileAt(undefined, url), { method: 'GET', headers: request ?? {} }), undefined, `${rule.backend} ${url}`)
    }
  }
})

test('offload matching (fast-check): any path built from a hostile alphabet yields either no value or one that names exactly that file below the destination', t => {
  const alphabet = ['.', '..', '/', '\\', '%', '%2e', '%2f', '%00', '\0', '\r', '\n', ' ', '?', '#', ';', 'é', '．', '／', '\u2028', '\ud800', 'a', 'b', '~', '*']
  const piece = fc.constantFrom(...alphabet)
  const pathArb = fc.array(fc.array(piece, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('')), { minLength: 1, maxLength: 6 }).map((segments) => segments.join('/'))
  let emitted = 0
  fc.assert(fc.property(pathArb, fc.constantFrom(...rules), (tail, { rule, backend, destination, request }) => {
    const path = `${sourceDir}/${tail}`
    const target = rule.match(fileAt(path, undefined), { method: 'GET', headers: request ?? {} })
    if (target === undefined) return true
    emitted++
    const segments = readOffloadValue(backend, target.value, destination)
    if (typeof segments === 'string') throw new Error(`${JSON.stringify(path)} → ${target.header} ${JSON.stringify(target.value)}: ${segments}`)
    const expected = relative(sourceDir, resolve(path))
    if (expected === '..' || expected.startsWith('../') || segments.join('/') !== expected) {
      throw new Error(`${JSON.stringify(path)} → ${JSON.stringify(target.value)} names ${JSON.stringify(segments.join('/'))}, the path is ${JSON.stringify(expected)}`)
    }
    return true
  }), { numRuns: 2000 })
  t.true(emitted > 100, `${emitted} values emitted`)
})
