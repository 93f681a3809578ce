import test from 'ava'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

let sections = new Map<string, string>()
let dir = ''

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-faultlog-'))
  const child = fileURLToPath(new URL('./fault-log-child.ts', import.meta.url))
  const stderr = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [child, dir], { env: { ...process.env, NODE_DEBUG: 'koa-downloads' }, timeout: 60_000 }, (error, _stdout, err) => {
      if (error !== null) reject(new Error(`${error.message}\n${err}`))
      else resolve(err)
    })
  })
  sections = new Map(stderr.split(/^=== /m).slice(1).map((part) => {
    const newline = part.indexOf('\n')
    return [part.slice(0, newline), part.slice(newline + 1)]
  }))
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

const section = (name: string): string => sections.get(name) ?? `(no section ${name})`

test('log: the child ran every scenario to the end', t => {
  t.true(sections.has('end'), [...sections.keys()].join(', '))
})

test('log: a client abort is one debug line ("client went away"), never an error with a stack', t => {
  const text = section('client-abort')
  t.regex(text, /KOA-DOWNLOADS \d+: \/big\.bin: client went away/)
  t.notRegex(text, /\n\s+at /, 'no stack trace')
  t.notRegex(text, /Error/)
})

test('log: a storage failing on stat() names the request, the stage and the cause, and Koa logs the 502', t => {
  const text = section('stat-fails')
  t.regex(text, /KOA-DOWNLOADS \d+: GET \/stat-fails: stat failed: storage said 500 InternalError/)
  t.regex(text, /BadGatewayError: Bad Gateway/)
})

test('log: a storage failing on open() names the request, the stage and the cause (504)', t => {
  const text = section('open-fails')
  t.regex(text, /KOA-DOWNLOADS \d+: GET \/open-fails: open failed: storage did not answer in 30000 ms/)
  t.regex(text, /GatewayTimeoutError|Gateway Timeout/)
})

test('log: a file truncated while served is logged once, as such — not also as a client that went away', t => {
  const text = section('truncated')
  t.is(text.match(/truncated while being sent/g)?.length, 1)
  t.notRegex(text, /client went away/)
})

test('log: a file replaced between stat and open says it is planned again', t => {
  t.regex(section('changed'), /KOA-DOWNLOADS \d+: \/changed: the file changed while being opened; planning again/)
})

test('log: an upstream reset mid-body says how many bytes arrived, and the failure is logged', t => {
  const text = section('upstream-reset')
  t.regex(text, /KOA-DOWNLOADS \d+: http http:\/\/127\.0\.0\.1:\d+\/object\.bin: source (?:failed|closed|ended) after \d+ (?:bytes|of)/)
  t.is(text.match(/DownloadError: /g)?.length, 1, 'one error report')
  t.notRegex(text, /client went away/)
})
