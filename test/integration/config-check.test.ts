import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { negotiated } from '../../source/backends/negotiated.ts'
import { nginx } from '../../source/backends/nginx.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import type { ConfigRule, ServerName } from '../../source/server-config.ts'
import { filesUrl, sha256 } from '../helpers/app.ts'
import { proxiedApp } from '../helpers/offload-suite.ts'
import { checkGeneratedConfig, nginxConfig, proxyTest } from '../helpers/proxies.ts'

// Directory names that need quoting in every config language; the servers' own parsers judge the
// generated text (`nginx -t`, `apache2 -t`, `lighttpd -tt`, `caddy validate`).
const dir = '/srv/my "private" files/ünï;#x'

const cases: Array<[ServerName, OffloadRule[]]> = [
  ['nginx', [
    nginx({ sourceDir: dir, destinationUrl: '/protected/' }),
    nginx({ sourceDir: '/srv/plain', destinationUrl: '/charset/', charset: 'utf-8', proxyRefusesSymlinks: true }),
    // nginx resolves a fixed origin's host when it loads the config: an address keeps this offline
    nginx({ sourceUrl: 'http://127.0.0.1:9/files/', destinationUrl: '/_origin/' }),
    nginx({ remote: true, destinationUrl: '/_remote/' })
  ]],
  ['apache', [apache({ sourceDir: dir, destinationDir: dir }), apache({ sourceDir: '/srv/plain', destinationDir: '/data/plain' })]],
  ['lighttpd', [lighttpd({ sourceDir: dir, destinationDir: dir }), lighttpd({ sourceDir: '/srv/plain', destinationDir: '/data/plain' })]],
  ['caddy', [
    caddy({ sourceDir: dir, destinationUrl: '/protected/' }),
    caddy({ sourceUrl: 'https://media.example.com/files/', destinationUrl: '/_origin/', header: 'X-Offload' }),
    internalRedirect({ sourceDir: '/srv/plain', destinationUrl: '/private/' })
  ]]
]

for (const [server, rules] of cases) {
  proxyTest(server).test(`config check: ${server} accepts the generated full config (quoted hostile directory, every rule kind)`, async (t) => {
    const { ok, output, config } = await checkGeneratedConfig(server, rules)
    t.true(ok, `${output}\n--- config ---\n${config}`)
  })
}

// negotiated() mappings are not rendered: the error names the location line to write by hand.
// That very line, in a server whose proxy asks for X-Accel-Redirect, must serve the files.
const handWritten = (rules: readonly ConfigRule[]): string[] => {
  try {
    renderServerConfig('nginx', rules)
  } catch (error) {
    return (error as Error).message.split('\n').slice(1).map((line) => line.trim())
  }
  throw new Error('negotiated() rules alone were rendered')
}
const negotiatedNginx = proxiedApp({
  server: 'nginx',
  // nginx alone asks here: its own form, so that the hostile name's "%" is offloaded too.
  rules: ({ protectedDir }) => [negotiated({ allow: ['X-Accel-Redirect'], mapping: { [protectedDir]: '/negotiated/' }, accel: 'encoded' })],
  configFor: (rules) => ({ port, prefix, appPort }) => nginxConfig(prefix, [
    `  server { listen 127.0.0.1:${port};`,
    `    location / { proxy_pass http://127.0.0.1:${appPort}; proxy_set_header X-Sendfile-Type X-Accel-Redirect; }`,
    ...handWritten(rules).map((line) => `    ${line}`),
    '  }'
  ])
})

negotiatedNginx.test('config check: the location line given for a negotiated() mapping, pasted as is, makes nginx serve its X-Accel-Redirect (quoted directory, hostile name)', async (t) => {
  const { proxy, app, fixtures } = negotiatedNginx.context()
  t.is(handWritten([negotiated({ allow: ['X-Accel-Redirect'], mapping: { [fixtures.protectedDir]: '/negotiated/' } })]).length, 1)
  for (const [name, bytes] of [[fixtures.big.name, fixtures.big.bytes], [fixtures.hostile.name, fixtures.hostile.bytes]] as const) {
    const url = filesUrl(name)
    const response = await fetch(proxy.url + url)
    const body = new Uint8Array(await response.arrayBuffer())
    t.is(response.status, 200, name)
    t.is(sha256(body), sha256(bytes), name)
    t.is(app.last(url)?.headers['x-accel-redirect'], filesUrl(name, '/negotiated/'), `${name}: nginx, not the app, sent it`)
  }
  const direct = await fetch(proxy.url + '/negotiated/' + fixtures.big.name)
  await direct.arrayBuffer()
  t.is(direct.status, 404, 'the location is internal')
})

// An IPv6 loopback (an app bound to "localhost" may listen on ::1 only): parseHostPort takes
// "[::1]:port", and each server must accept the configuration written from it.
for (const [server, rules] of cases) {
  proxyTest(server).test(`config check: ${server} accepts the generated full config for --listen [::1]:PORT --upstream [::1]:PORT`, async (t) => {
    const { ok, output, config } = await checkGeneratedConfig(server, rules, { listen: '[::1]:18080', upstream: '[::1]:3000' })
    t.true(ok, `${output}\n--- config ---\n${config}`)
  })
}
