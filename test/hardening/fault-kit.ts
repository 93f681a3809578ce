import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import type { Server } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import type { Context } from 'koa'
import { downloads } from '../../source/downloads.ts'
import type { DownloadsOptions } from '../../source/downloads.ts'

/**
 * Tools for the fault tests. ava runs test files as worker threads of one process, so counts are
 * scoped: file descriptors by the directory they point into, sockets by the port they use.
 */

/** fds of this process open on a file below `dir`. */
export function fdsUnder (dir: string): string[] {
  const found: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(dir)) found.push(`${fd} → ${target}`)
    } catch {}
  }
  return found
}

const tcpStates: Record<string, string> = { '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING' }

/**
 * TCP sockets of the host that use `port` at either end and still hold a descriptor somewhere
 * (every state but LISTEN and TIME_WAIT, which is the kernel's, not a leak). Both ends of a loopback
 * connection show up, so one leaked connection counts twice.
 */
export function socketsOn (port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  const found: string[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(table, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      const local = cols[1]
      const remote = cols[2]
      const state = cols[3]
      if (local === undefined || remote === undefined || state === undefined) continue
      if (!local.endsWith(`:${hex}`) && !remote.endsWith(`:${hex}`)) continue
      if (state === '0A' || state === '06') continue
      found.push(`${local} ${remote} ${tcpStates[state] ?? state}`)
    }
  }
  return found
}

/** Polls `check` until it returns true or `ms` pass; returns the last value. */
export async function settle (check: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (check()) return true
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export interface Deferred<T> { promise: Promise<T>, resolve: (value: T) => void, reject: (error: unknown) => void }
export function deferred<T = void> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

export interface FaultApp {
  port: number
  /** Every error the app emitted ('error' events: what Koa would log). */
  errors: Error[]
  close (): Promise<void>
}

/** A Koa app, downloads() in front of `handler`, listening on loopback; app errors are collected, not printed. */
export async function startApp (handler: (ctx: Context) => void | Promise<void>, options?: DownloadsOptions): Promise<FaultApp> {
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (error: Error) => { errors.push(error) })
  app.use(downloads(options))
  app.use(async (ctx) => { await handler(ctx) })
  const server: Server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    errors,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

export interface Received {
  /** Everything received, head included. */
  raw: Buffer
  /** Whether the socket ended with an error (a reset). */
  reset: boolean
}

/**
 * Sends a GET and controls the reading: `onData` sees how many bytes arrived so far (head
 * included) and may `abort` (destroy the socket, as a browser does when the user cancels) or
 * `pause` (stop reading until `resume`). Resolves when the socket closes.
 */
export function clientRequest (port: number, path: string, headers: Record<string, string> = {},
  onData?: (received: number, control: { abort: () => void, pause: () => void, resume: () => void }) => void): Promise<Received> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let received = 0
    let reset = false
    const socket = connect(port, '127.0.0.1', () => {
      const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...Object.entries(headers).map(([n, v]) => `${n}: ${v}`)]
      socket.write(lines.join('\r\n') + '\r\n\r\n')
    })
    const control = { abort: () => { socket.destroy() }, pause: () => { socket.pause() }, resume: () => { socket.resume() } }
    socket.on('data', (chunk: Buffer) => {
      // A count, not the bytes: concatenating everything so far on every chunk copied about 2 GB
      // per 16 MiB download, in the thread under test.
      chunks.push(chunk)
      received += chunk.length
      onData?.(received, control)
    })
    socket.on('error', () => { reset = true })
    socket.on('close', () => { resolve({ raw: Buffer.concat(chunks), reset }) })
  })
}

/** Splits a raw response into its head and body bytes (no dechunking: these tests use Content-Length). */
export function split (raw: Buffer): { status: number, headers: Record<string, string>, body: Buffer } {
  const end = raw.indexOf('\r\n\r\n')
  if (end === -1) return { status: 0, headers: {}, body: Buffer.alloc(0) }
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(lines[0]?.split(' ')[1]), headers, body: raw.subarray(end + 4) }
}
