import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, openSync, closeSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import test from 'ava'
import type { ImplementationFn } from 'ava'
import { apache } from '../../source/backends/apache.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { nginx } from '../../source/backends/nginx.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import { freePort } from './free-port.ts'
import type { ConfigRule, ServerName } from '../../source/server-config.ts'

// Resolved when the module loads: ava decides skips while tests are being declared.
const required: Record<ServerName, string[]> = {
  nginx: ['/usr/sbin/nginx'],
  apache: ['/usr/sbin/apache2', '/usr/lib/apache2/modules/mod_xsendfile.so'],
  lighttpd: ['/usr/sbin/lighttpd'],
  caddy: ['/usr/bin/caddy']
}

// KD_SIMULATE_MISSING=nginx,caddy treats those servers as absent: how to see the skip path locally.
const simulated = new Set((process.env.KD_SIMULATE_MISSING ?? '').split(',').filter(Boolean))
const missing = (server: ServerName): string | undefined =>
  required[server].find((path) => simulated.has(server) || !existsSync(path))

const warned = new Set<ServerName>()

/** The plainest rule per server for the files of `dir`: the proxy serves them from where they are. */
export const dirRuleFor: Record<ServerName, (dir: string) => OffloadRule> = {
  nginx: (dir) => nginx({ sourceDir: dir, destinationUrl: '/protected/' }),
  apache: (dir) => apache({ sourceDir: dir, destinationDir: dir }),
  lighttpd: (dir) => lighttpd({ sourceDir: dir, destinationDir: dir }),
  caddy: (dir) => caddy({ sourceDir: dir, destinationUrl: '/protected/' })
}

/**
 * `test` when the proxy is installed; otherwise `test.skip` with the reason in the title (one
 * console.warn per file) — or a thrown error under REQUIRE_PROXIES=1, so CI cannot skip silently.
 */
export function proxyTest (server: ServerName): { available: boolean, test: (title: string, impl: ImplementationFn<[]>) => void } {
  const absent = missing(server)
  if (absent === undefined) return { available: true, test: (title, impl) => { test(title, impl) } }
  if (process.env.REQUIRE_PROXIES === '1') throw new Error(`${server}: ${absent} not found and REQUIRE_PROXIES=1`)
  if (!warned.has(server)) {
    warned.add(server)
    console.warn(`${server}: integration tests skipped, ${absent} not found (install it, or set REQUIRE_PROXIES=1 to fail instead)`)
  }
  return { available: false, test: (title, impl) => { test.skip(`${title} [skipped: ${absent} not found]`, impl) } }
}

const isRoot = process.getuid?.() === 0

/** Workers started by a root master run as nobody/www-data: they must be able to read the tree. */
export function makeWorldReadable (dir: string): void {
  if (!isRoot) return
  const result = spawnSync('chmod', ['-R', 'a+rX', dir])
  if (result.status !== 0) throw new Error(`chmod -R a+rX ${dir}: ${String(result.stderr)}`)
}

export { freePort }

interface Commands { file: string, check: string[], run: string[], stopSignal: NodeJS.Signals, env?: Record<string, string> }

function commandsFor (server: ServerName, prefix: string): Commands {
  switch (server) {
    case 'nginx': {
      const file = join(prefix, 'nginx.conf')
      const base = ['/usr/sbin/nginx', '-p', prefix, '-c', file, '-e', 'stderr']
      return { file, check: [...base, '-t'], run: [...base, '-g', 'daemon off;'], stopSignal: 'SIGQUIT' }
    }
    case 'apache': {
      const file = join(prefix, 'httpd.conf')
      return { file, check: ['/usr/sbin/apache2', '-f', file, '-t'], run: ['/usr/sbin/apache2', '-f', file, '-DFOREGROUND'], stopSignal: 'SIGTERM' }
    }
    case 'lighttpd': {
      const file = join(prefix, 'lighttpd.conf')
      return { file, check: ['/usr/sbin/lighttpd', '-tt', '-f', file], run: ['/usr/sbin/lighttpd', '-D', '-f', file], stopSignal: 'SIGTERM' }
    }
    case 'caddy': {
      const file = join(prefix, 'Caddyfile')
      const args = ['--config', file, '--adapter', 'caddyfile']
      return {
        file,
        check: ['/usr/bin/caddy', 'validate', ...args],
        run: ['/usr/bin/caddy', 'run', ...args],
        stopSignal: 'SIGTERM',
        env: { XDG_CONFIG_HOME: join(prefix, 'cfg'), XDG_DATA_HOME: join(prefix, 'data') }
      }
    }
  }
}

