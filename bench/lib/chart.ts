import type { WorkloadResult } from './measure.ts'
import { baselineOf, bestPeer } from './report.ts'
import { targetLabels } from './targets.ts'
import type { TargetId } from './targets.ts'

const colours: Record<TargetId, string> = {
  kd: '#d6336c',
  'kd-before': '#f783ac',
  'kd-follow': '#a61e4d',
  'kd-cache': '#5f3dc4',
  'koa-floor': '#ced4da',
  'kd-storage': '#d6336c',
  'kd-storage-before': '#f783ac',
  'raw-storage': '#868e96',
  'koa-raw': '#868e96',
  'koa-send': '#74c0fc',
  'fastify-send': '#4dabf7',
  'send-http': '#1c7ed6',
  nginx: '#2b8a3e',
  'kd-offload': '#e8590c',
  'kd-offload-follow': '#d9480f',
  'kd-offload-refuse': '#fd7e14',
  'kd-offload-before': '#ffc078',
  'xaccel-hand': '#ffa94d',
  'kd-via-nginx': '#ae3ec9'
}

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/**
 * The bar every other is divided by: the Koa baseline, or, where it does not do the workload's work
 * (it answers a revalidation with 200: the 304 workload), the best Node peer.
 */
function referenceOf (result: WorkloadResult): { target: TargetId, median: number, name: string } | undefined {
  const baseline = result.cells.find((c) => c.target === baselineOf(result) && c.note === undefined)
  if (baseline !== undefined) return { target: baseline.target, median: baseline.median, name: 'baseline' }
  const best = bestPeer(result)
  return best === undefined ? undefined : { target: best.target, median: best.median, name: `best Node peer (${targetLabels[best.target]})` }
}

/**
 * A self-contained SVG: one panel per workload, one horizontal bar per server, the length being the
 * ratio to the Koa baseline, or to the best Node peer where the baseline does not do the work (the
 * dashed line at 1×). Servers measured with a note (not doing the workload's work) are left out.
 * No dependency: plain string building.
 */
export function renderChart (results: WorkloadResult[], title: string): string {
  const panels = results.filter((r) => referenceOf(r) !== undefined)
  const barHeight = 16
  const labelWidth = 300
  const plotWidth = 460
  const width = labelWidth + plotWidth + 80
  let y = 50
  const parts: string[] = []
  for (const result of panels) {
    const reference = referenceOf(result) as NonNullable<ReturnType<typeof referenceOf>>
    const base = reference.median
    const cells = result.cells.filter((c) => c.note === undefined)
    const max = Math.max(2, ...cells.map((c) => c.median / base))
    const scale = plotWidth / max
    parts.push(`<text x="10" y="${y}" font-weight="bold">${escape(`${result.workload.label} — ${result.workload.metric} ÷ ${reference.name}`)}</text>`)
    y += 10
    const top = y
    for (const c of cells) {
      const r = c.median / base
      parts.push(`<text x="${labelWidth - 6}" y="${y + barHeight - 4}" text-anchor="end">${escape(targetLabels[c.target])}</text>`)
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${Math.max(1, r * scale).toFixed(1)}" height="${barHeight - 3}" fill="${colours[c.target]}"/>`)
      parts.push(`<text x="${labelWidth + r * scale + 4}" y="${y + barHeight - 4}">${r.toFixed(2)}×</text>`)
      y += barHeight
    }
    parts.push(`<line x1="${labelWidth + scale}" y1="${top - 2}" x2="${labelWidth + scale}" y2="${y}" stroke="#000" stroke-dasharray="3,3"/>`)
    y += 26
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="24" font-size="15" font-weight="bold">${escape(title)}</text>`,
    ...parts,
    '</svg>',
    ''
  ].join('\n')
}
