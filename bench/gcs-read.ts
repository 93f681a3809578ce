/**
 * GCS whole-object reads (not part of `npm run bench`): the adapter's `open()` of a 64 MiB object,
 * read to its end, in this tree and in another one, interleaved (A B A B …) in one run.
 *
 *   node bench/gcs-read.ts --before=<tree> [--rounds 6] [--mib 64]
 *
 * `<tree>`: another checkout of the project (e.g. `git archive <rev> | tar -x -C dir` with a
 * node_modules symlink). The storage is a child process that answers the metadata and media
 * requests of one object from memory, with its hashes (`x-goog-hash`: CRC32C and MD5) computed
 * once, so that its own work is the same for both trees. Printed per tree: the median wall time of
 * a read and the median CPU time the reading process spent on it (the app's side only).
 */
import { fork } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { before: { type: 'string' }, rounds: { type: 'string', default: '6' }, mib: { type: 'string', default: '64' }, serve: { type: 'boolean', default: false } } })
const size = Number(values.mib) * 1024 * 1024

if (values.serve) {
  const { CRC32C } = await import('@google-cloud/storage')
  const body = randomBytes(size)
  const crc32c = new CRC32C()
  crc32c.update(body)
  const hashes = [`crc32c=${crc32c.toString()}`, `md5=${createHash('md5').update(body).digest('base64')}`]
  const metadata = JSON.stringify({ name: 'object.bin', bucket: 'bench', size: String(size), contentType: 'application/octet-stream', etag: 'CAE=', updated: '2026-01-01T00:00:00.000Z', generation: '1' })
  const server = createServer((req, res) => {
    if (!(req.url ?? '').includes('alt=media')) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(metadata)
      return
    }
    res.writeHead(200, { 'Content-Length': size, 'x-goog-stored-content-encoding': 'identity', 'x-goog-hash': hashes }).end(body)
  })
  server.listen(0, '127.0.0.1', () => { process.send?.((server.address() as AddressInfo).port) })
} else {
  if (values.before === undefined) throw new Error('usage: node bench/gcs-read.ts --before=<tree> [--rounds 6] [--mib 64]')
  const child = fork(import.meta.filename, ['--serve', `--mib=${values.mib}`])
  const [port] = await once(child, 'message') as [number]
  const { Storage } = await import('@google-cloud/storage')
  const { Disk } = await import('flydrive')
  const { GCSDriver } = await import('flydrive/drivers/gcs')
  const client = new Storage({ apiEndpoint: `http://127.0.0.1:${port}`, projectId: 'bench' })
  const disk = new Disk(new GCSDriver({ storage: client, bucket: 'bench', visibility: 'private' }))
  const trees = { this: resolve(import.meta.dirname, '..'), before: resolve(values.before) }
  const files: Record<string, (key: string) => { stat: () => Promise<unknown>, open: (range: undefined, options: { stat: unknown }) => Promise<AsyncIterable<Buffer>> }> = {}
  for (const [name, tree] of Object.entries(trees)) {
    const { storage } = await import(`${tree}/adapters/flydrive/index.ts`) as { storage: (disk: unknown) => { file: (key: string) => never } }
    const media = storage(disk)
    files[name] = (key) => media.file(key)
  }
  const samples: Record<string, { wall: number[], cpu: number[] }> = { this: { wall: [], cpu: [] }, before: { wall: [], cpu: [] } }
  for (let round = 0; round < Number(values.rounds) + 1; round++) {
    for (const name of ['before', 'this']) {
      const file = files[name]?.('object.bin')
      if (file === undefined) continue
      const stat = await file.stat()
      const started = performance.now()
      const cpu = process.cpuUsage()
      let read = 0
      for await (const chunk of await file.open(undefined, { stat })) read += chunk.length
      const used = process.cpuUsage(cpu)
      if (read !== size) throw new Error(`${name}: read ${read} of ${size} bytes`)
      // Round 0 warms both up.
      if (round === 0) continue
      samples[name]?.wall.push(performance.now() - started)
      samples[name]?.cpu.push((used.user + used.system) / 1000)
    }
  }
  const median = (list: number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? NaN
  for (const [name, { wall, cpu }] of Object.entries(samples)) {
    console.log(`${name.padEnd(6)} ${trees[name as keyof typeof trees]}: ${values.mib} MiB read in ${median(wall).toFixed(0)} ms (median of ${wall.length}; ${wall.map((x) => x.toFixed(0)).join(' ')}), ${median(cpu).toFixed(0)} ms of CPU`)
  }
  const ratio = median(samples.before?.wall ?? []) / median(samples.this?.wall ?? [])
  console.log(`this tree reads ${ratio.toFixed(2)}× as fast as the other`)
  child.kill()
}
