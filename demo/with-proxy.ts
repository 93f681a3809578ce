// `npm run demo:nginx` (or `node demo/with-proxy.ts <nginx|apache|lighttpd|caddy>` on Node 24):
// the demo behind a real proxy, configured by `koa-downloads config <server>` (renderServerConfig
// in full mode) from the demo's own rules, so that the proxy's column delivers real bytes.
// The proxy listens on PORT (default 3000); the app on a loopback port behind it. Ctrl-C stops both.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmodSync, existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { renderServerConfig, serverNames } from '../source/server-config.ts'
import type { ServerName } from '../source/server-config.ts'
import { createDemo } from './app.ts'
import { rulesFor } from './deliveries.ts'

interface Commands { binaries: string[], file: string, check: string[], run: string[], stop: NodeJS.Signals, env?: Record<string, string> }

// Foreground commands and stop signals of reference/test-infra.md §6.
function commandsFor (server: ServerName, prefix: string): Commands {
  switch (server) {
    case 'nginx': {
      const file = join(prefix, 'nginx.conf')
      const base = ['/usr/sbin/nginx', '-p', prefix, '-c', file, '-e', 'stderr']
      return { binaries: ['/usr/sbin/nginx'], file, check: [...base, '-t'], run: [...base, '-g', 'daemon off;'], stop: 'SIGQUIT' }
    }
    case 'apache': {
      const file = join(prefix, 'httpd.conf')
      return { binaries: ['/usr/sbin/apache2', '/usr/lib/apache2/modules/mod_xsendfile.so'], file, check: ['/usr/sbin/apache2', '-f', file, '-t'], run: ['/usr/sbin/apache2', '-f', file, '-DFOREGROUND'], stop: 'SIGTERM' }
    }
    case 'lighttpd': {
      const file = join(prefix, 'lighttpd.conf')
      return { binaries: ['/usr/sbin/lighttpd'], file, check: ['/usr/sbin/lighttpd', '-tt', '-f', file], run: ['/usr/sbin/lighttpd', '-D', '-f', file], stop: 'SIGTERM' }
    }
    case 'caddy': {
      const file = join(prefix, 'Caddyfile')
      const args = ['--config', file, '--adapter', 'caddyfile']
      return { binaries: ['/usr/bin/caddy'], file, check: ['/usr/bin/caddy', 'validate', ...args], run: ['/usr/bin/caddy', 'run', ...args], stop: 'SIGTERM', env: { XDG_CONFIG_HOME: join(prefix, 'cfg'), XDG_DATA_HOME: join(prefix, 'data') } }
    }
  }
}

function canConnect (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

function exited (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => { resolve(false) }, ms)
    child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

async function main (): Promise<void> {
  const server = (process.argv[2] ?? 'nginx') as ServerName
  if (!serverNames.includes(server)) throw new Error(`usage: node demo/with-proxy.ts <${serverNames.join('|')}>`)
  const port = Number(process.env.PORT ?? 3000)
  const prefix = await mkdtemp(join(tmpdir(), `kd-demo-${server}-`))
  const commands = commandsFor(server, prefix)
  const absent = commands.binaries.find((path) => !existsSync(path))
  if (absent !== undefined) {
    console.error(`${absent} not found: install ${server} (Debian: apt-get install ${server === 'apache' ? 'apache2 libapache2-mod-xsendfile' : server}), or run \`npm run demo\` without a proxy.`)
    process.exitCode = 1
    await rm(prefix, { recursive: true, force: true })
    return
  }

  const demo = await createDemo({ proxy: server })
  const appPort = await demo.listen(0, '127.0.0.1')
  const config = renderServerConfig(server, rulesFor(server, demo.env), { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
  await writeFile(commands.file, config)
  await mkdir(join(prefix, 'tmp'))
  // Started as root, the proxy's workers run as nobody/www-data: they must read the storage disk.
  if (process.getuid?.() === 0) for (const dir of [prefix, demo.env.storageDir]) spawnSync('chmod', ['-R', 'a+rX', dir])
  else chmodSync(demo.env.storageDir, 0o755)

  const env = { ...process.env, ...commands.env }
  const [checkBin = '', ...checkArgs] = commands.check
  const check = spawnSync(checkBin, checkArgs, { env, encoding: 'utf8' })
  const cleanup = async (): Promise<void> => { await demo.stop(); await rm(prefix, { recursive: true, force: true }) }
  if (check.status !== 0) {
    console.error(`${server} rejected the generated configuration:\n${check.stdout}${check.stderr}\n${config}`)
    await cleanup()
    process.exitCode = 1
    return
  }
  const [runBin = '', ...runArgs] = commands.run
  const child = spawn(runBin, runArgs, { env, stdio: ['ignore', 'inherit', 'inherit'] })
  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(commands.stop)
      if (!await exited(child, 8000)) child.kill('SIGKILL')
    }
    await cleanup()
  }
  process.once('SIGINT', () => { void stop() })
  process.once('SIGTERM', () => { void stop() })
  child.once('exit', (code) => {
    if (!stopping) { console.error(`${server} exited (${String(code)})`); process.exitCode = 1; void stop() }
  })

  const deadline = Date.now() + 10_000
  while (!await canConnect(port)) {
    if (stopping) return
    if (Date.now() > deadline) { console.error(`${server} did not listen on ${port} within 10 s`); await stop(); process.exitCode = 1; return }
    await sleep(50)
  }
  console.log(`koa-downloads demo behind ${server} on http://127.0.0.1:${port}  (app on 127.0.0.1:${appPort}, config in ${commands.file}; Ctrl-C to stop)`)
}

await main()
