// The demo application over HTTP: every cell of the index does what the page says, the headers
// view cannot be steered by the client, and `npm run demo:nginx` delivers real bytes through nginx.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import test from 'ava'
import { createDemo, filesDir } from '../../demo/app.ts'
import type { Demo } from '../../demo/app.ts'
import { deliveries } from '../../demo/deliveries.ts'
import { outcomeOf } from '../../demo/outcome.ts'
import { indexPage } from '../../demo/index-page.ts'
import { s3Body, sources, textBody } from '../../demo/sources.ts'
import { freePort, proxyTest } from '../helpers/proxies.ts'

let demo: Demo
let base = ''

test.before(async () => {
  demo = await createDemo()
  base = `http://127.0.0.1:${await demo.listen(0, '127.0.0.1')}`
})
test.after.always(async () => { await demo.stop() })

const expected: Record<string, () => Promise<Buffer>> = {
  path: async () => await readFile(join(filesDir, 'résumé €.txt')),
  storage: async () => await readFile(join(filesDir, 'say "hi" 100%.txt')),
  record: async () => Buffer.from('quarter,revenue\nQ1 2026,1200\n'),
  remote: async () => await readFile(join(filesDir, 'résumé €.txt')),
  s3: async () => Buffer.from(s3Body),
  text: async () => Buffer.from(textBody)
}

test('demo: the embedded S3 server started, so no cell is unavailable', (t) => {
  t.is(demo.env.s3Problem, undefined)
  t.not(demo.env.s3, undefined)
})

test('demo: the index page has one link per source × delivery, and a headers link for every offload cell', async (t) => {
  const response = await fetch(`${base}/`)
  t.is(response.status, 200)
  t.is(response.headers.get('content-type'), 'text/html; charset=utf-8')
  const html = await response.text()
  for (const source of sources) {
    for (const delivery of deliveries) {
      const outcome = await outcomeOf(demo.env, source, delivery)
      const href = outcome.kind === 'offload' ? `/explain/${delivery.id}/${source.id}` : `/get/${delivery.id}/${source.id}`
      t.true(html.includes(`id="${delivery.id}-${source.id}" href="${href}"`), `${delivery.id} × ${source.id} → ${href}`)
    }
  }
})

test('demo: with Caddy in front, an internal-redirect cell whose Location is percent-encoded offers no download (Caddy answers 404), the others do', async (t) => {
  const html = await indexPage(demo.env, new Set(['internal-redirect', 'caddy']), 'caddy')
  let encoded = 0
  let plain = 0
  for (const source of sources) {
    const delivery = deliveries.find((d) => d.id === 'internal-redirect')!
    const outcome = await outcomeOf(demo.env, source, delivery)
    if (outcome.kind !== 'offload') continue
    const id = `internal-redirect-${source.id}`
    if (outcome.target?.value.includes('%') === true) {
      encoded++
      t.true(html.includes(`id="${id}" href="/explain/internal-redirect/${source.id}"`), id)
      t.regex(outcome.note, /Caddy answers 404/)
    } else {
      plain++
      t.true(html.includes(`<a class="download" id="${id}" href="/get/internal-redirect/${source.id}">`), id)
    }
    // the caddy() column delivers every one of them
    t.true(html.includes(`<a class="download" id="caddy-${source.id}" href="/get/caddy/${source.id}">`), `caddy-${source.id}`)
  }
  t.true(encoded > 0 && plain > 0, `${encoded} encoded, ${plain} plain`)
})

/**
 * A presigned S3 URL (the s3 source offloaded) is signed again for each request, with the current
 * second in X-Amz-Date: the two computed here can straddle a second. Everything else must match;
 * the date and the signature must be well formed (demo:nginx below fetches through it for real).
 */
function unsigned (value: string | null): string | null {
  return value?.replace(/X-Amz-Date=\d{8}T\d{6}Z/, 'X-Amz-Date=<date>').replace(/X-Amz-Signature=[0-9a-f]{64}(?=&|$)/, 'X-Amz-Signature=<signature>') ?? null
}

