import type { WorkloadResult } from './measure.ts'
import type { Goal } from './goals.ts'
import type { SlowClientsResult } from './slow-clients.ts'
import { nodePeers, targetLabels } from './targets.ts'
import type { TargetId } from './targets.ts'

export const baselineOf = (result: WorkloadResult): TargetId => result.workload.baseline ?? 'koa-raw'

type Cell = WorkloadResult['cells'][number]

/** The cell and its reference; `reference`: a target, 'baseline' (the workload's), or 'best-peer' (the fastest Node peer that answered correctly). */
function pairOf (result: WorkloadResult, target: TargetId, reference: TargetId | 'best-peer' | 'baseline'): [Cell, Cell] | undefined {
  if (reference === 'baseline') reference = baselineOf(result)
  const cell = result.cells.find((c) => c.target === target)
  const ref = reference === 'best-peer' ? bestPeer(result) : result.cells.find((c) => c.target === reference)
  if (cell === undefined || ref === undefined || ref.note !== undefined) return undefined
  return [cell, ref]
}

/** The ratio of the medians. */
export function ratioTo (result: WorkloadResult, target: TargetId, reference: TargetId | 'best-peer' | 'baseline'): number | undefined {
  const pair = pairOf(result, target, reference)
  return pair === undefined ? undefined : pair[0].median / pair[1].median
}

/**
 * The same ratio round by round (each round runs every server once, one after the other, so two
 * samples of one round are the closest pair the run has): how far the ratio moved within the run.
 */
export function roundRatios (result: WorkloadResult, target: TargetId, reference: TargetId | 'best-peer' | 'baseline'): number[] | undefined {
  const pair = pairOf(result, target, reference)
  if (pair === undefined || pair[0].samples.length !== pair[1].samples.length) return undefined
  const [cell, ref] = pair
  return cell.samples.map((sample, round) => sample / ref.samples[round]!)
}

export function bestPeer (result: WorkloadResult): Cell | undefined {
  let best: Cell | undefined
  for (const cell of result.cells) {
    // (a peer whose responses failed is no reference: errors come fast)
    if (nodePeers.includes(cell.target) && cell.note === undefined && cell.errors === 0 && (best === undefined || cell.median > best.median)) best = cell
  }
  return best
}

const fmt = (value: number | undefined, digits = 2): string => value === undefined || Number.isNaN(value) ? '—' : value.toFixed(digits)
const mib = (bytes: number | undefined): string => bytes === undefined ? '—' : (bytes / 1048576).toFixed(0)

/** "0.86–1.23, 1 of 5": the lowest and highest ratio of the rounds, and in how many the goal was met. */
function roundsText ({ values, met }: NonNullable<Goal['rounds']>): string {
  return `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}, ${met} of ${values.length}`
}

/** One table per workload: median, × baseline, × best Node peer, peak RSS. */
export function printResults (results: WorkloadResult[]): void {
  for (const result of results) {
    const { workload } = result
    const lines = [`\n## ${workload.label} (${workload.metric}, median)`, `${'server'.padEnd(44)} ${workload.metric.padStart(9)} ${'×base'.padStart(6)} ${'×peer'.padStart(6)} ${'RSS MiB'.padStart(8)} ${'CPU µs/req'.padStart(10)} ${'main µs'.padStart(8)}  note`]
    for (const cell of result.cells) {
      lines.push(`${targetLabels[cell.target].padEnd(44)} ${fmt(cell.median, 0).padStart(9)} ${fmt(ratioTo(result, cell.target, 'baseline')).padStart(6)} ${fmt(ratioTo(result, cell.target, 'best-peer')).padStart(6)} ${mib(cell.peakRss).padStart(8)} ${fmt(cell.cpuPerRequest, 0).padStart(10)} ${fmt(cell.mainCpuPerRequest, 0).padStart(8)}  ${cell.errors > 0 ? `${cell.errors} errors ` : ''}${cell.note ?? ''}`)
    }
    for (const cell of result.cells) {
      if (cell.storageBytesPerRequest !== undefined) lines.push(`  ${targetLabels[cell.target]}: ${(cell.storageBytesPerRequest / 1024).toFixed(1)} KiB from the storage per request, headers included (${(cell.storageBytesPerRequest / (workload.expect.length || 1)).toFixed(3)}× the range)`)
    }
    for (const { target, reason } of result.skipped) lines.push(`${targetLabels[target].padEnd(44)} ${'—'.padStart(9)}  not measured: ${reason}`)
    process.stdout.write(lines.join('\n') + '\n')
  }
}

