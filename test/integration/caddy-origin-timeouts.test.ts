import { randomBytes } from 'node:crypto'
import { get } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import Koa from 'koa'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { caddy } from '../../source/backends/caddy.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import { renderServerConfig } from '../../source/server-config.ts'
import { startOrigin } from '../helpers/origin.ts'
import type { Origin } from '../helpers/origin.ts'
import { logProxiesIfFailed, proxyTest, startProxy } from '../helpers/proxies.ts'
import type { RunningProxy } from '../helpers/proxies.ts'

// Caddy waits for an origin without limit unless its transport says otherwise: a fixed origin
// (`caddy({ sourceUrl })`) that accepted the connection and then said nothing held the client's
// download open with nothing sent. The generated block sets nginx's defaults (60 s for the
// response headers, 60 s between reads); here they are shortened to 3 s in the generated text, so
// that the test shows what those two lines do in the real Caddy without waiting a minute. (1 s
// flaked once under the full suite, and 2 s once in a clean-clone CI run: the origin runs in this
// test's process, and on two busy cores that process went that long without sending, so Caddy's
// read from it timed out.) The bounds below tell the 3 s timeouts from the 60 s defaults, with
// room for a loaded machine: this worker is also the app, the origins and the client of the
// 48 MiB test running beside them (audit C saw the "healthy" 1 MiB test take 17.6 s at a load of 40).

const body = randomBytes(1024 * 1024)
/** More than the sockets' buffers hold, so that a client that stops reading stops Caddy's reads from the origin. */
const huge = randomBytes(48 * 1024 * 1024)
const caddyTest = proxyTest('caddy')
/** Three origins, each with its own fault (RequestLog's switch is per server), each under its own rule. */
const kinds = ['hang', 'stall', 'ok'] as const
type Kind = typeof kinds[number]
const rulesFor = (origins: Record<Kind, Origin>): Array<ReturnType<typeof caddy>> =>
  kinds.map((kind) => caddy({ sourceUrl: `${origins[kind].url}/bucket/`, destinationUrl: `/_${kind}/` }))

let state: { app: Server, origins: Record<Kind, Origin>, proxy: RunningProxy } | undefined
const ctx = (): NonNullable<typeof state> => {
  if (state === undefined) throw new Error('setup failed (see test.before)')
  return state
}

if (caddyTest.available) {
  test.before(async () => {
    const origins = { hang: await startOrigin(), stall: await startOrigin(), ok: await startOrigin() }
    for (const kind of kinds) origins[kind].put('/bucket/big.bin', { bytes: body })
    origins.ok.put('/bucket/huge.bin', { bytes: huge })
    origins.hang.log.fault = 'hang'
    origins.stall.log.fault = 'stall'
    const rules = rulesFor(origins)
    const koa = new Koa()
    koa.use(downloads({ rules }))
    koa.use((c) => {
      const [, kind = '', name = ''] = c.path.split('/')
      c.body = download(new HttpFile(`${origins[kind as Kind].url}/bucket/${name}`))
    })
    const app = koa.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => app.once('listening', resolve))
    const appPort = (app.address() as AddressInfo).port
    const proxy = await startProxy('caddy', {
      rules,
      appPort,
      configFor: ({ port, prefix }) => {
        const config = renderServerConfig('caddy', rules, { full: { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix } })
        const timeouts = config.split('\n').map((line) => line.trim()).filter((line) => line.endsWith(' 60s'))
        if (timeouts.join('|') !== Array(3).fill('response_header_timeout 60s|read_timeout 60s').join('|')) throw new Error(`the generated timeouts changed: ${timeouts.join(', ')}`)
        return config.replaceAll(' 60s\n', ' 3s\n')
      }
    })
    state = { app, origins, proxy }
  })
  test.afterEach.always((t) => { logProxiesIfFailed(t, state === undefined ? [] : [state.proxy]) })
  test.after.always(async () => {
    await state?.proxy.stop()
    state?.app.closeAllConnections()
    state?.app.close()
    for (const origin of Object.values(state?.origins ?? {})) await origin.stop()
  })
}

caddyTest.test('caddy sourceUrl: an origin that never answers → 504 from handle_errors after response_header_timeout, not a request held open', async (t) => {
  const { proxy } = ctx()
  const started = Date.now()
  const response = await fetch(proxy.url + '/hang/big.bin', { signal: AbortSignal.timeout(45_000) })
  t.is(await response.text(), '')
  t.is(response.status, 504)
  t.is(response.headers.get('content-disposition'), null)
  t.true(Date.now() - started < 30_000, `answered after ${Date.now() - started} ms`)
})

caddyTest.test('caddy sourceUrl: an origin that stops sending mid-body → the client\'s transfer is cut short after read_timeout, never a complete-looking file', async (t) => {
  const { proxy } = ctx()
  const started = Date.now()
  const response = await fetch(proxy.url + '/stall/big.bin', { signal: AbortSignal.timeout(45_000) })
  t.is(response.status, 200)
  t.is(response.headers.get('content-length'), String(body.length))
  const error = await t.throwsAsync(response.arrayBuffer())
  t.not(error?.name, 'TimeoutError', 'Caddy closed the connection; the client did not have to give up')
  t.true(Date.now() - started < 30_000, `cut after ${Date.now() - started} ms`)
})

caddyTest.test('caddy sourceUrl: with the timeouts in place, a healthy origin still sends the whole file', async (t) => {
  const { proxy } = ctx()
  const response = await fetch(proxy.url + '/ok/big.bin')
  t.is(response.status, 200)
  t.deepEqual(Buffer.from(await response.arrayBuffer()), body)
})

caddyTest.test('caddy sourceUrl: a client that stops reading for 9 s (three times read_timeout) still gets the whole file: the clock runs for the origin, not for the client', async (t) => {
  const { proxy } = ctx()
  const received = await new Promise<Buffer>((resolve, reject) => {
    get(proxy.url + '/ok/huge.bin', (res) => {
      const chunks: Buffer[] = []
      let paused = false
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        if (!paused) {
          paused = true
          res.pause()
          setTimeout(() => res.resume(), 9000)
        }
      })
      res.once('end', () => { resolve(Buffer.concat(chunks)) })
      res.once('error', reject)
      res.once('aborted', () => { reject(new Error('aborted')) })
    }).once('error', reject)
  })
  t.is(received.length, huge.length)
  t.true(received.equals(huge))
})
