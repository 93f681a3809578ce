import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { nginx } from '../../source/backends/nginx.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import type { ServerName } from '../../source/server-config.ts'
import { checkGeneratedConfig, proxyTest } from '../helpers/proxies.ts'

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