/**
 * Writes the generated full config for `rules` into a temp prefix and runs the server's own
 * config check (`nginx -t`, `apache2 -t`, `lighttpd -tt`, `caddy validate`) without starting it.
 */
export async function checkGeneratedConfig (server: ServerName, rules: readonly ConfigRule[], addresses?: { listen: string, upstream: string }): Promise<{ ok: boolean, output: string, config: string }> {
  const prefix = await mkdtemp(join(tmpdir(), `kd-${server}-check-`))
  try {
    const config = renderServerConfig(server, rules, { full: { listen: addresses?.listen ?? `127.0.0.1:${await freePort()}`, upstream: addresses?.upstream ?? '127.0.0.1:3000', prefix } })
    const commands = commandsFor(server, prefix)
    await writeFile(commands.file, config)
    await mkdir(join(prefix, 'tmp'))
    const [bin = '', ...args] = commands.check
    const result = spawnSync(bin, args, { env: { ...process.env, ...commands.env }, encoding: 'utf8' })
    return { ok: result.status === 0, output: result.stdout + result.stderr, config }
  } finally {
    await rm(prefix, { recursive: true, force: true })
  }
}

/**
 * A complete nginx.conf for a test's own `configFor`: one worker as `nobody`, logs to stderr, every
 * temp path under `prefix`, and `http` holding `httpLines` (server blocks and settings).
 */
export function nginxConfig (prefix: string, httpLines: string[]): string {
  return [
    'worker_processes 1;',
    `pid ${prefix}/nginx.pid;`,
    'error_log stderr notice;',
    'user nobody nogroup;',
    'events { worker_connections 64; }',
    'http {',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${prefix}/tmp/${kind};`),
    ...httpLines,
    '}'
  ].join('\n')
}

export interface StartProxyOptions {
  /** The app's offload rules: the config is what `koa-downloads config <server> --rules …` prints for them. */
  rules: readonly ConfigRule[]
  /** Port of the Koa app on 127.0.0.1. */
  appPort: number
  /** A hand-written configuration instead of the generated one (e.g. the README's server block). */
  configFor?: ((where: { port: number, prefix: string, appPort: number }) => string) | undefined
}

export interface RunningProxy {
  server: ServerName
  port: number
  /** `http://127.0.0.1:<port>` */
  url: string
  prefix: string
  /** The generated configuration the proxy runs. */
  config: string
  /** The proxy's stdout and stderr so far (print it when a test fails). */
  logs: () => string
  stop: () => Promise<void>
}

/** After a failed test, logs each proxy's output and configuration (an afterEach.always hook body). */
export function logProxiesIfFailed (t: { passed: boolean, log: (...values: unknown[]) => void }, proxies: Iterable<RunningProxy>): void {
  if (t.passed) return
  for (const p of proxies) t.log(`--- ${p.server} output ---\n${p.logs()}\n--- config ---\n${p.config}`)
}

function waitForExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => { resolve(false) }, ms)
    child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

function canConnect (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

/**
 * Starts `server` in the foreground on an ephemeral loopback port with a generated full config in
 * a fresh temp prefix; checks the config first; resolves once the port accepts connections.
 */
export async function startProxy (server: ServerName, options: StartProxyOptions): Promise<RunningProxy> {
  let lastError: Error | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(server, options)
    } catch (error) {
      lastError = error as Error
      // Only a lost port race is worth another try; a bad config fails the same way again.
      if (!/in use|EADDRINUSE/i.test(lastError.message)) throw lastError
    }
  }
  throw lastError ?? new Error('unreachable')
}

const cli = fileURLToPath(new URL('../../source/cli.ts', import.meta.url))

