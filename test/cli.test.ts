import { execFileSync, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import test from 'ava'
import { negotiated } from '../source/backends/negotiated.ts'
import { nginx } from '../source/backends/nginx.ts'
import { renderServerConfig } from '../source/server-config.ts'
import { sha256 } from './helpers/app.ts'
import { runCli } from './helpers/offload-suite.ts'
import { rules } from './fixtures/integration/rules.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/integration/${name}`, import.meta.url))
const body = Buffer.from('the bytes of the file\n')
let bombBytes: Buffer | undefined
/** 1 GiB of zeros, gzipped (made once, on first use). */
function bomb (): Buffer {
  bombBytes ??= gzipSync(Buffer.alloc(1 << 30), { level: 1 })
  return bombBytes
}

// A stand-in for "what the client sees": each path plays one kind of (mis)configured proxy.
let server: Server
let base = ''
test.before(async () => {
  server = createServer((req, res) => {
    // as koa-downloads sends it with every response, and the generated proxy configs keep it
    res.setHeader('X-Content-Type-Options', 'nosniff')
    switch (req.url?.split('?')[0]) {
      case '/sniffable': res.removeHeader('X-Content-Type-Options'); res.setHeader('Content-Type', 'text/plain'); res.setHeader('Content-Disposition', 'attachment; filename="x.txt"'); res.end(body); return
      case '/nosniff-twice': res.setHeader('X-Content-Type-Options', ['nosniff', 'nosniff']); res.setHeader('Content-Disposition', 'attachment'); res.end(body); return
      case '/bucket/r.csv': case '/container/r.csv': res.removeHeader('X-Content-Type-Options'); res.setHeader('Content-Disposition', 'attachment; filename="r.csv"'); res.end(body); return
      case '/sniff-first': res.setHeader('X-Content-Type-Options', ['sniff', 'nosniff']); res.setHeader('Content-Disposition', 'attachment'); res.end(body); return
      case '/ok': res.setHeader('Content-Type', 'text/plain'); res.setHeader('Content-Disposition', 'attachment; filename="x.txt"'); res.end(body); return
      // The same download behind a proxy that drops the app's headers (Caddy without copy_response_headers).
      case '/bare': res.setHeader('Content-Type', 'text/html'); res.end(body); return
      // A proxy that compresses the download (nginx gzip on, Caddy encode) for a client that accepts it.
      case '/gzip': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('Content-Encoding', 'gzip'); res.end(gzipSync(body)); return
      case '/gzip-bad': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('Content-Encoding', 'gzip'); res.end(body); return
      // About 1 MB that decodes to 1 GiB: arrives at once, takes seconds to decode and hash.
      case '/gzip-bomb': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('Content-Encoding', 'gzip'); res.end(bomb()); return
      case '/accel': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('X-Accel-Redirect', '/protected/x.txt'); res.end(); return
      case '/sendfile': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('X-Sendfile', '/srv/files/x.txt'); res.end(); return
      case '/location': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('Location', '/protected/x.txt'); res.end(); return
      case '/empty': res.setHeader('Content-Disposition', 'attachment'); res.end(); return
      // A caddy({ header }) rule's own header, leaked: on an empty body (the offload response), and
      // on bytes (only a name given to check finds it there).
      case '/custom': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('X-Caddy-File', '/protected/x.txt'); res.end(); return
      case '/custom-bytes': res.setHeader('X-Caddy-File', '/protected/x.txt'); res.setHeader('Content-Disposition', 'attachment'); res.end(body); return
      case '/accel-control': res.setHeader('Content-Disposition', 'attachment'); res.setHeader('X-Accel-Buffering', 'no'); res.end(); return
      case '/content-location': res.setHeader('Content-Location', '/files/empty.txt'); res.setHeader('Content-Disposition', 'attachment'); res.end(); return
      case '/presigned': res.statusCode = 302; res.setHeader('Location', 'https://bucket.s3.example/k?X-Amz-Signature=s3cr3t'); res.end(); return
      // nginx({ remote: true }) without `internal`: it tries the host it is given (nothing listens: 502).
      case '/open-remote/http/127.0.0.1:9/koa-downloads-check': res.statusCode = 502; res.end(); return
      case '/redirect': res.statusCode = 302; res.setHeader('Location', '/login'); res.end(); return
      case '/vhost': res.setHeader('Content-Type', 'text/plain'); res.setHeader('Content-Disposition', 'inline'); res.end(`vhost ${String(req.headers.host)}`); return
      // An inline page whose sandbox policy the proxy dropped (a Caddy block copying some headers), kept, or never needed.
      case '/inline-page': res.setHeader('Content-Type', 'text/html; charset=utf-8'); res.setHeader('Content-Disposition', 'inline; filename="page.html"'); res.end(body); return
      case '/inline-untyped': res.setHeader('Content-Disposition', 'Inline'); res.end(body); return
      case '/inline-sandboxed': res.setHeader('Content-Type', 'image/svg+xml'); res.setHeader('Content-Disposition', 'inline'); res.setHeader('Content-Security-Policy', ["default-src 'self'", 'sandbox']); res.end(body); return
      case '/inline-sandbox-allowing': res.setHeader('Content-Type', 'text/html'); res.setHeader('Content-Disposition', 'inline'); res.setHeader('Content-Security-Policy', "img-src 'self'; sandbox allow-scripts"); res.end(body); return
      case '/inline-pdf': res.setHeader('Content-Type', 'application/pdf'); res.setHeader('Content-Disposition', 'inline; filename="x.pdf"'); res.end(body); return
      case '/attached-page': res.setHeader('Content-Type', 'text/html'); res.setHeader('Content-Disposition', 'attachment; filename="inline.html"'); res.end(body); return
      case '/sandbox-in-name': res.setHeader('Content-Type', 'text/html'); res.setHeader('Content-Disposition', 'inline'); res.setHeader('Content-Security-Policy', "script-src 'none'; report-uri /sandbox"); res.end(body); return
      // The headers announce more than is sent, then the connection closes: a download cut short.
      case '/cut': res.writeHead(200, { 'Content-Length': String(body.length + 100) }); res.write(body, () => { res.socket?.destroy() }); return
      case '/slow': res.setHeader('Content-Disposition', 'attachment'); setTimeout(() => { res.end(body) }, 3000).unref(); return
      // Headers and a first chunk at once, then the rest of the body stalls.
      case '/stall': res.writeHead(200, { 'Content-Length': String(body.length + 10) }); res.write(body); setTimeout(() => { res.end('0123456789') }, 3000).unref(); return
      default: res.statusCode = 404; res.end('not found')
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
test.after.always(() => { server.closeAllConnections(); server.close() })


test('cli: --help prints the usage on stdout and exits 0', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['--help'])
  t.is(code, 0)
  t.regex(stdout, /koa-downloads config <nginx\|apache\|lighttpd\|caddy> --rules <module>/)
  t.regex(stdout, /koa-downloads check <url>/)
  // Every reason check fails for is named, the sandbox policy of an inline page among them.
  t.regex(stdout, /without\s+Content-Disposition fails too/)
  t.regex(stdout, /without\s+Content-Security-Policy: sandbox/)
})

test('cli config: a server that is not one of the four is named in the usage error', async (t) => {
  t.timeout(60_000)
  for (const [args, said] of [
    [['config', 'nginix', '--rules', fixture('rules.ts')], '"nginix" is not one of them'],
    [['config', '--rules', fixture('rules.ts')], 'none was given'],
    [['config', 'nginx', 'caddy', '--rules', fixture('rules.ts')], '"nginx caddy" names more than one']
  ] as const) {
    const { code, stderr } = await runCli([...args])
    t.is(code, 2, args.join(' '))
    t.true(stderr.startsWith(`koa-downloads: config needs one server: nginx, apache, lighttpd, caddy (${said})\n`), stderr)
  }
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

test('cli config: --trusted-certificate — a relative path is resolved, "off" leaves verification out, a bundle it cannot read is warned about, and it is nginx\'s alone', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const relative = await runCli(['config', 'nginx', '--rules', fixture('rules-remote.ts'), '--trusted-certificate', 'test/fixtures/tls/cert.pem'])
  t.is(relative.code, 0)
  t.true(relative.stdout.includes(`proxy_ssl_trusted_certificate ${fixture('../tls/cert.pem').replace('/integration/../', '/')};`), relative.stdout)
  t.is(relative.stderr, '')
  const off = await runCli(['config', 'nginx', '--rules', fixture('rules-remote.ts'), '--trusted-certificate', 'off'])
  t.is(off.code, 0)
  t.false(off.stdout.includes('proxy_ssl_verify'))
  t.true(off.stdout.includes('# https origins are NOT verified (trustedCertificate: false)'))
  const missing = await runCli(['config', 'nginx', '--rules', fixture('rules-remote.ts'), '--trusted-certificate', '/nonexistent/ca.pem'])
  t.is(missing.code, 0)
  t.true(missing.stdout.includes('proxy_ssl_trusted_certificate /nonexistent/ca.pem;'))
  t.regex(missing.stderr, /^koa-downloads: warning: nginx will not start without \/nonexistent\/ca\.pem, the CA bundle that verifies https origins/)
  t.true(missing.stderr.includes('(e.g. /etc/pki/tls/certs/ca-bundle.crt)'))
  // The example is never the path that is missing (this machine is Debian-like: no /etc/pki).
  const redHat = await runCli(['config', 'nginx', '--rules', fixture('rules-remote.ts'), '--trusted-certificate', '/etc/pki/tls/certs/ca-bundle.crt'])
  t.regex(redHat.stderr, /^koa-downloads: warning: nginx will not start without \/etc\/pki\/tls\/certs\/ca-bundle\.crt/)
  t.true(redHat.stderr.includes('(e.g. /etc/ssl/certs/ca-certificates.crt)'))
  const elsewhere = await runCli(['config', 'apache', '--rules', fixture('rules.ts'), '--trusted-certificate', '/etc/ssl/certs/ca-certificates.crt'])
  t.is(elsewhere.code, 2)
  t.regex(elsewhere.stderr, /^koa-downloads: --trusted-certificate is for nginx/)
})

test('cli config: a default export { rules } is accepted', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout } = await runCli(['config', 'lighttpd', '--rules', fixture('rules-default.ts'), '--upstream', '127.0.0.1:4000'])
  t.is(code, 0)
  t.regex(stdout, /"x-sendfile-docroot" => \( "\/srv\/files" \)/)
  t.regex(stdout, /"port" => 4000,/)
})

test('cli config: a module exporting one rule on its own (as downloads({ rules }) takes it) is accepted', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  const { code, stdout, stderr } = await runCli(['config', 'nginx', '--rules', fixture('rules-single.ts')])
  t.is(code, 0, stderr)
  t.is(stdout, renderServerConfig('nginx', [nginx({ sourceDir: '/srv/single', destinationUrl: '/single/' })]))
  t.regex(stdout, /location \^~ \/single\/ \{/)
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

test('cli check: a 200 without Content-Disposition fails: the proxy dropped the app\'s headers (an uploaded page would be shown, not saved), even when the bytes match', async (t) => {
  t.timeout(60_000)
  const { code, stdout, stderr } = await runCli(['check', base + '/bare', '--sha256', sha256(body)])
  t.is(code, 1)
  t.is(stdout, '')
  t.is(stderr, `koa-downloads check FAILED ${base}/bare: 200, 22 bytes, sha256 ${sha256(body)}\n` +
    '  - no Content-Disposition reached the client, and koa-downloads sends one with every download: the proxy dropped the app\'s headers (Caddy: a handle_response block without copy_response_headers; generate it again with koa-downloads config caddy), or this URL is not a download of koa-downloads\n')
})

test('cli check: a download without X-Content-Type-Options: nosniff fails (the proxy dropped it: nginx on every X-Accel-Redirect unless the location adds it back), except at a presigned storage URL; the field read as browsers read it, by its first value', async (t) => {
  t.timeout(60_000)
  const dropped = await runCli(['check', base + '/sniffable', '--sha256', sha256(body)])
  t.is(dropped.code, 1)
  t.is(dropped.stderr, `koa-downloads check FAILED ${base}/sniffable: 200, 22 bytes, sha256 ${sha256(body)}\n` +
    '  - no X-Content-Type-Options: nosniff reached the client, and koa-downloads sends it with every download: the proxy dropped it, and a browser may then run an uploaded text or binary file as a script of the site (nginx drops it on every X-Accel-Redirect: add_header X-Content-Type-Options nosniff always; in the internal location, as koa-downloads config writes it)\n')
  t.is((await runCli(['check', base + '/nosniff-twice', '--sha256', sha256(body)])).code, 0)
  // A presigned storage URL (the target of a presignedRedirect()) is the storage's response, in its own origin.
  const presigned = await runCli(['check', base + '/bucket/r.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc', '--sha256', sha256(body)])
  t.is(presigned.code, 0, presigned.stderr)
  // An Azure SAS URL: its signature is `sig`, as offload()'s own test of a presigned URL reads it.
  const sas = await runCli(['check', base + '/container/r.csv?sv=2022-11-02&se=2026-12-01&sp=r&sig=abc%3D', '--sha256', sha256(body)])
  t.is(sas.code, 0, sas.stderr)
  const first = await runCli(['check', base + '/sniff-first', '--sha256', sha256(body)])
  t.is(first.code, 1)
  t.regex(first.stderr, /no X-Content-Type-Options: nosniff reached the client/)
})

test('cli check: an inline download of a type that can run script without Content-Security-Policy: sandbox fails: the proxy dropped the app\'s policy; a passive type, an attachment or any sandbox directive passes', async (t) => {
  t.timeout(60_000)
  const dropped = (type: string): string => `  - an inline download of type ${type} reached the client without Content-Security-Policy: sandbox, which koa-downloads sends with every inline file of a type that can run script: the proxy dropped the app's policy, and an uploaded page would run script in the site's origin (Caddy: copy_response_headers must list Content-Security-Policy; generate it again with koa-downloads config caddy). Only an app route with sandbox: false leaves it out on purpose\n`
  for (const [path, type] of [['/inline-page', 'text/html; charset=utf-8'], ['/inline-untyped', '(none)'], ['/sandbox-in-name', 'text/html']] as const) {
    const failed = await runCli(['check', base + path, '--sha256', sha256(body)])
    t.is(failed.code, 1, path)
    t.is(failed.stdout, '', path)
    t.is(failed.stderr, `koa-downloads check FAILED ${base}${path}: 200, 22 bytes, sha256 ${sha256(body)}\n` + dropped(type), path)
  }
  for (const path of ['/inline-sandboxed', '/inline-sandbox-allowing', '/inline-pdf', '/attached-page']) {
    const passed = await runCli(['check', base + path, '--sha256', sha256(body)])
    t.is(passed.stderr, '', path)
    t.is(passed.code, 0, path)
  }
})

test('cli check: a body the proxy compressed (Content-Encoding: gzip) is compared decoded, as a browser saves it; one that does not decode fails saying so', async (t) => {
  t.timeout(60_000)
  const gz = gzipSync(body)
  const ok = await runCli(['check', base + '/gzip', '--header', 'Accept-Encoding: gzip', '--sha256', sha256(body)])
  t.is(ok.stderr, '')
  t.is(ok.code, 0)
  t.true(ok.stdout.startsWith(`koa-downloads check OK ${base}/gzip: 200, 22 bytes, sha256 ${sha256(body)} (decoded from ${gz.length} bytes of Content-Encoding: gzip, as a browser saves it)\n`), ok.stdout)
  const bad = await runCli(['check', base + '/gzip-bad', '--sha256', sha256(body)])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /\n {2}- the body does not decode as its Content-Encoding: gzip \(.+\)\n/)
})

test('cli check: the output (CI logs) carries no credentials of the URL, nor the query of it or of a redirect (a token, a presigned signature)', async (t) => {
  t.timeout(60_000)
  const ok = await runCli(['check', base.replace('http://', 'http://deploy:s3cr3t@') + '/ok?token=s3cr3t', '--sha256', sha256(body)])
  t.is(ok.code, 0, ok.stderr)
  t.true(ok.stdout.startsWith(`koa-downloads check OK ${base}/ok?…: 200, 22 bytes`), ok.stdout)
  const signed = await runCli(['check', base + '/presigned'])
  t.is(signed.code, 1)
  t.false(signed.stderr.includes('s3cr3t'), signed.stderr)
  t.true(signed.stderr.includes('a redirect to https://bucket.s3.example/k?…, expected 200'), signed.stderr)
})

test('cli check: a --rules module holding something else than rules fails naming the module, not with a TypeError of the CLI\'s own', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  const module = join(dir, 'rules.mjs')
  await writeFile(module, 'export const rules = [null]\n')
  const { code, stdout, stderr } = await runCli(['check', base + '/ok', '--rules', module])
  t.is(code, 1)
  t.is(stdout, '')
  t.is(stderr, `koa-downloads: ${module}: every rule must be an offload rule (nginx(), apache(), …)\n`)
})

test('cli check: with --rules, an nginx({ remote: true }) location that tries any host given to it (not internal: an open proxy) fails; one that refuses (404) is named in the OK output', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  for (const [destination, open] of [['/_remote/', false], ['/open-remote/', true]] as const) {
    const module = join(dir, `rules-${String(open)}.mjs`)
    await writeFile(module, `export const rules = ${JSON.stringify([nginx({ remote: true, destinationUrl: destination })])}\n`)
    const { code, stdout, stderr } = await runCli(['check', base + '/ok', '--rules', module, '--header', 'Cookie: session=1'])
    const probe = `${destination}http/127.0.0.1:9/koa-downloads-check`
    if (open) {
      t.is(code, 1)
      t.is(stderr, `koa-downloads check FAILED ${base}/ok: 200, 22 bytes, sha256 ${sha256(body)}\n` +
        `  - an anonymous request for ${probe} got 502, not the 404 of an internal location: the proxy's location for nginx({ remote: true }) is not internal, an open proxy to any host (nginx: add "internal;" to it, as koa-downloads config writes it)\n`)
    } else {
      t.is(code, 0, stderr)
      t.true(stdout.includes(`\n  - an anonymous request for ${probe} is refused (404)\n`), stdout)
    }
  }
})

test('cli check: a malformed --sha256, or --sha256 with --file, is a usage error', async (t) => {
  t.timeout(60_000) // spawns node processes: slow on a loaded CI machine
  t.is((await runCli(['check', base + '/ok', '--sha256', 'abc'])).code, 2)
  t.is((await runCli(['check', base + '/ok', '--sha256', 'f'.repeat(64), '--file', fixture('rules.ts')])).code, 2)
})

test('cli check: --header "Host: …" is sent as the Host of the request (a virtual host checked by its address)', async (t) => {
  t.timeout(60_000)
  const expected = Buffer.from('vhost downloads.example.com')
  const { code, stdout, stderr } = await runCli(['check', base + '/vhost', '--header', 'Host: downloads.example.com', '--sha256', sha256(expected)])
  t.is(stderr, '')
  t.is(stdout, `koa-downloads check OK ${base}/vhost: 200, 27 bytes, sha256 ${sha256(expected)}\n` +
    '  - no offload header reached the client (x-accel-redirect, x-sendfile, x-lighttpd-send-file, x-sendfile2, Location)\n' +
    '  - bytes match --sha256\n' +
    '  - Content-Type: text/plain\n' +
    '  - Content-Disposition: inline\n' +
    '  - not proven: that the proxy, not the app, sent the bytes (a file no rule covers is streamed and looks the same);\n' +
    '    check the app itself, bypassing the proxy: it fails naming the offload header when a rule matches\n')
  t.is(code, 0)
  const twice = await runCli(['check', base + '/vhost', '--header', 'Host: a.example', '--header', 'host: b.example'])
  t.is(twice.code, 2)
  t.regex(twice.stderr, /^koa-downloads: --header "Host: …" may be given once\n\nUsage:/)
})

test('cli check: --timeout is a plain number of seconds up to 2147483 (setTimeout\'s limit); anything else is a usage error, and a timeout says so', async (t) => {
  t.timeout(60_000)
  for (const value of ['3000000', '2147484', '1e400', '0x10', '0', '.5', 'soon', '']) {
    const { code, stdout, stderr } = await runCli(['check', base + '/ok', '--timeout', value])
    t.is(code, 2, value)
    t.is(stdout, '')
    t.regex(stderr, /^koa-downloads: --timeout must be a number of seconds, more than 0 and at most 2147483\n\nUsage:/, value)
  }
  const longest = await runCli(['check', base + '/ok', '--timeout', '2147483'])
  t.is(longest.code, 0, longest.stderr)
  const slow = await runCli(['check', base + '/slow', '--timeout', '0.5'])
  t.is(slow.code, 1)
  t.is(slow.stderr, 'koa-downloads: no complete response within 0.5 s (--timeout): no response headers arrived\n')
  const stalled = await runCli(['check', base + '/stall', '--timeout', '0.5'])
  t.is(stalled.code, 1)
  t.is(stalled.stderr, 'koa-downloads: no complete response within 0.5 s (--timeout): status 200 arrived, then 22 bytes of the 32 its Content-Length announced\n')
  // The decoding of a compressed body is bounded too.
  bomb()
  const decoding = await runCli(['check', base + '/gzip-bomb', '--timeout', '0.5'])
  t.is(decoding.code, 1)
  t.regex(decoding.stderr, /^koa-downloads: no complete response within 0\.5 s \(--timeout\): status 200 arrived, then \d+ bytes of the \d+ its Content-Length announced, still being decoded \(gzip: \d+ bytes so far\)\n$/)
})

test('cli check: an unparsable URL, another scheme or an invalid header is a usage error (exit 2)', async (t) => {
  t.timeout(60_000)
  const cases: Array<[string[], string]> = [
    [['check', 'http://[::1/x'], 'check needs one http(s) URL, "http://[::1/x" is not a valid URL'],
    [['check', 'http://exa mple.com/'], 'check needs one http(s) URL, "http://exa mple.com/" is not a valid URL'],
    [['check', 'ftp://127.0.0.1/x'], 'check needs one http(s) URL, not ftp:'],
    [['check', base + '/ok', '--header', 'Bad Name: x'], '--header "Bad Name": not a valid header name and value (the value is not shown)'],
    // The value may be a credential: it stays out of the output.
    [['check', base + '/ok', '--header', 'Authorization: Bearer SECRET\u0007'], '--header "Authorization": not a valid header name and value (the value is not shown)'],
    [['check', base + '/ok', '--header', 'Authorization Bearer SECRET'], '--header must be "Name: value", got a line with no name before a ":" (27 characters, not shown)']
  ]
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await runCli(args)
    t.is(code, 2, args.join(' '))
    t.is(stdout, '')
    t.true(stderr.startsWith(`koa-downloads: ${message}\n\nUsage:`), stderr)
  }
})

test('cli check: a redirect fails naming its target and that redirects are not followed, not as an empty offload body', async (t) => {
  t.timeout(60_000)
  const { code, stderr } = await runCli(['check', base + '/redirect'])
  t.is(code, 1)
  t.is(stderr, `koa-downloads check FAILED ${base}/redirect: 302, 0 bytes, sha256 ${sha256(new Uint8Array())}\n` +
    '  - status 302, a redirect to /login, expected 200: check does not follow redirects (a login page? give --header "Cookie: …"; otherwise check the URL it redirects to)\n')
})

test('cli check: a body cut short (the connection closed before Content-Length) fails naming the bytes received and announced, not as a bare "aborted"', async (t) => {
  t.timeout(60_000)
  for (const args of [[], ['--sha256', sha256(body)]]) {
    const { code, stdout, stderr } = await runCli(['check', base + '/cut', ...args])
    t.is(code, 1)
    t.is(stdout, '')
    t.is(stderr, `koa-downloads check FAILED ${base}/cut: 200, 22 bytes, sha256 ${sha256(body)}\n` +
      '  - the response was cut short: the connection closed after 22 bytes of the 122 its Content-Length announced\n')
  }
})

test('cli check: an empty 200 passes when --file or --sha256 says the file is empty, and only then', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  await writeFile(join(dir, 'empty.txt'), '')
  const file = await runCli(['check', base + '/empty', '--file', join(dir, 'empty.txt')])
  t.is(file.code, 0, file.stderr)
  t.regex(file.stdout, new RegExp(`^koa-downloads check OK ${base}/empty: 200, 0 bytes, sha256 ${sha256(new Uint8Array())}\n`))
  t.is((await runCli(['check', base + '/empty', '--sha256', sha256(new Uint8Array())])).code, 0)
  const notEmpty = await runCli(['check', base + '/empty', '--sha256', sha256(body)])
  t.is(notEmpty.code, 1)
  t.regex(notEmpty.stderr, /\n {2}- the body is empty: the proxy passed the offload response through instead of sending the file\n$/)
  const unexpected = await runCli(['check', base + '/ok', '--file', join(dir, 'empty.txt')])
  t.is(unexpected.code, 1)
  t.regex(unexpected.stderr, /got 22 bytes, .*empty\.txt has 0\n {2}- sha256 [0-9a-f]{64} of the 22 bytes received differs from e3b0c442/)
})