export function printSlowClients (results: SlowClientsResult[]): void {
  if (results.length === 0) return
  const lines = ['\n## 32 slow clients downloading a 1 GiB file (RSS of the Node server)', `${'server'.padEnd(44)} ${'before'.padStart(8)} ${'peak'.padStart(8)} ${'growth'.padStart(8)}  received`]
  for (const r of results) {
    lines.push(`${(targetLabels[r.target] + (r.variant === undefined ? '' : `, ${r.variant}`)).padEnd(44)} ${mib(r.before).padStart(8)} ${mib(r.peak).padStart(8)} ${mib(r.growth).padStart(8)}  ${mib(r.received)} MiB in total`)
  }
  process.stdout.write(lines.join('\n') + '\n')
}

export function printGoals (goals: Goal[]): void {
  const lines = ['\n## Targets (issue 7)']
  for (const goal of goals) {
    const status = goal.met === undefined ? 'not measured' : goal.met ? 'met' : 'MISSED'
    lines.push(`${goal.name.padEnd(80)} ${fmt(goal.value).padStart(7)}  ${goal.goal.padEnd(6)}  ${status}${goal.rounds === undefined ? '' : `  (rounds ${roundsText(goal.rounds)})`}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
}

/** The same tables in Markdown, for docs/benchmarks.md (written to bench/results/latest.md with --json). */
export function markdownResults (results: WorkloadResult[], memory: SlowClientsResult[], goals: Goal[]): string {
  const out: string[] = []
  for (const result of results) {
    const { workload } = result
    out.push(`### ${workload.label}`, '', `| server | ${workload.metric} | × baseline | × best Node peer | peak RSS MiB | Node CPU µs/req | main thread µs/req | note |`, '|---|--:|--:|--:|--:|--:|--:|---|')
    for (const cell of result.cells) {
      const storage = cell.storageBytesPerRequest === undefined ? '' : `${(cell.storageBytesPerRequest / 1024).toFixed(1)} KiB from storage per request`
      const notes = [cell.note ?? '', storage, cell.errors > 0 ? `${cell.errors} errors` : ''].filter(Boolean).join('; ')
      out.push(`| ${targetLabels[cell.target]} | ${fmt(cell.median, 0)} | ${fmt(ratioTo(result, cell.target, 'baseline'))} | ${fmt(ratioTo(result, cell.target, 'best-peer'))} | ${mib(cell.peakRss)} | ${fmt(cell.cpuPerRequest, 0)} | ${fmt(cell.mainCpuPerRequest, 0)} | ${notes} |`)
    }
    for (const { target, reason } of result.skipped) out.push(`| ${targetLabels[target]} | — | | | | | | not measured: ${reason} |`)
    out.push('')
  }
  if (memory.length > 0) {
    out.push('### 32 slow clients each downloading a 1 GiB file (fresh server process)', '', '| server | RSS before MiB | peak MiB | growth MiB | received (all clients) MiB |', '|---|--:|--:|--:|--:|')
    for (const r of memory) out.push(`| ${targetLabels[r.target]}${r.variant === undefined ? '' : `, \`${r.variant}\``} | ${mib(r.before)} | ${mib(r.peak)} | ${mib(r.growth)} | ${mib(r.received)} |`)
    out.push('')
  }
  out.push('### Targets', '', '| target | measured | goal | status | rounds: lowest–highest, met in |', '|---|--:|--:|---|---|')
  for (const goal of goals) out.push(`| ${goal.name} | ${fmt(goal.value)} | ${goal.goal} | ${goal.met === undefined ? 'not measured' : goal.met ? 'met' : '**missed**'} | ${goal.rounds === undefined ? '' : roundsText(goal.rounds)} |`)
  return out.join('\n') + '\n'
}
