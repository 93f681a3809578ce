import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { caddy } from '../../source/backends/caddy.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import { activePage, sha256 } from '../helpers/app.ts'
import { proxiedApp, runCli } from '../helpers/offload-suite.ts'
import { startProxy } from '../helpers/proxies.ts'

// `koa-downloads check` through a real nginx running the generated config: what it accepts, and
// what it cannot see.
const { test, context } = proxiedApp({
  server: 'nginx',
  rules: ({ protectedDir }) => [nginx({ sourceDir: protectedDir, destinationUrl: '/protected/' })],
  prepare: async ({ protectedDir }) => { await writeFile(join(protectedDir, 'empty.txt'), '') }
})

const emptySha256 = sha256(new Uint8Array())
const notProven = '  - not proven: that the proxy, not the app, sent the bytes (a file no rule covers is streamed and looks the same);\n' +
  '    check the app itself, bypassing the proxy: it fails naming the offload header when a rule matches\n'

test('check via nginx: an empty file nginx sends for the offload passes with --file or --sha256, and without them fails saying how to pass', async (t) => {
  t.timeout(60_000) // node processes, slow on a loaded CI machine
  const { proxy, app, fixtures } = context()
  const url = proxy.url + '/files/empty.txt'
  const file = join(fixtures.protectedDir, 'empty.txt')
  const good = await runCli(['check', url, '--file', file])
  t.is(good.stderr, '')
  t.is(good.stdout, `koa-downloads check OK ${url}: 200, 0 bytes, sha256 ${emptySha256}\n` +
    '  - no offload header reached the client (x-accel-redirect, x-sendfile, x-lighttpd-send-file, x-sendfile2, Location)\n' +
    `  - bytes match ${file}\n` +
    '  - Content-Type: text/plain; charset=utf-8\n' +
    '  - Content-Disposition: attachment; filename="empty.txt"\n' + notProven)
  t.is(good.code, 0)
  t.is(app.last('/files/empty.txt')?.headers['x-accel-redirect'], '/protected/empty.txt', 'nginx, not the app, sent it')
  const hashed = await runCli(['check', url, '--sha256', emptySha256])
  t.is(hashed.code, 0, hashed.stderr)
  const unsaid = await runCli(['check', url])
  t.is(unsaid.code, 1)
  t.is(unsaid.stderr, `koa-downloads check FAILED ${url}: 200, 0 bytes, sha256 ${emptySha256}\n` +
    '  - the body is empty: the proxy passed the offload response through instead of sending the file (for a file that is really empty, give --file or --sha256)\n')
  const direct = await runCli(['check', app.url + '/files/empty.txt', '--file', file])
  t.is(direct.code, 1, 'the app itself, bypassing nginx, still fails: the offload header reached the client')
  t.regex(direct.stderr, /^koa-downloads check FAILED .*\n {2}- the offload header x-accel-redirect: \/protected\/empty\.txt reached the client/)
})

test('check via nginx: a file no rule covers, streamed by the app, passes too, and the output says that is not proven either way', async (t) => {
  t.timeout(60_000)
  const { proxy, app } = context()
  const url = proxy.url + '/public/public.txt'
  const streamed = await runCli(['check', url, '--sha256', sha256(Buffer.from('streamed by node\n'))])
  t.is(streamed.code, 0, streamed.stderr)
  t.is(app.last('/public/public.txt')?.headers['x-accel-redirect'], undefined, 'the app streamed it')
  t.true(streamed.stdout.endsWith(notProven), streamed.stdout)
  // What tells them apart is the app's own answer: no offload header for this path.
  const direct = await runCli(['check', app.url + '/public/public.txt'])
  t.is(direct.code, 0, direct.stderr)
})

// A caddy({ header }) rule sends a header of its own name, which no fixed list knows.
const caddyRules = (protectedDir: string) => [caddy({ sourceDir: protectedDir, destinationUrl: '/protected/', header: 'X-Caddy-File' })]
const viaCaddy = proxiedApp({
  server: 'caddy',
  rules: ({ protectedDir }) => caddyRules(protectedDir),
  prepare: async ({ protectedDir }) => { await writeFile(join(protectedDir, 'empty.txt'), '') }
})