for (const delivery of deliveries) {
  test(`demo: every ${delivery.id} cell answers as its sentence says (streamed bytes, offload header with an empty body, or a redirect)`, async (t) => {
    for (const source of sources) {
      const outcome = await outcomeOf(demo.env, source, delivery)
      const response = await fetch(`${base}/get/${delivery.id}/${source.id}`, { redirect: 'manual' })
      const body = Buffer.from(await response.arrayBuffer())
      const where = `${delivery.id} × ${source.id}`
      if (outcome.kind === 'offload') {
        t.is(response.status, 200, where)
        t.is(body.length, 0, where)
        t.is(response.headers.get('content-length'), '0', where)
        t.is(unsigned(response.headers.get(outcome.target?.header ?? '')), unsigned(outcome.target?.value ?? ''), where)
      } else if (outcome.kind === 'redirect') {
        t.is(response.status, 302, where)
        t.regex(response.headers.get('location') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/demo\/exports\/data%20set%20v2\.json\?X-Amz-/, where)
      } else {
        t.is(outcome.kind, 'stream', where)
        t.is(response.status, 200, where)
        for (const header of ['x-accel-redirect', 'x-sendfile', 'location']) t.is(response.headers.get(header), null, `${where}: ${header}`)
        const bytes = expected[source.id]
        if (bytes !== undefined) t.deepEqual(body, await bytes(), where)
        else t.true(body.toString().startsWith('n,square\n1,1\n2,4\n'), where)
        if (delivery.id === 'node') {
          // The sentence promises ranges, or says there are none.
          const ranged = await fetch(`${base}/get/${delivery.id}/${source.id}`, { headers: { Range: 'bytes=0-3' } })
          const part = Buffer.from(await ranged.arrayBuffer())
          if (outcome.note.includes('no ranges')) {
            t.is(ranged.status, 200, `${where}: Range`)
            t.is(ranged.headers.get('accept-ranges'), 'none', `${where}: Range`)
          } else {
            t.regex(outcome.note, /\branges\b/, where)
            t.is(ranged.status, 206, `${where}: Range`)
            t.deepEqual(part, body.subarray(0, 4), `${where}: Range`)
          }
        }
      }
    }
  })
}

test('demo: the headers view shows what the proxy receives, and request headers cannot switch offload on or change it', async (t) => {
  const plain = await (await fetch(`${base}/explain/nginx/path`)).text()
  t.true(plain.includes('<th>x-accel-redirect</th><td><code>/_protected/files/r%C3%A9sum%C3%A9%20%E2%82%AC.txt</code>'))
  // Rack CVE-2025-61780 style: the client asks for offload on the Node column, with its own mapping.
  const hostile = { 'X-Sendfile-Type': 'X-Accel-Redirect', 'X-Accel-Mapping': '/=/etc/' }
  const node = await fetch(`${base}/get/node/path`, { headers: hostile })
  t.is(node.headers.get('x-accel-redirect'), null)
  t.deepEqual(Buffer.from(await node.arrayBuffer()), await expected.path?.())
  const viaExplain = await (await fetch(`${base}/explain/node/path`, { headers: hostile })).text()
  t.false(viaExplain.includes('x-accel-redirect'))
  t.true(viaExplain.includes('Streamed by Node</strong>: 47 bytes'))
})

test('demo: unknown cells, traversal and missing records are 404 without a path in the answer', async (t) => {
  for (const path of ['/get/node/nope', '/get/nope/path', '/explain/node/nope', '/config/iis', '/files/..%2F..%2Fpackage.json', '/records/2', '/records/99']) {
    const response = await fetch(base + path)
    t.is(response.status, 404, path)
    t.false((await response.text()).includes('/'), path)
  }
})