test('cli check: a header of the rules (--rules) or an --offload-header is an offload header on any response; the OK line lists them', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  const module = join(dir, 'rules.mjs')
  await writeFile(module, 'export const rules = [{ backend: "caddy", sourceDir: "/srv/files", destinationUrl: "/protected/", header: "X-Caddy-File" }]\n')
  const leaked = '  - the offload header x-caddy-file: /protected/x.txt reached the client: the proxy did not intercept it (is the app reached directly, or does the proxy config not cover this path? see koa-downloads config)\n'
  for (const named of [['--rules', module], ['--offload-header', 'X-Caddy-File']]) {
    const empty = await runCli(['check', base + '/custom', '--sha256', sha256(new Uint8Array()), ...named])
    t.is(empty.code, 1, named.join(' '))
    t.is(empty.stderr, `koa-downloads check FAILED ${base}/custom: 200, 0 bytes, sha256 ${sha256(new Uint8Array())}\n` + leaked)
    const bytes = await runCli(['check', base + '/custom-bytes', '--sha256', sha256(body), ...named])
    t.is(bytes.code, 1, named.join(' '))
    t.is(bytes.stderr, `koa-downloads check FAILED ${base}/custom-bytes: 200, 22 bytes, sha256 ${sha256(body)}\n` + leaked)
    const ok = await runCli(['check', base + '/ok', ...named, '--offload-header', 'x-sendfile'])
    t.is(ok.code, 0, ok.stderr)
    t.true(ok.stdout.includes('\n  - no offload header reached the client (x-accel-redirect, x-sendfile, x-lighttpd-send-file, x-sendfile2, x-caddy-file, Location)\n'), ok.stdout)
  }
  // Unnamed, a header on bytes is the app's business: the bytes are what the client wanted.
  const unnamed = await runCli(['check', base + '/custom-bytes', '--sha256', sha256(body)])
  t.is(unnamed.code, 0, unnamed.stderr)
  for (const name of ['Bad Name', '']) {
    const bad = await runCli(['check', base + '/ok', '--offload-header', name])
    t.is(bad.code, 2)
    t.true(bad.stderr.startsWith(`koa-downloads: --offload-header ${JSON.stringify(name)}: not a valid header name\n\nUsage:`), bad.stderr)
  }
})

