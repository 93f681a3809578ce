import test from 'ava'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Report } from './helpers/young-child.ts'

// Memory, checked without timing: see test/helpers/young-child.ts for why a function that
// koa-downloads attaches to a request must be young, and why only the interpreter runs there.
const child = fileURLToPath(new URL('helpers/young-child.ts', import.meta.url))
const flags = ['--allow-natives-syntax', '--no-opt', '--no-maglev', '--no-sparkplug', '--min-semi-space-size=16']

let dir = ''
let report: Report = {}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-young-'))
  await writeFile(join(dir, 'big.bin'), randomBytes(1024 * 1024))
  await writeFile(join(dir, 'small.txt'), 'small\n')
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [...flags, child, dir], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`young-child failed: ${error.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
  report = JSON.parse(stdout) as Report
})

test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true })
})

test('young generation: the check finds a function literal assigned to a property of ctx (the control)', t => {
  t.deepEqual(report.control?.statuses, Array(5).fill(200))
  t.deepEqual(report.control?.old, Array(5).fill('ctx.marker'))
})

const expected: Record<string, number> = {
  'small file (one buffer)': 200,
  'large file (stream)': 200,
  'single range': 206,
  'multipart ranges': 206,
  304: 304,
  HEAD: 200,
  'virtual file': 200,
  'missing file (404)': 404
}

for (const [kind, status] of Object.entries(expected)) {
  test(`young generation: ${kind}: every function koa-downloads attached to the request is young`, t => {
    const entry = report[kind]
    t.deepEqual(entry?.statuses, Array(5).fill(status))
    // What serve() attaches: ctx.onerror (the client-abort filter) and the abort listener on res.
    t.true(entry?.seen.includes('ctx.onerror'), `seen: ${entry?.seen.join(', ')}`)
    t.true(entry?.seen.includes("res 'close' listener"), `seen: ${entry?.seen.join(', ')}`)
    t.deepEqual(entry?.old, [])
  })
}