viaCaddy.test('check via Caddy, caddy({ header }): an empty file Caddy sends passes; its header leaked by a mis-wired Caddy, or from the app itself, fails naming it, empty file or not', async (t) => {
  t.timeout(120_000)
  const { proxy, app, fixtures } = viaCaddy.context()
  const file = join(fixtures.protectedDir, 'empty.txt')
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-check-'))
  const module = join(dir, 'rules.mjs')
  await writeFile(module, `export const rules = ${JSON.stringify(caddyRules(fixtures.protectedDir))}\n`)
  // The matcher looks at another header name, as in a config written for the default rule.
  const miswired = await startProxy('caddy', {
    rules: caddyRules(fixtures.protectedDir),
    appPort: app.port,
    configFor: ({ port, prefix, appPort }) => renderServerConfig('caddy', caddyRules(fixtures.protectedDir), { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
      .replaceAll('header X-Caddy-File', 'header X-Accel-Redirect')
  })
  t.teardown(async () => { await miswired.stop(); await rm(dir, { recursive: true }) })

  const served = await runCli(['check', proxy.url + '/files/empty.txt', '--file', file, '--rules', module])
  t.is(served.stderr, '')
  t.is(served.code, 0)
  t.true(served.stdout.includes('\n  - no offload header reached the client (x-accel-redirect, x-sendfile, x-lighttpd-send-file, x-sendfile2, x-caddy-file, Location)\n'), served.stdout)
  t.is(app.last('/files/empty.txt')?.headers['x-caddy-file'], '/protected/empty.txt', 'Caddy, not the app, sent it')
  t.is((await runCli(['check', proxy.url + '/files/empty.txt', '--file', file])).code, 0, 'no header of the proxy\'s answer looks like an offload header')

  const leaked = (value: string): string => `  - the offload header x-caddy-file: ${value} reached the client: the proxy did not intercept it (is the app reached directly, or does the proxy config not cover this path? see koa-downloads config)\n`
  const suspect = (value: string): string => `  - the empty response carries x-caddy-file: ${value} (a path), which looks like an offload header that reached the client: the proxy did not intercept it (name a rule's own header with --rules or --offload-header)\n`
  const emptyBody = '  - the body is empty: the proxy passed the offload response through instead of sending the file\n'
  for (const base of [miswired.url, app.url]) {
    const url = base + '/files/empty.txt'
    const named = await runCli(['check', url, '--file', file, '--rules', module])
    t.is(named.code, 1, base)
    t.is(named.stderr, `koa-downloads check FAILED ${url}: 200, 0 bytes, sha256 ${emptySha256}\n` + leaked('/protected/empty.txt'))
    const byName = await runCli(['check', url, '--file', file, '--offload-header', 'x-caddy-file'])
    t.is(byName.code, 1, base)
    t.is(byName.stderr, named.stderr)
    const unnamed = await runCli(['check', url, '--file', file])
    t.is(unnamed.code, 1, base)
    t.is(unnamed.stderr, `koa-downloads check FAILED ${url}: 200, 0 bytes, sha256 ${emptySha256}\n` + suspect('/protected/empty.txt'))
    const big = base + '/files/big.bin'
    const bytes = await runCli(['check', big, '--sha256', fixtures.big.sha256])
    t.is(bytes.code, 1, base)
    t.is(bytes.stderr, `koa-downloads check FAILED ${big}: 200, 0 bytes, sha256 ${emptySha256}\n` + suspect('/protected/big.bin') + emptyBody)
  }
})

test('check via nginx, --rules with --file: a location without "internal" (every protected file open to any client) fails naming the internal URL; the generated one is refused and says so', async (t) => {
  t.timeout(120_000)
  const { proxy, app, fixtures } = context()
  const rules = [nginx({ sourceDir: fixtures.protectedDir, destinationUrl: '/protected/' })]
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-check-'))
  const module = join(dir, 'rules.mjs')
  await writeFile(module, `export const rules = ${JSON.stringify(rules)}\n`)
  const open = await startProxy('nginx', {
    rules,
    appPort: app.port,
    configFor: ({ port, prefix, appPort }) => renderServerConfig('nginx', rules, { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
      .replace(/^\s*internal;\n/m, '')
  })
  t.teardown(async () => { await open.stop(); await rm(dir, { recursive: true }) })
  const file = join(fixtures.protectedDir, fixtures.big.name)
  const internal = `/protected/${fixtures.big.name}`
  t.is((await fetch(open.url + internal)).status, 200, 'the mis-wired nginx serves the protected file to anyone')

  const good = await runCli(['check', proxy.url + '/files/big.bin', '--file', file, '--rules', module, '--header', 'Cookie: session=1'])
  t.is(good.code, 0, good.stderr)
  t.true(good.stdout.includes(`\n  - an anonymous request for the internal URL ${internal} is refused (404)\n`), good.stdout)
  const bad = await runCli(['check', open.url + '/files/big.bin', '--file', file, '--rules', module])
  t.is(bad.code, 1)
  t.is(bad.stderr, `koa-downloads check FAILED ${open.url}/files/big.bin: 200, ${fixtures.big.bytes.length} bytes, sha256 ${fixtures.big.sha256}\n` +
    `  - an anonymous request for the internal URL ${open.url}${internal} got 200 with the file's bytes: the proxy's location for it is not internal, so any client fetches the protected files past the app's permission check (nginx: add "internal;" to the location, as koa-downloads config writes it)\n`)
})

viaCaddy.test('check via Caddy: a block copying Content-Disposition but not Content-Security-Policy fails on an inline page (its script would run in the site\'s origin); the generated block passes', async (t) => {
  t.timeout(120_000)
  const { proxy, app, fixtures } = viaCaddy.context()
  const file = join(fixtures.protectedDir, 'page.html')
  // copy_response_headers without the policy: the type and disposition still arrive.
  const config = ({ port, prefix, appPort }: { port: number, prefix: string, appPort: number }): string => {
    const generated = renderServerConfig('caddy', caddyRules(fixtures.protectedDir), { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
    const dropped = generated.replace(/^(\s*include .*) Content-Security-Policy\b/m, '$1')
    if (dropped === generated) throw new Error('the generated Caddy config no longer has the include line this test edits')
    return dropped
  }
  const miswired = await startProxy('caddy', { rules: caddyRules(fixtures.protectedDir), appPort: app.port, configFor: config })
  t.teardown(async () => { await miswired.stop() })
  const path = '/files/page.html?inline=1'

  const good = await runCli(['check', proxy.url + path, '--file', file])
  t.is(good.stderr, '')
  t.is(good.code, 0)
  t.true(good.stdout.includes('\n  - Content-Type: text/html; charset=utf-8\n  - Content-Disposition: inline; filename="page.html"\n'), good.stdout)
  t.is(app.last(path)?.headers['x-caddy-file'], '/protected/page.html', 'Caddy, not the app, sent it')

  const response = await fetch(miswired.url + path)
  t.is(await response.text(), activePage)
  t.is(response.headers.get('content-disposition'), 'inline; filename="page.html"', 'the mis-wired Caddy keeps the disposition')
  t.is(response.headers.get('content-security-policy'), null, 'and drops the policy')
  const bad = await runCli(['check', miswired.url + path, '--file', file])
  t.is(bad.code, 1)
  t.is(bad.stderr, `koa-downloads check FAILED ${miswired.url}/files/page.html?…: 200, ${activePage.length} bytes, sha256 ${sha256(Buffer.from(activePage))}\n` +
    '  - an inline download of type text/html; charset=utf-8 reached the client without Content-Security-Policy: sandbox, which koa-downloads sends with every inline file of a type that can run script: the proxy dropped the app\'s policy, and an uploaded page would run script in the site\'s origin (Caddy: copy_response_headers must list Content-Security-Policy; generate it again with koa-downloads config caddy). Only an app route with sandbox: false leaves it out on purpose\n')
})

test('check via nginx: a location without the generated nosniff line (nginx drops the app\'s on the X-Accel-Redirect) fails naming it; the generated one passes', async (t) => {
  t.timeout(120_000)
  const { proxy, app, fixtures } = context()
  const rules = [nginx({ sourceDir: fixtures.protectedDir, destinationUrl: '/protected/' })]
  const sniffable = await startProxy('nginx', {
    rules,
    appPort: app.port,
    configFor: ({ port, prefix, appPort }) => {
      const generated = renderServerConfig('nginx', rules, { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
      const dropped = generated.replace(/^\s*add_header X-Content-Type-Options nosniff always;\n/m, '')
      if (dropped === generated) throw new Error('the generated nginx config no longer has the nosniff line this test removes')
      return dropped
    }
  })
  t.teardown(async () => { await sniffable.stop() })
  const file = join(fixtures.protectedDir, fixtures.big.name)
  const response = await fetch(sniffable.url + '/files/big.bin')
  await response.arrayBuffer()
  t.is(response.headers.get('x-content-type-options'), null, 'nginx dropped the app\'s nosniff')
  t.is(app.last('/files/big.bin')?.headers['x-content-type-options'], 'nosniff', 'which the app sent')

  const good = await runCli(['check', proxy.url + '/files/big.bin', '--file', file])
  t.is(good.code, 0, good.stderr)
  const bad = await runCli(['check', sniffable.url + '/files/big.bin', '--file', file])
  t.is(bad.code, 1)
  t.is(bad.stderr, `koa-downloads check FAILED ${sniffable.url}/files/big.bin: 200, ${fixtures.big.bytes.length} bytes, sha256 ${fixtures.big.sha256}\n` +
    '  - no X-Content-Type-Options: nosniff reached the client, and koa-downloads sends it with every download: the proxy dropped it, and a browser may then run an uploaded text or binary file as a script of the site (nginx drops it on every X-Accel-Redirect: add_header X-Content-Type-Options nosniff always; in the internal location, as koa-downloads config writes it)\n')
})