test('cli check: an empty 200 with a path-valued header (not Content-Location) or an X-Accel-* header fails naming it, even when the file is empty', async (t) => {
  t.timeout(60_000)
  const empty = sha256(new Uint8Array())
  const suspect = (header: string, why: string): string => `  - the empty response carries ${header} (${why}), which looks like an offload header that reached the client: the proxy did not intercept it (name a rule's own header with --rules or --offload-header)\n`
  const custom = await runCli(['check', base + '/custom', '--sha256', empty])
  t.is(custom.code, 1)
  t.is(custom.stderr, `koa-downloads check FAILED ${base}/custom: 200, 0 bytes, sha256 ${empty}\n` + suspect('x-caddy-file: /protected/x.txt', 'a path'))
  // A file that is not empty: the empty body fails too, and the header is named beside it.
  const unsaid = await runCli(['check', base + '/custom'])
  t.is(unsaid.code, 1)
  t.is(unsaid.stderr, `koa-downloads check FAILED ${base}/custom: 200, 0 bytes, sha256 ${empty}\n` + suspect('x-caddy-file: /protected/x.txt', 'a path') +
    '  - the body is empty: the proxy passed the offload response through instead of sending the file (for a file that is really empty, give --file or --sha256)\n')
  const control = await runCli(['check', base + '/accel-control', '--sha256', empty])
  t.is(control.code, 1)
  t.is(control.stderr, `koa-downloads check FAILED ${base}/accel-control: 200, 0 bytes, sha256 ${empty}\n` + suspect('x-accel-buffering: no', 'an nginx control header'))
  const contentLocation = await runCli(['check', base + '/content-location', '--sha256', empty])
  t.is(contentLocation.code, 0, contentLocation.stderr)
})

