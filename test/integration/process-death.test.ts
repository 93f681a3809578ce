// The app process dies in the middle of a streamed download: a restart's SIGTERM handler that exits
// before its last response ended, a SIGKILL, an OOM kill, a container's stop timeout. The library
// cannot reset the connection then (it does on a failure it sees, cut-bodies.test.ts): the kernel
// closes the app's socket normally (FIN). A body of unknown length (a generated export) sent as
// HTTP/1.0 has no framing but the end of the connection, so a proxy speaking HTTP/1.0 to the app
// takes the FIN for the end of the file and hands the client a cut file as complete. Over HTTP/1.1
// the body is chunked and the missing last chunk shows. What each proxy does, with the
// configuration `koa-downloads config <server>` generates and with the README's nginx block.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { logProxiesIfFailed, dirRuleFor, makeWorldReadable, nginxConfig, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy, StartProxyOptions } from '../helpers/proxies.ts'

const appScript = fileURLToPath(new URL('../fixtures/apps/dying-export.ts', import.meta.url))

async function startDyingApp (): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, [appScript], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [line] = await Promise.race([
    once(child.stdout!, 'data') as Promise<[Buffer]>,
    once(child, 'exit').then(() => { throw new Error('the app exited before it listened') })
  ])
  return { child, port: Number(line.toString().trim()) }
}

interface Outcome { status: number, complete: boolean, bytes: number, chunked: boolean }

/** GET `url`; once the first bytes of the body arrive, the app process is killed with SIGKILL. */
function downloadWhileKilling (url: string, child: ChildProcess): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let bytes = 0
      const done = (): void => { resolve({ status: res.statusCode ?? 0, complete: res.complete, bytes, chunked: res.headers['transfer-encoding'] === 'chunked' }) }
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0) child.kill('SIGKILL')
        bytes += chunk.length
      })
      res.once('end', done)
      res.once('error', done)
      res.once('aborted', done)
    })
    req.once('error', reject)
    req.setTimeout(20_000, () => { req.destroy(new Error('no end within 20 s')) })
    req.end()
  })
}

async function killedBehind (server: keyof typeof dirRuleFor, t: { passed: boolean, log: (...values: unknown[]) => void }, configFor?: StartProxyOptions['configFor']): Promise<{ outcome: Outcome, config: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-death-'))
  await writeFile(join(dir, 'a.txt'), 'a\n')
  makeWorldReadable(dir)
  const app = await startDyingApp()
  let proxy: RunningProxy | undefined
  try {
    proxy = await startProxy(server, { rules: [dirRuleFor[server](dir)], appPort: app.port, configFor })
    const outcome = await downloadWhileKilling(`${proxy.url}/export.csv`, app.child)
    return { outcome, config: proxy.config }
  } finally {
    if (proxy !== undefined) {
      logProxiesIfFailed(t, [proxy])
      await proxy.stop()
    }
    if (app.child.exitCode === null && app.child.signalCode === null) app.child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}

for (const server of ['nginx', 'apache', 'lighttpd'] as const) {
  const { test } = proxyTest(server)
  test(`${server} (generated configuration): the app process killed in the middle of a body of unknown length → the client sees the cut, never a complete file`, async (t) => {
    const { outcome } = await killedBehind(server, t)
    t.is(outcome.status, 200)
    t.true(outcome.bytes > 0 && outcome.bytes <= 100_000, `${outcome.bytes} bytes`)
    t.false(outcome.complete, `${outcome.bytes} bytes, ended as complete`)
  })
}

{
  const { test } = proxyTest('caddy')
  test('caddy 2.6 (generated configuration): the app process killed in the middle of a body of unknown length reaches the client as complete — Caddy ends every cut body of unknown length normally (cut-bodies.test.ts; docs/deployment/caddy.md: give such downloads a size)', async (t) => {
    const { outcome } = await killedBehind('caddy', t)
    t.is(outcome.status, 200)
    t.true(outcome.complete)
  })
}

{
  const { test } = proxyTest('nginx')
  test('nginx behind the README\'s server block: the app process killed in the middle of a body of unknown length → the client sees the cut', async (t) => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
    const block = /<!-- readme-nginx -->\n```nginx\n([\s\S]*?)\n```/.exec(readme)?.[1]
    if (block === undefined) throw new Error('README: no readme-nginx block')
    const { outcome } = await killedBehind('nginx', t, ({ port, prefix, appPort }) => nginxConfig(prefix, [
      block.replace('listen 80;', `listen 127.0.0.1:${port};`).replace('127.0.0.1:3000', `127.0.0.1:${appPort}`)
    ]))
    t.regex(block, /proxy_http_version 1\.1;/)
    t.is(outcome.status, 200)
    t.false(outcome.complete, `${outcome.bytes} bytes, ended as complete`)
  })

  test('nginx behind a hand-written `location / { proxy_pass …; }` (HTTP/1.0 to the app): the app process killed mid-body → nginx ends the response as complete, the case the generated `proxy_http_version 1.1` is for', async (t) => {
    const { outcome } = await killedBehind('nginx', t, ({ port, prefix, appPort }) => nginxConfig(prefix, [`  server { listen 127.0.0.1:${port}; location / { proxy_pass http://127.0.0.1:${appPort}; } }`]))
    t.is(outcome.status, 200)
    t.true(outcome.complete, 'a FIN over HTTP/1.0 reads as the end of the body')
  })
}
