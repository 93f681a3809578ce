import type { WorkloadResult } from './measure.ts'
import { nodePeers, targetLabels } from './targets.ts'
import type { TargetId } from './targets.ts'

const BASELINE: TargetId = 'koa-raw'

export function ratioTo (result: WorkloadResult, target: TargetId, reference: TargetId | 'best-peer'): number | undefined {
  const cell = result.cells.find((c) => c.target === target)
  const ref = reference === 'best-peer' ? bestPeer(result) : result.cells.find((c) => c.target === reference)
  if (cell === undefined || ref === undefined || ref.note !== undefined) return undefined
  return cell.median / ref.median
}

export function bestPeer (result: WorkloadResult): WorkloadResult['cells'][number] | undefined {
  let best: WorkloadResult['cells'][number] | undefined
  for (const cell of result.cells) {
    if (nodePeers.includes(cell.target) && cell.note === undefined && (best === undefined || cell.median > best.median)) best = cell
  }
  return best
}

const fmt = (value: number | undefined, digits = 2): string => value === undefined || Number.isNaN(value) ? '—' : value.toFixed(digits)
const mib = (bytes: number | undefined): string => bytes === undefined ? '—' : (bytes / 1048576).toFixed(0)

/** One table per workload: median, × baseline, × best Node peer, peak RSS. */
export function printResults (results: WorkloadResult[]): void {
  for (const result of results) {
    const { workload } = result
    const lines = [`\n## ${workload.label} (${workload.metric}, median)`, `${'server'.padEnd(44)} ${workload.metric.padStart(9)} ${'×base'.padStart(6)} ${'×peer'.padStart(6)} ${'RSS MiB'.padStart(8)} ${'CPU µs/req'.padStart(10)}  note`]
    for (const cell of result.cells) {
      lines.push(`${targetLabels[cell.target].padEnd(44)} ${fmt(cell.median, 0).padStart(9)} ${fmt(ratioTo(result, cell.target, BASELINE)).padStart(6)} ${fmt(ratioTo(result, cell.target, 'best-peer')).padStart(6)} ${mib(cell.peakRss).padStart(8)} ${fmt(cell.cpuPerRequest, 0).padStart(10)}  ${cell.errors > 0 ? `${cell.errors} errors ` : ''}${cell.note ?? ''}`)
    }
    for (const cell of result.cells) {
      if (cell.storageBytesPerRequest !== undefined) lines.push(`  ${targetLabels[cell.target]}: ${(cell.storageBytesPerRequest / 1024).toFixed(1)} KiB from the storage per request, headers included (${(cell.storageBytesPerRequest / (workload.expect.length || 1)).toFixed(3)}× the range)`)
    }
    for (const { target, reason } of result.skipped) lines.push(`${targetLabels[target].padEnd(44)} ${'—'.padStart(9)}  not measured: ${reason}`)
    process.stdout.write(lines.join('\n') + '\n')
  }
}