test('cli check: a connection refused at every address of a name (an AggregateError, whose message is empty) names its code and each address\'s error', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  // The usual /etc/hosts, where localhost is ::1 and 127.0.0.1, for a name of the test's own:
  // Node then tries both addresses and reports both refusals together.
  const hook = join(dir, 'dual.mjs')
  await writeFile(hook, `import dns from 'node:dns'
const lookup = dns.lookup
dns.lookup = function (host, options, callback) {
  if (typeof options === 'function') { callback = options; options = {} }
  if (host !== 'dual.test') return lookup.call(this, host, options, callback)
  const all = [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }]
  process.nextTick(() => { options.all ? callback(null, all) : callback(null, all[0].address, all[0].family) })
}
`)
  const cli = fileURLToPath(new URL('../source/cli.ts', import.meta.url))
  const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', hook, cli, 'check', 'http://dual.test:1/x'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
    child.once('error', reject)
    child.once('close', (exit) => { resolve({ code: exit, stdout: out, stderr: err }) })
  })
  t.is(code, 1)
  t.is(stdout, '')
  // Where ::1 is not configured, its connect fails otherwise (EADDRNOTAVAIL …): named all the same.
  t.regex(stderr, /^koa-downloads: E[A-Z]+: connect E[A-Z]+ ::1:1; connect ECONNREFUSED 127\.0\.0\.1:1\n$/)
})

