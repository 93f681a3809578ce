import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { renderServerConfig } from '../source/server-config.ts'
import { sha256 } from './helpers/app.ts'
import { runCli } from './helpers/offload-suite.ts'
import { rules } from './fixtures/integration/rules.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/integration/${name}`, import.meta.url))
const body = Buffer.from('the bytes of the file\n')

// A stand-in for "what the client sees": each path plays one kind of (mis)configured proxy.
let server: Server
let base = ''
test.before(async () => {
  server = createServer((req, res) => {
    switch (req.url) {
      case '/ok': res.setHeader('Content-Type', 'text/plain'); res.end(body); return
      case '/accel': res.setHeader('X-Accel-Redirect', '/protected/x.txt'); res.end(); return
      case '/sendfile': res.setHeader('X-Sendfile', '/srv/files/x.txt'); res.end(); return
      case '/location': res.setHeader('Location', '/protected/x.txt'); res.end(); return
      case '/empty': res.end(); return
      default: res.statusCode = 404; res.end('not found')
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
test.after.always(() => { server.close() })


test('cli: --help prints the usage on stdout and exits 0', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['--help'])
  t.is(code, 0)
  t.regex(stdout, /koa-downloads config <nginx\|apache\|lighttpd\|caddy> --rules <module>/)
  t.regex(stdout, /koa-downloads check <url>/)
})

test('cli: no command, an unknown command or a bad option is a usage error (exit 2, stderr)', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  for (const args of [[], ['deploy'], ['config', 'iis', '--rules', fixture('rules.ts')], ['config', 'nginx'], ['check'], ['check', base + '/ok', '--bogus']]) {
    const { code, stdout, stderr } = await runCli(args)
    t.is(code, 2, args.join(' '))
    t.is(stdout, '')
    t.regex(stderr, /^koa-downloads: .+\n\nUsage:/)
  }
})

test('cli config: prints exactly renderServerConfig() of the module\'s rules export', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['config', 'nginx', '--rules', fixture('rules.ts')])
  t.is(code, 0)
  t.is(stdout, renderServerConfig('nginx', rules))
})

test('cli config: a default export { rules } is accepted', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['config', 'lighttpd', '--rules', fixture('rules-default.ts'), '--upstream', '127.0.0.1:4000'])
  t.is(code, 0)
  t.regex(stdout, /"x-sendfile-docroot" => \( "\/srv\/files" \)/)
  t.regex(stdout, /"port" => 4000,/)
})

test('cli config: --listen, --upstream and --prefix give the full configuration', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['config', 'apache', '--rules', fixture('rules.ts'), '--listen', '127.0.0.1:8080', '--upstream', '127.0.0.1:3000', '--prefix', '/tmp/kd-cli'])
  t.is(code, 0)
  t.is(stdout, renderServerConfig('apache', rules, { full: { listen: '127.0.0.1:8080', upstream: '127.0.0.1:3000', prefix: '/tmp/kd-cli' } }))
})

test('cli config: --listen without --prefix is a usage error', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stderr } = await runCli(['config', 'nginx', '--rules', fixture('rules.ts'), '--listen', '127.0.0.1:8080'])
  t.is(code, 2)
  t.regex(stderr, /--listen, --upstream and --prefix together/)
})

test('cli config: a module without rules, or no rule for the server, fails with exit 1 and the reason', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const none = await runCli(['config', 'nginx', '--rules', fixture('no-rules.ts')])
  t.is(none.code, 1)
  t.regex(none.stderr, /must export "rules"/)
  const other = await runCli(['config', 'caddy', '--rules', fixture('rules.ts')])
  t.is(other.code, 1)
  t.regex(other.stderr, /none of the 3 rules is for caddy \(backends: nginx, apache\)/)
})

test('cli check: 200 with the expected bytes passes and says what it checked', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['check', base + '/ok', '--sha256', sha256(body)])
  t.is(code, 0)
  t.regex(stdout, new RegExp(`^koa-downloads check OK ${base}/ok: 200, 22 bytes, sha256 ${sha256(body)}\n`))
  t.regex(stdout, /bytes match --sha256/)
  const file = await runCli(['check', base + '/ok', '--file', fixture('rules.ts')])
  t.is(file.code, 1)
  t.regex(file.stderr, /got 22 bytes, .*rules\.ts has \d+/)
})

test('cli check: an offload header that reached the client fails with exit 1 naming it', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  for (const [path, header] of [['/accel', 'x-accel-redirect: /protected/x.txt'], ['/sendfile', 'x-sendfile: /srv/files/x.txt']] as const) {
    const { code, stderr } = await runCli(['check', base + path])
    t.is(code, 1)
    t.true(stderr.includes(`the offload header ${header} reached the client`), stderr)
    t.regex(stderr, /the body is empty/)
  }
})

test('cli check: a 200 with Location, an empty body, a 404 or different bytes fail', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const location = await runCli(['check', base + '/location'])
  t.is(location.code, 1)
  t.regex(location.stderr, /a 200 with Location: \/protected\/x\.txt reached the client/)
  const empty = await runCli(['check', base + '/empty'])
  t.is(empty.code, 1)
  t.regex(empty.stderr, /the body is empty/)
  const missing = await runCli(['check', base + '/missing'])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /status 404, expected 200/)
  const wrong = await runCli(['check', base + '/ok', '--sha256', 'f'.repeat(64)])
  t.is(wrong.code, 1)
  t.regex(wrong.stderr, /sha256 [0-9a-f]{64} of the 22 bytes received differs from f{64} \(--sha256\)/)
})

test('cli check: a malformed --sha256, or --sha256 with --file, is a usage error', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  t.is((await runCli(['check', base + '/ok', '--sha256', 'abc'])).code, 2)
  t.is((await runCli(['check', base + '/ok', '--sha256', 'f'.repeat(64), '--file', fixture('rules.ts')])).code, 2)
})
