// npm run bench [-- --full] [-- --json] [-- --only=4k,ranges] [-- --sendfile=on|off] [-- --threadpool=N] [-- --semi-space=MiB] — see docs/benchmarks.md
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, setPriority } from 'node:os'
import { join } from 'node:path'
import { renderChart } from './lib/chart.ts'
import { evaluateGoals } from './lib/goals.ts'
import { makeFixtures } from './lib/fixtures.ts'
import { buildLibrary, projectDir } from './lib/library.ts'
import { chooseSendfile } from './lib/calibrate.ts'
import type { SendfileChoice } from './lib/calibrate.ts'
import { measureWorkload } from './lib/measure.ts'
import type { Timing, WorkloadResult } from './lib/measure.ts'
import { runningChildren, stopAll, stopAllBut, useNodeArgs } from './lib/processes.ts'
import { baselineOf, markdownResults, printGoals, printResults, printSlowClients, ratioTo, roundRatios } from './lib/report.ts'
import { slowClients } from './lib/slow-clients.ts'
import type { SlowClientsResult } from './lib/slow-clients.ts'
import { servedByNginx, startTargets } from './lib/targets.ts'
import type { TargetId } from './lib/targets.ts'
import { BUCKET, startStorage } from './lib/storage.ts'
import type { Storage } from './lib/storage.ts'
import { remoteWorkloads, streamingWorkloads } from './lib/workloads.ts'

const args = process.argv.slice(2)
const full = args.includes('--full')
const listOption = (name: string): string[] | undefined => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3).split(',')
/** --only=4k,ranges: just these workloads; --targets=kd,koa-raw: just these servers */
const only = listOption('only')
const onlyTargets = listOption('targets')
/** --before=<dir>: also run the library of another checkout (targets kd-before, kd-offload-before, kd-storage-before) */
const before = args.find((arg) => arg.startsWith('--before='))?.slice('--before='.length)
/** --cpu-prof: the koa-downloads servers write V8 CPU profiles into bench/results/profiles/ */
const nodeArgs = args.includes('--cpu-prof') ? ['--cpu-prof', `--cpu-prof-dir=${new URL('./results/profiles/', import.meta.url).pathname}`] : []
const timing: Timing = full ? { warmSeconds: 2, seconds: 4, rounds: 5 } : { warmSeconds: 1, seconds: 1, rounds: 3 }
/** --rounds=N, --seconds=S (whole seconds: wrk's unit): override the mode's */
const numberOption = (name: string): number | undefined => {
  const value = args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
  if (value === undefined) return undefined
  const number = Number(value)
  if (!Number.isSafeInteger(number) || number < 1) throw new TypeError(`--${name} must be a positive integer`)
  return number
}
/** --sendfile=on|off: nginx's setting for the run, instead of measuring both first (bench/lib/calibrate.ts) */
const sendfileOption = args.find((arg) => arg.startsWith('--sendfile='))?.slice('--sendfile='.length)
if (sendfileOption !== undefined && sendfileOption !== 'on' && sendfileOption !== 'off') throw new TypeError('--sendfile must be on or off')
/**
 * --threadpool=N: libuv's thread-pool size (UV_THREADPOOL_SIZE) for every Node process the bench
 * starts, servers and s3rver alike; without it, the environment's (libuv's default is 4). The file
 * system calls of every Node server go through that pool, and on a small VM its size changes
 * what each call costs (docs/benchmarks.md, item 60).
 */
const threadpool = numberOption('threadpool')
if (threadpool !== undefined) {
  if (threadpool > 1024) throw new TypeError('--threadpool must be at most 1024 (libuv\'s limit)')
  process.env.UV_THREADPOOL_SIZE = String(threadpool)
}
/**
 * --semi-space=MiB: V8's young generation fixed at this size (`--min-semi-space-size` and
 * `--max-semi-space-size`, on the command line: Node refuses the first in NODE_OPTIONS) for every
 * Node server and s3rver. V8 otherwise grows each server's young generation in steps, sooner in a
 * faster server, and a peak RSS follows the step a server has reached (docs/benchmarks.md, item
 * 61); fixed, every server's peak is measured at the same size. (The command line wins over
 * NODE_OPTIONS: the slow-clients variant with --max-semi-space-size=8 then runs at this size too.)
 */
