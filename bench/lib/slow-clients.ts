import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { libraryEnv } from './library.ts'
import { currentRss, peakRss, resetPeakRss, startNode } from './processes.ts'
import type { TargetId } from './targets.ts'

export interface SlowClientsResult {
  target: TargetId
  /** how the server process was started differently, if it was */
  variant?: string | undefined
  /** VmRSS just before the clients connect (bytes) */
  before: number
  /** VmHWM while they download (bytes) */
  peak: number
  growth: number
  /** bytes all clients received in total: they did download, slowly */
  received: number
}

/**
 * `clients` connections each GET the 1 GiB file and read it slowly: the socket stays paused and
 * every 100 ms the client takes at most 64 KiB of what Node buffered, so the TCP window closes and
 * the server must hold back (backpressure) instead of buffering the file in memory.
 */
const scripts: Partial<Record<TargetId, string>> = { kd: 'kd-stream', 'koa-raw': 'koa-raw', 'koa-send': 'koa-send', 'fastify-send': 'fastify-send', 'send-http': 'send-http' }

/** The test runs on a fresh server process (started for it, stopped after), so that the growth is the test's own. */
export async function slowClients (target: TargetId, root: string, logDir: string, name: string, clients: number, seconds: number, env: Record<string, string> = {}, before?: string): Promise<SlowClientsResult> {
  // kd-before: the streaming server with the library of the --before checkout
  if (target === 'kd-before' && before === undefined) throw new Error('slow clients: kd-before needs the --before checkout')
  const script = target === 'kd-before' ? 'kd-stream' : scripts[target]
  if (script === undefined) throw new Error(`slow clients: no server for ${target}`)
  const library = target === 'kd-before' && before !== undefined ? libraryEnv(before) : {}
  const node = await startNode(`${target}-slow`, join(fileURLToPath(new URL('../servers/', import.meta.url)), `${script}.ts`), { BENCH_ROOT: root, ...library, ...env }, logDir)
  try {
    const result = await measure(target, node.pid, new URL(`http://127.0.0.1:${node.port}/files/${name}`), clients, seconds)
    const variant = Object.entries(env).map(([key, value]) => `${key}=${value}`).join(' ')
    return variant === '' ? result : { ...result, variant }
  } finally {
    await node.stop()
  }
}

const SLOW_READ = 64 * 1024

async function measure (target: TargetId, pid: number, url: URL, clients: number, seconds: number): Promise<SlowClientsResult> {
  await sleep(500)
  resetPeakRss(pid)
  const before = currentRss(pid)
  let received = 0
  const sockets: Socket[] = []
  for (let i = 0; i < clients; i++) {
    const socket = connect(Number(url.port), url.hostname)
    socket.on('error', () => {})
    socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`)
    socket.pause()
    sockets.push(socket)
  }
  // Exactly as slow for every server: at most 64 KiB per client every 100 ms (640 KiB/s).
  const timer = setInterval(() => {
    for (const socket of sockets) {
      const chunk = (socket.read(SLOW_READ) ?? socket.read()) as Buffer | null
      if (chunk !== null) received += chunk.length
    }
  }, 100)
  await sleep(seconds * 1000)
  clearInterval(timer)
  const peak = peakRss(pid)
  for (const socket of sockets) socket.destroy()
  await sleep(500)
  return { target, before, peak, growth: peak - before, received }
}
