import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** A child process the runner started (a Node server, nginx, s3rver), stopped by its own PID. */
export interface Child {
  name: string
  pid: number
  port: number
  log: string
  stop (): Promise<void>
}

const running = new Set<Child>()

/** Stops every child still running (on exit, on Ctrl-C, after a failure). */
export async function stopAll (): Promise<void> {
  await Promise.all([...running].map(async (child) => { await child.stop() }))
}

/** The children running now: what `stopAllBut` keeps. */
export function runningChildren (): ReadonlySet<Child> {
  return new Set(running)
}

/** Stops every child started since `keep` was taken (a workload's servers; the storage stays). */
export async function stopAllBut (keep: ReadonlySet<Child>): Promise<void> {
  await Promise.all([...running].filter((child) => !keep.has(child)).map(async (child) => { await child.stop() }))
}

function track (name: string, proc: ChildProcess, port: number, log: string, signal: NodeJS.Signals): Child {
  const pid = proc.pid
  if (pid === undefined) throw new Error(`${name}: no pid`)
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve()
    else proc.once('exit', () => { resolve() })
  })
  const child: Child = {
    name,
    pid,
    port,
    log,
    async stop () {
      if (!running.delete(child)) return
      proc.kill(signal)
      const timer = setTimeout(() => { proc.kill('SIGKILL') }, 5000)
      await exited
      clearTimeout(timer)
    }
  }
  running.add(child)
  return child
}

/** Node options for every Node process startNode() starts (the runner's --semi-space). */
let everyNodeArgs: readonly string[] = []

/** Sets the Node options every later startNode() passes, before its own `nodeArgs`. */
export function useNodeArgs (args: readonly string[]): void {
  everyNodeArgs = args
}

/**
 * Starts `node <script>` on Node 24 (the runner's own binary) and waits for its `PORT <n>` line.
 * `nodeArgs` go before the script (e.g. `--cpu-prof`), after those of useNodeArgs().
 */
export async function startNode (name: string, script: string, env: Record<string, string>, logDir: string, nodeArgs: string[] = [], scriptArgs: string[] = [], ready = /PORT (\d+)/): Promise<Child> {
  const log = join(logDir, `${name}.log`)
  const err = openSync(log, 'a')
  const child = spawn(process.execPath, [...everyNodeArgs, ...nodeArgs, script, ...scriptArgs], {
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', err]
  })
  closeSync(err)
  const stdout = child.stdout
  if (stdout === null) throw new Error(`${name}: no stdout`)
  const port = await new Promise<number>((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => { reject(new Error(`${name}: not ready within 15 s (see ${log})`)) }, 15_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code} (see ${log})`)) })
    stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
      const match = ready.exec(seen)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
  })
  stdout.resume()
  return track(name, child, port, log, 'SIGTERM')
}

/** nginx in the foreground with `config` written to `<prefix>/nginx.conf`; stopped with SIGQUIT. */
export async function startNginx (prefix: string, config: string, port: number): Promise<Child> {
  const file = join(prefix, 'nginx.conf')
  writeFileSync(file, config)
  const log = join(prefix, 'nginx.log')
  const base = ['-p', prefix, '-c', file, '-e', log]
  const check = spawn('/usr/sbin/nginx', [...base, '-t'], { stdio: 'ignore' })
  const code = await new Promise<number | null>((resolve) => check.once('exit', resolve))
  if (code !== 0) throw new Error(`nginx -t failed:\n${readLog(log)}`)
  const child = spawn('/usr/sbin/nginx', [...base, '-g', 'daemon off;'], { stdio: 'ignore' })
  const tracked = track('nginx', child, port, log, 'SIGQUIT')
  await waitForPort(port, 10_000, () => readLog(log))
  return tracked
}

function readLog (path: string): string {
  try { return readFileSync(path, 'utf8') } catch { return '' }
}

export async function waitForPort (port: number, timeout: number, why: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeout
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => { resolve(false) })
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeout} ms ${why()}`)
}

/** Peak RSS since the last reset, in bytes (VmHWM). */
export function peakRss (pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? Number.NaN : Number(match[1]) * 1024
}

/** Current RSS in bytes (VmRSS). */
export function currentRss (pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? Number.NaN : Number(match[1]) * 1024
}

/** Resets VmHWM to the current RSS (Linux: `echo 5 > /proc/<pid>/clear_refs`), so each workload gets its own peak. */
export function resetPeakRss (pid: number): void {
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5') } catch { /* older kernels: the peak then spans the run */ }
}

/**
 * CPU time (user + system) the process has used so far, in microseconds: every thread (the libuv
 * thread pool too), or with `mainThread` only the JavaScript thread — the one whose time bounds
 * the requests per second of a Node server.
 */
export function cpuTime (pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
  // fields after the parenthesised command name; utime and stime are the 14th and 15th fields
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / 100
}
