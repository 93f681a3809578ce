// The complete configurations `koa-downloads config <server> --listen --upstream --prefix` prints,
// started by their own "# Run:" line the way a process manager starts them: standard output and
// error are pipes (sockets, as Node's spawn and systemd's journal give), not a terminal or a file.
// Apache exited at once when its ErrorLog was /dev/stderr, which cannot be opened on a socket.
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { nginx } from '../../source/backends/nginx.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import type { ConfigRule, ServerName } from '../../source/server-config.ts'
import { freePort, makeWorldReadable, proxyTest } from '../helpers/proxies.ts'

const fileOf: Record<ServerName, string> = { nginx: 'nginx.conf', apache: 'httpd.conf', lighttpd: 'lighttpd.conf', caddy: 'Caddyfile' }

for (const server of ['nginx', 'apache', 'lighttpd', 'caddy'] as const) {
  const { test: proxied } = proxyTest(server)
  proxied(`${server}: the complete configuration starts from its "# Run:" line with pipes as standard output and error, and answers (the app being down: 502, or 503 from Apache and lighttpd)`, async (t) => {
    const prefix = await mkdtemp(join(tmpdir(), `kd-stdio-${server}-`))
    t.teardown(async () => { await rm(prefix, { recursive: true, force: true }) })
    const files = join(prefix, 'files')
    const rule: ConfigRule = server === 'nginx'
      ? nginx({ sourceDir: files, destinationUrl: '/protected/' })
      : server === 'caddy' ? caddy({ sourceDir: files, destinationUrl: '/protected/' }) : server === 'apache' ? apache({ sourceDir: files, destinationDir: files }) : lighttpd({ sourceDir: files, destinationDir: files })
    const [port, upstream] = [await freePort(), await freePort()]
    const text = renderServerConfig(server, [rule], { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${upstream}`, prefix } })
    await writeFile(join(prefix, fileOf[server]), text)
    makeWorldReadable(prefix)
    const run = /^# Run: (.*)$/m.exec(text)?.[1] ?? ''
    t.not(run, '')
    // Its own process group, stopped as one by the PID of the shell that runs the line.
    const child = spawn('sh', ['-c', run], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
    t.teardown(async () => {
      try { process.kill(-(child.pid as number), 'SIGTERM') } catch {}
      await exited
    })
    let status = 0
    for (let attempt = 0; attempt < 100 && status === 0 && child.exitCode === null; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      try {
        const response = await fetch(`http://127.0.0.1:${port}/anything`)
        await response.arrayBuffer()
        status = response.status
      } catch {}
    }
    t.is(child.exitCode, null, `${server} exited: ${output}`)
    const expected = server === 'apache' || server === 'lighttpd' ? 503 : 502
    t.is(status, expected, output)
    // Whatever Host the client names, the listener's configuration answers it (Caddy's site
    // address once matched only the listen address itself: an empty 200 for every other Host).
    for (const host of ['localhost', 'downloads.example.com']) {
      const answer = await new Promise<{ status: number | undefined, body: string }>((resolve, reject) => {
        get({ host: '127.0.0.1', port, path: '/anything', headers: { host: `${host}:${port}` } }, (res) => {
          let body = ''
          res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => { resolve({ status: res.statusCode, body }) })
        }).on('error', reject)
      })
      t.is(answer.status, expected, `Host: ${host}: ${answer.body}`)
    }
  })
}