/**
 * The config exactly as users get it: `koa-downloads config <server> --rules <module> --listen …
 * --upstream … --prefix …`, with the rules' data written to a module (the generator only reads their
 * readonly fields, so plain data is what it sees either way).
 */
function generateWithCli (server: ServerName, rules: readonly ConfigRule[], prefix: string, port: number, appPort: number): string {
  const module = join(prefix, 'rules.mjs')
  writeFileSync(module, `export const rules = ${JSON.stringify(rules, null, 2)}\n`)
  const args = [cli, 'config', server, '--rules', module, '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${appPort}`, '--prefix', prefix]
  const result = spawnSync(process.execPath, args, { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`koa-downloads config ${server} failed (${String(result.status)}):\n${result.stderr}`)
  return result.stdout
}

/** How long a proxy may take to accept connections (generous: on two cores shared with other test runs, a start took over 20 s once). */
const START_SECONDS = 40

async function startOnce (server: ServerName, { rules, appPort, configFor }: StartProxyOptions): Promise<RunningProxy> {
  const prefix = await mkdtemp(join(tmpdir(), `kd-${server}-`))
  const port = await freePort()
  let config: string
  try {
    config = configFor === undefined ? generateWithCli(server, rules, prefix, port, appPort) : configFor({ port, prefix, appPort })
  } catch (error) {
    await rm(prefix, { recursive: true, force: true })
    throw error
  }
  const commands = commandsFor(server, prefix)
  await writeFile(commands.file, config)
  await mkdir(join(prefix, 'tmp'))
  makeWorldReadable(prefix)
  const env = { ...process.env, ...commands.env }
  const [bin = '', ...checkArgs] = commands.check
  const check = spawnSync(bin, checkArgs, { env, encoding: 'utf8' })
  if (check.status !== 0) {
    await rm(prefix, { recursive: true, force: true })
    throw new Error(`${server} rejected the generated config (${commands.check.join(' ')}):\n${check.stdout}${check.stderr}\n--- config ---\n${config}`)
  }
  const logFile = join(prefix, 'output.log')
  const fd = openSync(logFile, 'a')
  const [runBin = '', ...runArgs] = commands.run
  const child = spawn(runBin, runArgs, { env, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const logs = (): string => { try { return readFileSync(logFile, 'utf8') } catch { return '' } }
  const stop = async (): Promise<void> => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill(commands.stopSignal)
      if (!await waitForExit(child, 8000)) {
        child.kill('SIGKILL')
        await waitForExit(child, 2000)
      }
    }
    await rm(prefix, { recursive: true, force: true })
  }
  const deadline = Date.now() + START_SECONDS * 1000
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const output = logs()
      await stop()
      throw new Error(`${server} exited during start-up (${String(child.exitCode ?? child.signalCode)}):\n${output}`)
    }
    // Our own server must be the one listening: another test's proxy may have taken the same port
    // between freePort() and this start (ours then exits with EADDRINUSE and is started again), and
    // a request sent to that one would get another test's files.
    if (await canConnect(port) && child.pid !== undefined && listensOn(child.pid, port)) break
    if (Date.now() > deadline) {
      const output = logs()
      await stop()
      throw new Error(`${server} did not accept connections on ${port} within ${START_SECONDS} s:\n${output}`)
    }
    await sleep(50)
  }
  return { server, port, url: `http://127.0.0.1:${port}`, prefix, config, logs, stop }
}

/**
 * Whether process `pid` holds the socket listening on loopback `port`: the LISTEN entry of
 * /proc/net/tcp for the port, and a descriptor of `pid` naming that socket's inode.
 */
function listensOn (pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const inodes = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(table, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the tenth field
      if (fields[1]?.endsWith(`:${hexPort}`) === true && fields[3] === '0A' && fields[9] !== undefined) inodes.add(fields[9])
    }
  }
  if (inodes.size === 0) return false
  let fds: string[]
  try { fds = readdirSync(`/proc/${pid}/fd`) } catch { return false }
  return fds.some((fd) => {
    try { return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '') } catch { return false }
  })
}
