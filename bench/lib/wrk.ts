import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../wrk.lua', import.meta.url))

export interface WrkResult {
  requests: number
  bytes: number
  /** seconds */
  duration: number
  reqPerSec: number
  /** MiB/s of response bytes (headers included) */
  mibPerSec: number
  /** socket errors plus non-2xx/3xx statuses */
  errors: number
  p50ms: number
  p99ms: number
}

export interface WrkOptions {
  url: string
  connections: number
  seconds: number
  headers?: Record<string, string> | undefined
  /** random ranges of `size` bytes in a file of `fileSize` bytes */
  range?: { size: number, fileSize: number } | undefined
}

interface Raw { requests: number, bytes: number, duration: number, connect: number, read: number, write: number, status: number, timeout: number, p50: number, p99: number }

/** One wrk run (one thread: the machine has 2 cores that wrk shares with the servers). */
export async function runWrk (options: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${Math.max(1, Math.round(options.seconds))}s`, '--timeout', '10s', '-s', script]
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`)
  args.push(options.url)
  const env: Record<string, string> = { ...process.env as Record<string, string> }
  if (options.range !== undefined) {
    env.BENCH_RANGE_SIZE = String(options.range.size)
    env.BENCH_FILE_SIZE = String(options.range.fileSize)
  }
  const child = spawn('/usr/bin/wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  const line = /WRKJSON (\{.*\})/.exec(out)
  if (code !== 0 || line?.[1] === undefined) throw new Error(`wrk ${args.join(' ')} failed (${code}):\n${out}`)
  const raw = JSON.parse(line[1]) as Raw
  const duration = raw.duration / 1e6
  return {
    requests: raw.requests,
    bytes: raw.bytes,
    duration,
    reqPerSec: raw.requests / duration,
    mibPerSec: raw.bytes / duration / 1048576,
    errors: raw.connect + raw.read + raw.write + raw.status + raw.timeout,
    p50ms: raw.p50 / 1000,
    p99ms: raw.p99 / 1000
  }
}