test('cli check: a --file that does not exist, is a directory, a FIFO, a socket or a device is a usage error (exit 2) naming it, before any request', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  // A FIFO with no writer: reading it would wait forever, past any --timeout.
  execFileSync('mkfifo', [join(dir, 'fifo')])
  const socket = createNetServer()
  await new Promise<void>((resolve) => socket.listen(join(dir, 'socket'), resolve))
  t.teardown(() => { socket.close() })
  const notRegular = 'not a regular file (a FIFO, socket or device has no fixed bytes to compare)'
  // Port 9 (discard) has no server here: a request would fail as a refused connection, exit 1.
  const cases = [[join(dir, 'missing.txt'), 'no such file'], [dir, 'a directory, not a file'], [join(dir, 'fifo'), notRegular], [join(dir, 'socket'), notRegular], ['/dev/zero', notRegular]] as const
  for (const [file, reason] of cases) {
    const { code, stdout, stderr } = await runCli(['check', 'http://127.0.0.1:9/x', '--file', file])
    t.is(code, 2, file)
    t.is(stdout, '')
    t.true(stderr.startsWith(`koa-downloads: --file ${file}: ${reason}\n\nUsage:`), stderr)
  }
})

test('cli config: a rules module that cannot be loaded fails with exit 1 naming it, with the reason', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  const cases: Array<[string, string, string]> = [
    ['syntax.mjs', 'export const rules = [\n', 'Unexpected end of input'],
    ['throws.mjs', 'throw new Error("boom at import")\n', 'boom at import']
  ]
  for (const [name, text, reason] of cases) {
    await writeFile(join(dir, name), text)
    const module = join(dir, name)
    const { code, stdout, stderr } = await runCli(['config', 'nginx', '--rules', module])
    t.is(code, 1, name)
    t.is(stdout, '')
    t.is(stderr, `koa-downloads: cannot load --rules ${module}: ${reason}\n`)
  }
  const missing = join(dir, 'missing.mjs')
  const absent = await runCli(['config', 'nginx', '--rules', missing])
  t.is(absent.code, 1)
  t.true(absent.stderr.startsWith(`koa-downloads: cannot load --rules ${missing}: Cannot find module`), absent.stderr)
})

