import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const here = dirname(fileURLToPath(import.meta.url))

/** Every module statically reachable from `entry` (relative imports only), with its static bare imports. */
async function staticGraph (entry: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>()
  const queue = [entry]
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (graph.has(file)) continue
    const source = await readFile(file, 'utf8')
    const bare: string[] = []
    // Type-only imports are erased at run time; dynamic import() is not a static dependency.
    for (const [, spec = ''] of source.matchAll(/^(?:import|export)(?!\s+type\b)[^'"]*?from\s+'([^']+)'/gm)) {
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec))
      else bare.push(spec)
    }
    graph.set(file, bare)
  }
  return graph
}

for (const [entry, forbidden] of [
  ['adapters/flydrive/index.ts', /^(@aws-sdk|@google-cloud)\//],
  ['adapters/http/index.ts', /^(flydrive|@aws-sdk|@google-cloud)\b/]
] as const) {
  test(`optional peers: ${entry} loads no cloud SDK statically (an fs-only user needs neither)`, async (t) => {
    const graph = await staticGraph(join(here, '../..', entry))
    t.true(graph.size > 1)
    const offending = [...graph].flatMap(([file, specs]) => specs.filter((s) => forbidden.test(s)).map((s) => `${file}: ${s}`))
    t.deepEqual(offending, [])
  })
}
