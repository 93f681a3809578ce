import test from 'ava'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

// What koa-downloads costs a process just by being loaded: an ES import of node:http reads every
// export of it, whose lazy WebSocket getters load undici (about 6 MiB of RSS), and an
// Intl.Segmenter loads ICU's break-iterator data (about 2 MiB). Loading the library must do
// neither; the Segmenter is made only for a name that must be cut.
const child = fileURLToPath(new URL('helpers/load-footprint-child.ts', import.meta.url))

interface State { undici: boolean, segmenters: number }
interface Report { afterImport: State, afterShort: { segmenters: number }, afterLong: { segmenters: number }, short: string, long: string }

async function report (...args: string[]): Promise<Report> {
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, [child, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${error.message}\n${stderr}`))
      else resolve(JSON.parse(stdout) as Report)
    })
  })
}

test('load footprint: importing the library and its adapters loads no undici, and no Segmenter is made until a name must be cut', async (t) => {
  const r = await report()
  t.deepEqual(r.afterImport, { undici: false, segmenters: 0 })
  t.is(r.short, 'HTTP/1.1 200 OK')
  t.deepEqual(r.afterShort, { segmenters: 0 })
  t.is(r.long, 'HTTP/1.1 200 OK')
  t.deepEqual(r.afterLong, { segmenters: 1 })
})

test('load footprint (control): an ES import of node:http does load undici, so the check above can fail', async (t) => {
  const r = await report('control')
  t.is(r.afterImport.undici, true)
})