const semiSpace = numberOption('semi-space')
if (semiSpace !== undefined) useNodeArgs([`--min-semi-space-size=${semiSpace}`, `--max-semi-space-size=${semiSpace}`])
const threadpoolSize = process.env.UV_THREADPOOL_SIZE === undefined || process.env.UV_THREADPOOL_SIZE === '' ? undefined : process.env.UV_THREADPOOL_SIZE
timing.rounds = numberOption('rounds') ?? timing.rounds
timing.seconds = numberOption('seconds') ?? timing.seconds
const log = (line: string): void => { process.stderr.write(line + '\n') }

let fixturesDir: string | undefined
let storage: Storage | undefined
async function cleanUp (): Promise<void> {
  await storage?.stop()
  await stopAll()
  if (fixturesDir !== undefined) rmSync(fixturesDir, { recursive: true, force: true })
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { void cleanUp().finally(() => process.exit(130)) })
}

// The machine is shared (other work runs tests and type checks at the same time): when allowed,
// raise the runner's priority; the servers, nginx and wrk inherit it.
let niced = false
try { setPriority(-15); niced = true } catch { /* not root: run at normal priority */ }

// The load generator and the proxy come from Debian, not npm: say so before building anything.
const missingTools = [['/usr/bin/wrk', 'wrk'], ['/usr/sbin/nginx', 'nginx']].filter(([path]) => !existsSync(path as string)).map(([, name]) => name as string)
if (missingTools.length > 0) {
  process.stderr.write(`bench: ${missingTools.join(' and ')} not found: apt-get install ${missingTools.join(' ')} (Debian's packages; wrk is the load generator, nginx the proxy and the limit)\n`)
  process.exit(2)
}