test('demo: /config/nginx is the `koa-downloads config nginx` snippet for the demo\'s nginx rules', async (t) => {
  const text = await (await fetch(`${base}/config/nginx`)).text()
  t.true(text.includes(`location ^~ /_protected/files/ {\n    # reachable only through X-Accel-Redirect: a client request gets 404\n    internal;\n    alias ${filesDir}/;\n    # nosniff, which the app sends and nginx drops with the X-Accel-Redirect: without it a browser\n    # runs an uploaded .txt or .bin that a page of the site names in a <script src> (also under\n    # script-src 'self'). A location with an add_header of its own inherits none of the server's\n    # add_header lines (HSTS, a CSP): repeat here those that downloads need\n    add_header X-Content-Type-Options nosniff always;\n    # more range specs than the app reads when it streams (100): the whole file, as the app sends\n    # (nginx has no limit of its own: 120 one-byte ranges were a multipart body 12 times the request;\n    # it merges no ranges either, so up to 100 parts, where the app merges and stops at maxRanges)\n    max_ranges 100;\n    # a directory is not a file: 404, as the app answers (nginx would 301 to this internal URL + "/")\n    if (-d $request_filename) { return 404; }\n    # a file gone or refused by the time nginx opens it: nginx's page, not cached (below)\n    error_page 403 = @koa_downloads_403;\n    error_page 404 = @koa_downloads_404;\n}`))
  t.true(text.includes('location @koa_downloads_404 { add_header Cache-Control "no-store" always; return 404; }'))
  t.true(text.includes(`proxy_pass ${demo.env.originUrl}files/;`))
  t.true(text.includes('location ~ "^/_remote/(?<rscheme>https?)/(?<rhost>[^/]+)/(?<rpath>.*)$" {'))
})

const withNginx = proxyTest('nginx')

/** A demo script in a child process; `ready` resolves true once its stdout shows `readyText`, false if it exits first. */
function startScript (args: string[], env: NodeJS.ProcessEnv, readyText: string): { child: ChildProcess, exited: Promise<number | null>, ready: Promise<boolean>, output: () => string } {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  const ready = Promise.race([
    new Promise<boolean>((resolve) => { child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); if (output.includes(readyText)) resolve(true) }) }),
    exited.then(() => false)
  ])
  return { child, exited, ready, output: () => output }
}

withNginx.test('demo:nginx: every nginx cell delivers the real bytes through nginx; Ctrl-C stops nginx and removes the temp dirs', async (t) => {
  t.timeout(60_000)
  const port = await freePort()
  const { child, exited, ready, output } = startScript(['demo/with-proxy.ts', 'nginx'], { ...process.env, PORT: String(port) }, `on http://127.0.0.1:${port}`)
  try {
    t.true(await ready, output())
    const prefix = /config in (\S+)\/nginx\.conf/.exec(output())?.[1] ?? ''
    t.true(existsSync(prefix), output())
    for (const source of ['path', 'storage', 'record', 'remote', 's3'] as const) {
      const response = await fetch(`http://127.0.0.1:${port}/get/nginx/${source}`)
      t.is(response.status, 200, source)
      t.is(response.headers.get('x-accel-redirect'), null, source)
      t.deepEqual(Buffer.from(await response.arrayBuffer()), await expected[source]?.(), source)
    }
    // nginx answers the range itself (the app never saw the Range header).
    const ranged = await fetch(`http://127.0.0.1:${port}/get/nginx/path`, { headers: { Range: 'bytes=3-8' } })
    t.is(ranged.status, 206)
    t.is(ranged.headers.get('content-range'), 'bytes 3-8/47')
    t.is(await ranged.text(), 'résum') // bytes 3–8 of "Un résumé…": é is two bytes
    child.kill('SIGINT')
    t.is(await exited, 0, output())
    t.false(existsSync(prefix))
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
})

/** The local addresses listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel writes them). */
async function listeningAddresses (port: number): Promise<string[]> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const found: string[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '')
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/)
      if (state === '0A' && local?.endsWith(`:${hexPort}`)) found.push(local.slice(0, -5))
    }
  }
  return found
}

test('npm run demo (demo/server.ts) listens on the loopback interface only, on PORT; HOST widens it', async (t) => {
  t.timeout(60_000)
  for (const [host, expected] of [[undefined, ['0100007F']], ['0.0.0.0', ['00000000']]] as const) {
    const port = await freePort()
    const { HOST: _unset, ...inherited } = process.env
    const env = { ...inherited, PORT: String(port), ...host === undefined ? {} : { HOST: host } }
    const { child, exited, ready, output } = startScript(['demo/server.ts'], env, `:${port}  (Ctrl-C to stop)`)
    try {
      t.true(await ready, output())
      t.deepEqual(await listeningAddresses(port), [...expected], `HOST ${host ?? '(unset)'}`)
      const index = await fetch(`http://127.0.0.1:${port}/`)
      t.is(index.status, 200)
      await index.arrayBuffer()
      child.kill('SIGINT')
      t.is(await exited, 0, output())
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }
})
