import { setTimeout as sleep } from 'node:timers/promises'
import { get } from 'node:http'
import type { Target, TargetId } from './targets.ts'
import type { Workload } from './workloads.ts'
import { cpuTime, peakRss, resetPeakRss } from './processes.ts'
import { runWrk } from './wrk.ts'

export interface Cell {
  target: TargetId
  /** one figure per round, in the workload's metric */
  samples: number[]
  median: number
  /** bytes; the peak RSS of the target's Node process during its runs */
  peakRss: number | undefined
  errors: number
  /** CPU time of the target's Node process per request (µs), median over the rounds: steadier than throughput on a shared machine */
  cpuPerRequest: number | undefined
  cpuSamples: number[]
  /** the same for the main (JavaScript) thread alone: what bounds a Node server's requests per second */
  mainCpuPerRequest: number | undefined
  mainCpuSamples: number[]
  /** bytes (headers included) the storage sent per request, over 20 sequential requests (workloads with countStorageBytes) */
  storageBytesPerRequest?: number | undefined
  note?: string | undefined
}

export interface WorkloadResult {
  workload: Workload
  cells: Cell[]
  skipped: Array<{ target: TargetId, reason: string }>
}

export interface Timing { warmSeconds: number, seconds: number, rounds: number }

interface Probe { status: number, length: number, etag: string | null, lastModified: string | null }

// node:http rather than fetch: fetch adds `Cache-Control: no-cache` to conditional requests, and
// send/@fastify/send then (rightly, for a cache) answer 200 instead of 304.
async function probe (url: string, headers: Record<string, string>): Promise<Probe> {
  return await new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (response) => {
      let length = 0
      response.on('data', (chunk: Buffer) => { length += chunk.length })
      response.on('end', () => {
        const header = (name: string): string | null => {
          const value = response.headers[name]
          return typeof value === 'string' ? value : null
        }
        resolve({ status: response.statusCode ?? 0, length, etag: header('etag'), lastModified: header('last-modified') })
      })
      response.on('error', reject)
    }).on('error', reject)
  })
}

/** The request headers a target gets for this workload (validators come from its own first answer). */
async function headersFor (workload: Workload, target: Target): Promise<Record<string, string>> {
  if (workload.range !== undefined) return { Range: 'bytes=1000-66535' }
  if (workload.revalidate !== true) return {}
  const first = await probe(target.url(workload.name), {})
  if (first.etag !== null) return { 'If-None-Match': first.etag }
  if (first.lastModified !== null) return { 'If-Modified-Since': first.lastModified }
  return {}
}

/**
 * Runs one workload: checks every target answers correctly (status and byte count), warms each
 * up, then runs them interleaved for `rounds` rounds and keeps the medians. Each round starts one
 * target further (A B C, B C A, C A B, …): a server that always ran first, right after the
 * previous round's last one, came out up to 14 % slower than the same code run second (an A/A
 * run of two identical servers, bench/results/quick-chunk-reuse.txt).
 */
export async function measureWorkload (workload: Workload, targets: Map<TargetId, Target>, timing: Timing, log: (line: string) => void, storageBytes?: () => number): Promise<WorkloadResult> {
  const active: Array<{ target: Target, headers: Record<string, string>, note?: string }> = []
  const skipped: WorkloadResult['skipped'] = []
  for (const id of workload.targets) {
    const target = targets.get(id)
    if (target === undefined) continue
    const headers = await headersFor(workload, target)
    const answer = await probe(target.url(workload.name), headers)
    if (answer.status === workload.expect.status && answer.length === workload.expect.length) {
      active.push({ target, headers })
    } else {
      const reason = `answers ${answer.status} with ${answer.length} bytes (expected ${workload.expect.status} with ${workload.expect.length})`
      if (workload.measureAnyway?.includes(id) === true) active.push({ target, headers, note: reason })
      else skipped.push({ target: id, reason })
    }
  }
  const seconds = timing.seconds * workload.weight
  const run = async (target: Target, headers: Record<string, string>, duration: number) => await runWrk({
    url: target.url(workload.name), connections: workload.connections, seconds: duration, headers, range: workload.range
  })
  const storageCost = new Map<TargetId, number>()
  if (workload.countStorageBytes === true && storageBytes !== undefined && workload.range !== undefined) {
    // Sequential requests before any load, so that every byte counted belongs to a complete
    // response (wrk leaves some in flight when it stops).
    const { size, fileSize } = workload.range
    // transfers cut off by the previous workload's end may still be draining
    for (let last = -1; last !== storageBytes();) {
      last = storageBytes()
      await sleep(300)
    }
    for (const { target } of active) {
      const before = storageBytes()
      const count = 20
      for (let i = 0; i < count; i++) {
        const first = Math.floor(Math.random() * (fileSize - size))
        await probe(target.url(workload.name), { Range: `bytes=${first}-${first + size - 1}` })
      }
      storageCost.set(target.id, (storageBytes() - before) / count)
    }
  }

  for (const { target, headers } of active) await run(target, headers, timing.warmSeconds)
  const cells = new Map<TargetId, Cell>(active.map(({ target, note }) => [target.id, { target: target.id, samples: [], median: Number.NaN, peakRss: undefined, errors: 0, cpuPerRequest: undefined, cpuSamples: [], mainCpuPerRequest: undefined, mainCpuSamples: [], note }]))
  for (let round = 0; round < timing.rounds; round++) {
    const shift = round % active.length
    for (const { target, headers } of [...active.slice(shift), ...active.slice(0, shift)]) {
      const cell = cells.get(target.id)
      if (cell === undefined) continue
      const pid = target.node?.pid
      if (pid !== undefined) resetPeakRss(pid)
      const cpuBefore = pid === undefined ? 0 : cpuTime(pid)
      const mainBefore = pid === undefined ? 0 : cpuTime(pid, true)
      const result = await run(target, headers, seconds)
      if (pid !== undefined) {
        cell.peakRss = Math.max(cell.peakRss ?? 0, peakRss(pid))
        cell.cpuSamples.push((cpuTime(pid) - cpuBefore) / Math.max(1, result.requests))
        cell.mainCpuSamples.push((cpuTime(pid, true) - mainBefore) / Math.max(1, result.requests))
      }
      cell.samples.push(workload.metric === 'req/s' ? result.reqPerSec : result.mibPerSec)
      cell.errors += result.errors
    }
    log(`  ${workload.id} round ${round + 1}/${timing.rounds} done`)
  }
  for (const cell of cells.values()) {
    cell.median = median(cell.samples)
    if (cell.cpuSamples.length > 0) cell.cpuPerRequest = median(cell.cpuSamples)
    if (cell.mainCpuSamples.length > 0) cell.mainCpuPerRequest = median(cell.mainCpuSamples)
    cell.storageBytesPerRequest = storageCost.get(cell.target)
  }
  return { workload, cells: [...cells.values()], skipped }
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  if (sorted.length === 0) return Number.NaN
  return sorted.length % 2 === 1 ? sorted[middle] ?? Number.NaN : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}