test('cli config: plain-data rules with a directory the factories refuse (relative, control characters) fail with exit 1 naming rule, option and value', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  const refused = (what: string, got: string): string =>
    `koa-downloads: renderServerConfig(): ${what} must be an absolute directory path without control characters, e.g. '/srv/files', got ${got}\n`
  const cases: Array<[string, object[], string]> = [
    ['nginx', [{ backend: 'nginx', sourceDir: '/srv/ok', destinationUrl: '/p/' }, { backend: 'nginx', sourceDir: '../etc', destinationUrl: '/q/' }], refused('rules[1] (nginx): sourceDir', '"../etc"')],
    ['caddy', [{ backend: 'caddy', sourceDir: 'srv/rel', destinationUrl: '/p/' }], refused('rules[0] (caddy): sourceDir', '"srv/rel"')],
    ['apache', [{ backend: 'apache', sourceDir: '/srv/ok', destinationDir: 'data' }], refused('rules[0] (apache): destinationDir', '"data"')],
    ['lighttpd', [{ backend: 'lighttpd', sourceDir: '/srv/a\tb', destinationDir: '/srv/ok' }], refused('rules[0] (lighttpd): sourceDir', '"/srv/a\\tb"')],
    ['nginx', [{ backend: 'nginx', sourceDir: '/srv/ok', destinationUrl: '/p/' }, { backend: 'negotiated', allow: ['X-Accel-Redirect'], mapping: [{ sourceDir: 'files', destinationUrl: '/n/' }] }], refused('rules[1] (negotiated) mapping[0]: sourceDir', '"files"')]
  ]
  for (const [index, [server, rules, message]] of cases.entries()) {
    const module = join(dir, `rules-${index}.mjs`)
    await writeFile(module, `export const rules = ${JSON.stringify(rules)}\n`)
    const { code, stdout, stderr } = await runCli(['config', server, '--rules', module])
    t.is(code, 1, message)
    t.is(stdout, '')
    t.is(stderr, message)
  }
})

