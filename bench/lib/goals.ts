import type { WorkloadResult } from './measure.ts'
import { bestPeer, roundRatios } from './report.ts'
import type { SlowClientsResult } from './slow-clients.ts'
import { nodePeers } from './targets.ts'
import type { TargetId } from './targets.ts'

/** One target of issue 7, evaluated from a run's medians. */
export interface Goal {
  name: string
  /** the measured figure (a ratio, or MiB) */
  value: number | undefined
  goal: string
  met: boolean | undefined
  /** a ratio's value in each round, and in how many rounds it met the goal (met or not is decided on the medians) */
  rounds?: { values: number[], met: number } | undefined
}

/** A ratio of medians with its round-by-round values; `errors` when either side had failed responses in the run. */
interface Ratio { value: number, rounds: number[] | undefined, errors: boolean }

const cell = (results: WorkloadResult[], workload: string, target: TargetId) =>
  results.find((r) => r.workload.id === workload)?.cells.find((c) => c.target === target && c.note === undefined)

function ratio (results: WorkloadResult[], workload: string, target: TargetId, reference: TargetId | 'best-peer'): Ratio | undefined {
  const result = results.find((r) => r.workload.id === workload)
  if (result === undefined) return undefined
  const a = cell(results, workload, target)
  const b = reference === 'best-peer' ? bestPeer(result) : cell(results, workload, reference)
  return a === undefined || b === undefined ? undefined : { value: a.median / b.median, rounds: roundRatios(result, target, reference === 'best-peer' ? b.target : reference), errors: a.errors > 0 || b.errors > 0 }
}

function atLeast (name: string, ratio: Ratio | undefined, min: number): Goal {
  const rounds = ratio?.rounds === undefined ? undefined : { values: ratio.rounds, met: ratio.rounds.filter((value) => value >= min).length }
  // wrk counts a failed response (a status of 400 or more, a socket error) as a request: a server
  // answering errors fast would meet any throughput goal. Such a run meets none.
  if (ratio?.errors === true) return { name: `${name} — failed responses in the run, not counted`, value: ratio.value, goal: `≥ ${min}`, met: false, rounds }
  return { name, value: ratio?.value, goal: `≥ ${min}`, met: ratio === undefined ? undefined : ratio.value >= min, rounds }
}

function atMost (name: string, value: number | undefined, max: number, unit = ''): Goal {
  return { name, value, goal: `≤ ${max}${unit}`, met: value === undefined ? undefined : value <= max }
}

export function evaluateGoals (results: WorkloadResult[], memory: SlowClientsResult[]): Goal[] {
  const goals: Goal[] = []
  for (const [id, label] of [['4k', '4 KiB'], ['1m', '1 MiB'], ['256m', '256 MiB'], ['ranges', '64 KiB ranges'], ['304', '304']] as const) {
    goals.push(atLeast(`streaming ${label}: koa-downloads ÷ best Node peer`, ratio(results, id, 'kd', 'best-peer'), 1.1))
  }
  goals.push(atLeast('offload 4 KiB: koa-downloads + nginx ÷ baseline', ratio(results, '4k', 'kd-offload', 'koa-raw'), 1.8))
  goals.push(atLeast('offload 4 KiB: koa-downloads + nginx ÷ hand-written X-Accel-Redirect', ratio(results, '4k', 'kd-offload', 'xaccel-hand'), 0.95))
  // The opt-in lexical confinement (PathFile followSymlinks), shown beside the defaults above.
  goals.push(atLeast('  opt-in followSymlinks: streaming 304 ÷ best Node peer', ratio(results, '304', 'kd-follow', 'best-peer'), 1.1))
  // A StatCache shared by the PathFiles (1 s): a 304 within it makes no file system call.
  goals.push(atLeast('  opt-in statCache: streaming 304 ÷ best Node peer', ratio(results, '304', 'kd-cache', 'best-peer'), 1.1))
  goals.push(atLeast('  opt-in followSymlinks: offload 4 KiB ÷ baseline', ratio(results, '4k', 'kd-offload-follow', 'koa-raw'), 1.8))
  goals.push(atLeast('  opt-in followSymlinks: offload 4 KiB ÷ hand-written', ratio(results, '4k', 'kd-offload-follow', 'xaccel-hand'), 0.95))
  // nginx({ proxyRefusesSymlinks }): symlinks refused by nginx's own disable_symlinks, no realpath in the app.
  goals.push(atLeast('  opt-in proxyRefusesSymlinks: offload 4 KiB ÷ baseline', ratio(results, '4k', 'kd-offload-refuse', 'koa-raw'), 1.8))
  goals.push(atLeast('  opt-in proxyRefusesSymlinks: offload 4 KiB ÷ hand-written', ratio(results, '4k', 'kd-offload-refuse', 'xaccel-hand'), 0.95))
  goals.push(atLeast('offload 256 MiB: koa-downloads + nginx ÷ nginx static', ratio(results, '256m', 'kd-offload', 'nginx'), 0.95))
  goals.push(atLeast('offload 256 MiB: koa-downloads + nginx ÷ Node streaming behind the same nginx', ratio(results, '256m', 'kd-offload', 'kd-via-nginx'), 2))
  const s3 = cell(results, 's3-ranges', 'kd-storage')
  goals.push(atMost('S3 64 KiB range: bytes from the storage ÷ 64 KiB (headers included)', s3?.storageBytesPerRequest === undefined ? undefined : s3.storageBytesPerRequest / 65536, 1.1))
  // "No higher than the peers'": against each of them, so the lowest peak RSS of the Node peers
  // that serve the workload, on every streaming workload (not the highest peer's, on two).
  for (const [id, label] of [['4k', '4 KiB'], ['1m', '1 MiB'], ['256m', '256 MiB'], ['ranges', '64 KiB ranges'], ['304', '304']] as const) {
    const result = results.find((r) => r.workload.id === id)
    const peers = result?.cells.filter((c) => nodePeers.includes(c.target) && c.note === undefined && c.peakRss !== undefined).map((c) => c.peakRss as number) ?? []
    const own = cell(results, id, 'kd')?.peakRss
    goals.push(atMost(`peak RSS ${label}: koa-downloads ÷ lowest Node peer`, own === undefined || peers.length === 0 ? undefined : own / Math.min(...peers), 1))
  }
  const slow = memory.find((m) => m.target === 'kd' && m.variant === undefined)
  goals.push(atMost('32 slow clients × 1 GiB: RSS growth (MiB)', slow === undefined ? undefined : slow.growth / 1048576, 64))
  const smallChunks = memory.find((m) => m.target === 'kd' && m.variant === 'KD_CHUNK_SIZE=65536')
  goals.push(atMost('  opt-in chunkSize 64 KiB: 32 slow clients, RSS growth (MiB)', smallChunks === undefined ? undefined : smallChunks.growth / 1048576, 64))
  return goals
}