try {
  const started = Date.now()
  log(`koa-downloads bench, ${full ? 'full' : 'quick'} mode: ${timing.rounds} interleaved rounds of ${timing.seconds} s per target${niced ? ', at nice -15' : ''}; load average ${loadavg().map((n) => n.toFixed(1)).join(' ')}`)
  // The koa-downloads servers load dist/, as users do: build it (and the --before tree's) first.
  for (const dir of before === undefined ? [projectDir] : [projectDir, before]) {
    log(`building the library in ${dir}`)
    await buildLibrary(dir)
  }
  const fixtures = makeFixtures()
  fixturesDir = fixtures.dir
  const workloads = [...streamingWorkloads(full), ...remoteWorkloads()].filter((workload) => only === undefined || only.includes(workload.id))
  // nginx serves the files of the nginx-based targets and of the remote workloads (their origin):
  // measure how it serves them fastest first.
  const nginxMeasured = workloads.some((workload) => workload.id.startsWith('remote') ||
    workload.targets.some((id) => servedByNginx(id) && (onlyTargets === undefined || onlyTargets.includes(id))))
  let sendfile: SendfileChoice | undefined
  if (nginxMeasured || sendfileOption !== undefined) {
    sendfile = await chooseSendfile(fixtures, full ? 3 : 2, sendfileOption === undefined ? undefined : sendfileOption === 'on')
    log(sendfile.how === 'given'
      ? `nginx: sendfile ${sendfile.sendfile ? 'on' : 'off'} (--sendfile)`
      : `nginx: sendfile ${sendfile.sendfile ? 'on' : 'off'} for this run: nginx static sent the 256 MiB file at ${sendfile.onMiBPerSec?.toFixed(0)} MiB/s with sendfile on, ${sendfile.offMiBPerSec?.toFixed(0)} with it off`)
  }
  log(threadpoolSize === undefined
    ? 'thread pool: libuv\'s default size (4 threads) in every Node process'
    : `thread pool: UV_THREADPOOL_SIZE=${threadpoolSize} in every Node process${threadpool === undefined ? ' (from the environment)' : ''}`)
  if (semiSpace !== undefined) log(`V8: the young generation fixed at ${semiSpace} MiB per semi-space in every Node server and s3rver (--min-semi-space-size, --max-semi-space-size)`)
  let env: Record<string, string> | undefined
  if (workloads.some((workload) => workload.id.startsWith('s3') || workload.id.startsWith('remote'))) {
    log('starting s3rver (uploading 257 MiB) and the HTTP origin')
    const started = await startStorage(fixtures)
    storage = started
    env = { S3_ENDPOINT: started.s3Endpoint, S3_BUCKET: BUCKET, ORIGIN_URL: started.originUrl }
  }
  // Every workload gets fresh servers (and a fresh nginx): a peak RSS is then the workload's own,
  // not what the process grew in the workloads before it (until the twenty-first round one set of
  // processes served them all, and each server's peak followed its history).
  const storageChildren = runningChildren()
  const results: WorkloadResult[] = []
  for (const workload of workloads) {
    // A new array each time: until run L, 1m and 256m shared one, and the 256m workload ran kd-before twice per round.
    if (before !== undefined && workload.targets.includes('kd')) workload.targets = [workload.targets[0]!, 'kd-before', ...workload.targets.slice(1)]
    if (before !== undefined && workload.targets.includes('kd-storage')) workload.targets = [workload.targets[0]!, 'kd-storage-before', ...workload.targets.slice(1)]
    if (before !== undefined && workload.targets.includes('kd-offload')) {
      const at = workload.targets.indexOf('kd-offload') + 1
      workload.targets = [...workload.targets.slice(0, at), 'kd-offload-before', ...workload.targets.slice(at)]
    }
    if (onlyTargets !== undefined) workload.targets = workload.targets.filter((id) => onlyTargets.includes(id))
    log(`${workload.id}: ${workload.label}`)
    const counter = storage?.counter
    const targets = await startTargets(fixtures, env, nodeArgs, before)
    try {
      results.push(await measureWorkload(workload, targets, timing, log, counter === undefined ? undefined : () => counter.bytes))
    } finally {
      await stopAllBut(storageChildren)
    }
  }
  const memory: SlowClientsResult[] = []
  if (only === undefined || only.includes('slow-clients')) {
    const ids: TargetId[] = full ? ['kd', 'koa-raw', 'koa-send', 'fastify-send', 'send-http'] : ['kd', 'koa-raw', 'send-http']
    if (before !== undefined) ids.splice(1, 0, 'kd-before')
    for (const id of ids) {
      if (onlyTargets !== undefined && !onlyTargets.includes(id)) continue
      log(`slow-clients: 32 clients reading the 1 GiB file slowly from a fresh ${id} server`)
      memory.push(await slowClients(id, fixtures.root, join(fixtures.dir, 'logs'), 'huge.bin', 32, full ? 20 : 6, {}, before))
    }
    if (onlyTargets === undefined || onlyTargets.includes('kd')) {
      // The same with glibc returning every block ≥ 128 KiB to the system at once: shows how much
      // of the growth is freed 256 KiB chunks that the allocator keeps, rather than live data.
      log('slow-clients: again from kd, with MALLOC_MMAP_THRESHOLD_=131072')
      memory.push(await slowClients('kd', fixtures.root, join(fixtures.dir, 'logs'), 'huge.bin', 32, full ? 20 : 6, { MALLOC_MMAP_THRESHOLD_: '131072' }))
      // And with V8's young generation capped: freed chunks are reclaimed by the (then more
      // frequent) scavenges instead of waiting for V8's external-memory threshold.
      log('slow-clients: again from kd, with NODE_OPTIONS=--max-semi-space-size=8')
      memory.push(await slowClients('kd', fixtures.root, join(fixtures.dir, 'logs'), 'huge.bin', 32, full ? 20 : 6, { NODE_OPTIONS: '--max-semi-space-size=8' }))
      // And with serve()'s chunkSize at Node's 64 KiB instead of 256 KiB.
      log('slow-clients: again from kd, with downloads({ chunkSize: 65536 })')
      memory.push(await slowClients('kd', fixtures.root, join(fixtures.dir, 'logs'), 'huge.bin', 32, full ? 20 : 6, { KD_CHUNK_SIZE: '65536' }))
    }
  }
  printResults(results)
  printSlowClients(memory)
  const goals = evaluateGoals(results, memory)
  printGoals(goals)
  if (args.includes('--json')) {
    const machine = {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      node: process.version,
      nginx: versionOf('/usr/sbin/nginx', ['-v']),
      wrk: versionOf('/usr/bin/wrk', ['-v']).split('\n')[0],
      nginxSendfile: sendfile,
      // UV_THREADPOOL_SIZE of every Node process (null: libuv's default, 4)
      threadpool: threadpoolSize ?? null,
      // --semi-space: V8's semi-space size (MiB), fixed in every Node server and s3rver (null: V8's own sizing)
      semiSpaceMiB: semiSpace ?? null,
      loadAverageAtEnd: loadavg()
    }
    const json = {
      date: new Date().toISOString(),
      mode: full ? 'full' : 'quick',
      timing,
      niced,
      machine,
      workloads: results.map((r) => ({
        id: r.workload.id,
        label: r.workload.label,
        metric: r.workload.metric,
        connections: r.workload.connections,
        cells: r.cells.map((c) => ({
          target: c.target,
          median: c.median,
          samples: c.samples,
          ratioToBaseline: ratioTo(r, c.target, 'baseline'),
          baseline: baselineOf(r),
          ratioToBestNodePeer: ratioTo(r, c.target, 'best-peer'),
          roundRatiosToBestNodePeer: roundRatios(r, c.target, 'best-peer'),
          peakRssMiB: c.peakRss === undefined ? undefined : c.peakRss / 1048576,
          cpuMicrosecondsPerRequest: c.cpuPerRequest,
          mainThreadCpuMicrosecondsPerRequest: c.mainCpuPerRequest,
          storageBytesPerRequest: c.storageBytesPerRequest,
          errors: c.errors,
          note: c.note
        })),
        notMeasured: r.skipped
      })),
      slowClients: memory.map((m) => ({ target: m.target, variant: m.variant, beforeMiB: m.before / 1048576, peakMiB: m.peak / 1048576, growthMiB: m.growth / 1048576, receivedMiB: m.received / 1048576 })),
      goals
    }
    const resultsDir = new URL('./results/', import.meta.url)
    mkdirSync(resultsDir, { recursive: true })
    writeFileSync(new URL('latest.json', resultsDir), JSON.stringify(json, null, 2) + '\n')
    writeFileSync(new URL('latest.md', resultsDir), markdownResults(results, memory, goals))
    writeFileSync(new URL('../docs/benchmarks.svg', import.meta.url), renderChart(results, `koa-downloads bench (${full ? 'full' : 'quick'} mode, ${new Date().toISOString().slice(0, 10)}): median throughput ÷ Koa baseline (304: ÷ best Node peer)`))
    log('wrote bench/results/latest.json, bench/results/latest.md and docs/benchmarks.svg')
  }
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; load average ${loadavg().map((n) => n.toFixed(1)).join(' ')}`)
} finally {
  await cleanUp()
}

function versionOf (binary: string, versionArgs: string[]): string {
  // nginx -v prints to stderr; wrk -v exits 1
  const result = spawnSync(binary, versionArgs, { encoding: 'utf8' })
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim()
}