test('cli config: negotiated() mappings are not rendered, and the error or the comment says so with the location line to write by hand', async (t) => {
  t.timeout(60_000)
  const dir = await mkdtemp(join(tmpdir(), 'kd-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true }) })
  const mapped = negotiated({ allow: ['X-Accel-Redirect'], mapping: { '/srv/files': '/negotiated-files/', '/srv/my files': '/spaced/' } })
  const module = async (name: string, rules: unknown[]): Promise<string> => {
    await writeFile(join(dir, name), `export const rules = ${JSON.stringify(rules)}\n`)
    return join(dir, name)
  }
  const only = await runCli(['config', 'nginx', '--rules', await module('only.mjs', [mapped])])
  t.is(only.code, 1)
  t.is(only.stdout, '')
  t.is(only.stderr, 'koa-downloads: renderServerConfig(): none of the 1 rules is for nginx (backends: negotiated); negotiated() rules are not rendered: ' +
    'the proxy must send X-Sendfile-Type itself; write the internal location of each mapping by hand, inside the server { } block:\n' +
    '    location ^~ /negotiated-files/ { internal; alias /srv/files/; }\n' +
    '    location ^~ /spaced/ { internal; alias "/srv/my files/"; }\n')
  const beside = await runCli(['config', 'nginx', '--rules', await module('beside.mjs', [nginx({ sourceDir: '/srv/private', destinationUrl: '/protected/' }), mapped])])
  t.is(beside.code, 0, beside.stderr)
  t.true(beside.stdout.endsWith('\n# negotiated() mappings are not rendered: write the internal location of each mapping by hand, inside the server { } block:\n' +
    '#     location ^~ /negotiated-files/ { internal; alias /srv/files/; }\n' +
    '#     location ^~ /spaced/ { internal; alias "/srv/my files/"; }\n' +
    '# 1 negotiated() rule(s) not rendered: the proxy must send X-Sendfile-Type itself\n'), beside.stdout)
  const caddy = await runCli(['config', 'caddy', '--rules', await module('only.mjs', [mapped])])
  t.is(caddy.code, 1)
  t.is(caddy.stderr, 'koa-downloads: renderServerConfig(): none of the 1 rules is for caddy (backends: negotiated); negotiated() rules are not rendered: ' +
    'the proxy must send X-Sendfile-Type itself; write by hand, for each mapping, a handle_response on X-Accel-Redirect that serves its directory (the values are raw paths below the location, as caddy() sends; keep the accel option of negotiated() at its default, or raw):\n' +
    '    X-Accel-Redirect "/negotiated-files/*" from /srv/files\n' +
    '    X-Accel-Redirect "/spaced/*" from /srv/my files\n')
  // Apache gets X-Sendfile, the file's own path: a mapping means nothing to it.
  const apache = await runCli(['config', 'apache', '--rules', await module('only.mjs', [mapped])])
  t.is(apache.code, 1)
  t.is(apache.stderr, 'koa-downloads: renderServerConfig(): none of the 1 rules is for apache (backends: negotiated); negotiated() rules are not rendered: the proxy must send X-Sendfile-Type itself\n')
  // Printed in a comment, a plain-data mapping must not carry a line of configuration.
  const injected = await runCli(['config', 'nginx', '--rules', await module('injected.mjs', [{ backend: 'negotiated', allow: ['X-Accel-Redirect'], mapping: [{ sourceDir: '/srv/files', destinationUrl: '/p/\nlocation / {' }] }])])
  t.is(injected.code, 1)
  t.regex(injected.stderr, /^koa-downloads: renderServerConfig\(\): rules\[0\] \(negotiated\) mapping\[0\]: destinationUrl must be an absolute URL path .*, got "\/p\/\\nlocation \/ \{"\n$/)
  // negotiated() refuses it; plain data does not go through it.
  const root = await runCli(['config', 'nginx', '--rules', await module('root.mjs', [{ backend: 'negotiated', allow: ['X-Accel-Redirect'], mapping: [{ sourceDir: '/srv/files', destinationUrl: '/' }] }])])
  t.is(root.code, 1)
  t.regex(root.stderr, /a negotiated\(\) mapping to "\/" cannot have an internal location \(it would take every URL of the server, the app's too\)/)
})

test('cli config: an empty --rules, an option given twice with different values, or an --upstream that is not host:port (for every server) is refused', async (t) => {
  const empty = await runCli(['config', 'nginx', '--rules', ''])
  t.is(empty.code, 2)
  t.regex(empty.stderr, /^koa-downloads: --rules needs the path of a module, got an empty one\n\nUsage:/)
  const twice = await runCli(['config', 'nginx', '--rules', '/nonexistent.ts', '--rules', fixture('rules.ts')])
  t.is(twice.code, 2)
  t.regex(twice.stderr, /^koa-downloads: --rules is given twice, "\/nonexistent\.ts" and ".*rules\.ts"\n/)
  // The same value twice says the same thing: accepted.
  t.is((await runCli(['config', 'nginx', '--rules', fixture('rules.ts'), '--rules', fixture('rules.ts')])).code, 0)
  for (const server of ['nginx', 'apache', 'lighttpd', 'caddy']) {
    const bad = await runCli(['config', server, '--rules', fixture('rules.ts'), '--upstream', 'garbage'])
    t.is(bad.code, 1, server)
    t.regex(bad.stderr, /upstream must be "host:port", got "garbage"/, server)
  }
  // Apache's snippet names the app it was given in its ProxyPass line.
  const apacheSnippet = await runCli(['config', 'apache', '--rules', fixture('rules.ts'), '--upstream', '127.0.0.1:4123'])
  t.is(apacheSnippet.code, 0, apacheSnippet.stderr)
  t.true(apacheSnippet.stdout.includes('#   ProxyPass / http://127.0.0.1:4123/ disablereuse=On'))
})

test('cli check: two different Content-Type or Content-Disposition fields fail (browsers read the last type, refuse two dispositions); a sandbox that allows scripts in the site\'s origin is no sandbox', async (t) => {
  const server = createServer((req, res) => {
    const body = Buffer.from('<p>hi</p>\n')
    if (req.url === '/two-types') {
      res.writeHead(200, [['Content-Type', 'text/plain; charset=utf-8'], ['Content-Type', 'text/html'], ['Content-Disposition', 'inline; filename="a.txt"'], ['Content-Length', String(body.length)]])
    } else if (req.url === '/two-dispositions') {
      res.writeHead(200, [['Content-Type', 'text/plain'], ['Content-Disposition', 'attachment; filename="Q3 report.txt"'], ['Content-Disposition', 'attachment; filename="3f9a1c-object-key.bin"'], ['Content-Length', String(body.length)]])
    } else {
      const policy = req.url === '/weak-sandbox' ? 'sandbox allow-scripts allow-same-origin' : 'sandbox allow-scripts'
      res.writeHead(200, [['Content-Type', 'text/html'], ['Content-Disposition', 'inline; filename="a.html"'], ['Content-Security-Policy', policy], ['X-Content-Type-Options', 'nosniff'], ['Content-Length', String(body.length)]])
    }
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const types = await runCli(['check', origin + '/two-types'])
  t.is(types.code, 1)
  t.regex(types.stderr, /the response has 2 different Content-Type fields \("text\/plain; charset=utf-8", "text\/html"\)/)
  const dispositions = await runCli(['check', origin + '/two-dispositions'])
  t.is(dispositions.code, 1)
  t.regex(dispositions.stderr, /the response has 2 different Content-Disposition fields/)
  const weak = await runCli(['check', origin + '/weak-sandbox'])
  t.is(weak.code, 1, weak.stdout)
  t.regex(weak.stderr, /sandbox/i)
  const scriptsOnly = await runCli(['check', origin + '/scripts-only'])
  t.is(scriptsOnly.code, 0, scriptsOnly.stderr)
})

test('cli check: with --rules, what the probes cannot cover is said in the OK output (a --file not spelled below the rule\'s sourceDir; an nginx sourceUrl rule\'s location)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kd-check-notes-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const body = Buffer.from('the report\n')
  await writeFile(join(dir, 'copy.txt'), body)
  await writeFile(join(dir, 'rules.ts'), `import { nginx } from ${JSON.stringify(fileURLToPath(new URL('../source/backends/nginx.ts', import.meta.url)))}\nexport default [nginx({ sourceDir: '/srv/private', destinationUrl: '/protected/' }), nginx({ sourceUrl: 'http://127.0.0.1:9/bucket/', destinationUrl: '/_origin/' })]\n`)
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Disposition': 'attachment; filename="report.txt"', 'X-Content-Type-Options': 'nosniff', 'Content-Length': String(body.length) })
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const checked = await runCli(['check', `http://127.0.0.1:${(server.address() as AddressInfo).port}/report`, '--rules', join(dir, 'rules.ts'), '--file', join(dir, 'copy.txt')])
  t.is(checked.code, 0, checked.stderr)
  t.regex(checked.stdout, /not probed: .*copy\.txt is not below the sourceDir of an nginx rule that covers it first/)
  t.regex(checked.stdout, /not probed: the location \/_origin\/ of an nginx sourceUrl rule/)
})
