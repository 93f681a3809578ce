import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nginx } from '../../source/backends/nginx.ts'
import { sha256 } from '../helpers/app.ts'
import { proxiedApp, runCli } from '../helpers/offload-suite.ts'

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
