import { spawn } from 'node:child_process'
import { rename, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import type { OffloadRule } from '../../source/offload-rule.ts'
import type { ServerName } from '../../source/server-config.ts'
import { activePage, controlNames, filesUrl, generatedText, hostileName, makeFixtures, memoryText, sha256, startApp } from './app.ts'
import type { Fixtures, TestApp } from './app.ts'
import { logProxiesIfFailed, makeWorldReadable, proxyTest, startProxy } from './proxies.ts'
import type { RunningProxy, StartProxyOptions } from './proxies.ts'

const cli = fileURLToPath(new URL('../../source/cli.ts', import.meta.url))

export interface SuiteOptions {
  /** The proxy that runs the generated config. */
  server: ServerName
  /** Title prefix, e.g. `nginx` or `internalRedirect via caddy`. */
  label: string
  /** The header the app sends and the proxy must consume. */
  offloadHeader: string
  rules: (fixtures: Fixtures) => OffloadRule[]
  /**
   * Why the server cannot serve names whose offload value is percent-encoded, when it cannot
   * (Caddy reading an encoded Location): the hostile-name test then pins that limitation instead.
   */
  encodedNamesUnsupported?: string | undefined
  /**
   * For servers that answer conditionals with the app's validators (Apache, lighttpd): the title of
   * a test that the client gets exactly the ETag and Last-Modified the app sent with the offload.
   */
  appValidators?: string | undefined
  /**
   * Why the server drops the app's Content-Security-Policy and X-Content-Type-Options from an
   * offload response, when it does (nginx): an inline HTML file is then streamed by the app.
   */
  dropsAppHeaders?: string | undefined
  /**
   * Why the server sends the range for an If-Range date equal to the Last-Modified of a file
   * written in the current second, when it does and the app cannot stop it (Caddy: Go's ETag is
   * not the app's): the test then pins that divergence instead.
   */
  weakDateIfRange?: string | undefined
}

export interface Suite {
  test: ReturnType<typeof proxyTest>['test']
  context: () => { fixtures: Fixtures, app: TestApp, proxy: RunningProxy }
}

/**
 * Runs the CLI, at most CLI_AT_ONCE at a time per test worker: cli.test.ts starts its 37 tests at
 * once, and 81 node processes started together on two cores starved each other past the tests'
 * timeouts (audit C: 15 of 37 timed out at a load of 40).
 */
export async function runCli (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  while (cliRunning >= CLI_AT_ONCE) await new Promise<void>((resolve) => { cliWaiting.push(resolve) })
  cliRunning++
  try {
    return await runCliNow(args)
  } finally {
    cliRunning--
    cliWaiting.shift()?.()
  }
}
const CLI_AT_ONCE = 4
let cliRunning = 0
const cliWaiting: Array<() => void> = []

function runCliNow (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.once('error', reject)
    child.once('close', (code) => { resolve({ code, stdout, stderr }) })
  })
}

export interface ProxiedAppOptions {
  server: ServerName
  rules: (fixtures: Fixtures) => OffloadRule[]
  /** Files added to the fixtures before the app starts. */
  prepare?: ((fixtures: Fixtures) => Promise<void>) | undefined
  /** The proxy's configuration for these rules, when it is not exactly the generated one. */
  configFor?: ((rules: OffloadRule[]) => StartProxyOptions['configFor']) | undefined
}

/**
 * Fixtures, the test app with `rules` and the real proxy in front of it, started once for the
 * test file (when the proxy is installed) and stopped after it; the proxy's output and config are
 * logged for a failed test.
 */
export function proxiedApp (options: ProxiedAppOptions): Suite {
  const { available, test: proxied } = proxyTest(options.server)
  let state: { fixtures: Fixtures, app: TestApp, proxy: RunningProxy } | undefined
  const context = (): NonNullable<typeof state> => {
    if (state === undefined) throw new Error('the proxy did not start (see test.before)')
    return state
  }
  if (available) {
    test.before(async () => {
      const fixtures = await makeFixtures()
      if (options.prepare !== undefined) {
        await options.prepare(fixtures)
        makeWorldReadable(fixtures.root)
      }
      const rules = options.rules(fixtures)
      const app = await startApp(fixtures, rules)
      const proxy = await startProxy(options.server, { rules, appPort: app.port, configFor: options.configFor?.(rules) })
      state = { fixtures, app, proxy }
    })
    test.afterEach.always((t) => { logProxiesIfFailed(t, state === undefined ? [] : [state.proxy]) })
    test.after.always(async () => {
      await state?.proxy.stop()
      await state?.app.close()
      await state?.fixtures.remove()
    })
  }
  return { test: proxied, context }
}

/**
 * `url` is a 404 through the proxy, whose body does not contain `secret`, and the app answers that
 * 404 itself, with no `header`. The app is asked directly: its recorder does not see a thrown 404.
 */
export async function assertAppOwn404 (t: ExecutionContext, where: { proxy: RunningProxy, app: TestApp }, url: string, header: string, secret = 'SECRET'): Promise<void> {
  const viaProxy = await fetch(where.proxy.url + url)
  const body = Buffer.from(await viaProxy.arrayBuffer())
  t.is(viaProxy.status, 404, url)
  t.false(body.includes(Buffer.from(secret)), `${url}: nothing of the target in the body`)
  const direct = await fetch(where.app.url + url)
  await direct.arrayBuffer()
  t.is(direct.status, 404, `${url}: the app's own answer`)
  t.is(direct.headers.get(header), null, `${url}: the app sent no ${header}`)
}

/**
 * The offload contract, proven through one real proxy: the proxy started once per file with the
 * config `koa-downloads config` generates from the app's own rules, a real Koa app behind it.
 * "Answered by the proxy" is proven by the app's own log: for the same request the app sent
 * 200 + the offload header + an empty body, and the client still got 206/304/the bytes.
 */
export function offloadSuite (options: SuiteOptions): Suite {
  const { server, label, offloadHeader } = options
  const { test: proxied, context } = proxiedApp({ server, rules: options.rules })

  /** Asserts that the app answered `url` with the offload response, not with the bytes. */
  const appOffloaded = (t: { is: (a: unknown, b: unknown, m?: string) => void, truthy: (a: unknown, m?: string) => void }, url: string): void => {
    const sent = context().app.last(url)
    t.is(sent?.status, 200, 'the app answered 200')
    t.truthy(sent?.headers[offloadHeader.toLowerCase()], `the app sent ${offloadHeader}`)
    t.is(sent?.headers['content-length'], '0', 'the app sent an empty body')
  }

  proxied(`${label}: full GET is byte-identical (1 MiB, sha256) while the app only sent ${offloadHeader}`, async (t) => {
    const { proxy, fixtures } = context()
    const url = filesUrl(fixtures.big.name)
    const response = await fetch(proxy.url + url)
    const body = new Uint8Array(await response.arrayBuffer())
    t.is(response.status, 200)
    t.is(response.headers.get('content-length'), String(fixtures.big.bytes.length))
    t.is(sha256(body), fixtures.big.sha256)
    t.is(response.headers.get(offloadHeader), null, 'the offload header never reaches the client')
    appOffloaded(t, url)
  })

  proxied(`${label}: Cache-Control, Content-Type and Content-Disposition of the app reach the client`, async (t) => {
    const { proxy, fixtures } = context()
    const response = await fetch(proxy.url + filesUrl(fixtures.big.name))
    await response.arrayBuffer()
    t.is(response.headers.get('cache-control'), 'private, max-age=60')
    t.is(response.headers.get('content-type'), 'application/octet-stream')
    t.is(response.headers.get('content-disposition'), 'attachment; filename="big.bin"')
  })

  proxied(`${label}: a Vary the app set (CORS's Origin) ${options.dropsAppHeaders === undefined ? 'reaches the client' : `is dropped (${options.dropsAppHeaders})`}`, async (t) => {
    const { proxy, fixtures } = context()
    const url = filesUrl(fixtures.big.name) + '?vary=1'
    const response = await fetch(proxy.url + url)
    await response.arrayBuffer()
    t.is(response.status, 200)
    t.is(response.headers.get('vary'), options.dropsAppHeaders === undefined ? 'Origin' : null)
    appOffloaded(t, url)
  })

  proxied(`${label}: an HTML file shown inline reaches the client with the app's Content-Security-Policy: sandbox (no script in the app's origin) and nosniff${options.dropsAppHeaders === undefined ? '' : ` (streamed: ${options.dropsAppHeaders})`}; as an attachment without the sandbox`, async (t) => {
    const { proxy } = context()
    const url = filesUrl('page.html')
    const inline = await fetch(proxy.url + url + '?inline=1')
    t.is(await inline.text(), activePage)
    t.is(inline.headers.get('content-type'), 'text/html; charset=utf-8')
    t.is(inline.headers.get('content-disposition'), 'inline; filename="page.html"')
    t.is(inline.headers.get('content-security-policy'), 'sandbox')
    t.is(inline.headers.get('x-content-type-options'), 'nosniff')
    if (options.dropsAppHeaders === undefined) appOffloaded(t, url + '?inline=1')
    else {
      // Streamed by the app: the proxy would drop the policy.
      t.is(context().app.last(url + '?inline=1')?.status, 200)
      t.is(context().app.last(url + '?inline=1')?.headers[offloadHeader.toLowerCase()], undefined, `the app sent no ${offloadHeader}`)
    }
    const attached = await fetch(proxy.url + url)
    t.is(await attached.text(), activePage)
    t.is(attached.headers.get('content-disposition'), 'attachment; filename="page.html"')
    t.is(attached.headers.get('content-security-policy'), null)
    // nginx drops the app's; its generated location adds it back (an uploaded file run as a script otherwise)
    t.is(attached.headers.get('x-content-type-options'), 'nosniff')
    appOffloaded(t, url)
  })

  proxied(`${label}: Range bytes=0-9 → 206 with the exact bytes, answered by the proxy`, async (t) => {
    const { proxy, fixtures } = context()
    const url = filesUrl(fixtures.big.name) + '?range=1'
    const response = await fetch(proxy.url + url, { headers: { Range: 'bytes=0-9' } })
    const body = Buffer.from(await response.arrayBuffer())
    t.is(response.status, 206)
    t.is(response.headers.get('content-range'), `bytes 0-9/${fixtures.big.bytes.length}`)
    t.deepEqual(body, fixtures.big.bytes.subarray(0, 10))
    appOffloaded(t, url)
  })

  // Go's ETag is not the app's: Caddy's block drops such a Range instead (the whole file).
  const goValidators = options.server === 'caddy'
  proxied(`${label}: a Range with a number past 64 bits (a client's "to the end") → ${goValidators ? 'the whole file, offloaded (the block drops the Range Go would refuse with 416)' : '206 of the satisfiable range, streamed by the app (the server would answer 416 or ignore it)'}`, async (t) => {
    const { proxy, app, fixtures } = context()
    if (goValidators) {
      const url = filesUrl(fixtures.big.name) + '?huge-range=go'
      const response = await fetch(proxy.url + url, { headers: { Range: 'bytes=5-18446744073709551615' } })
      const body = Buffer.from(await response.arrayBuffer())
      t.is(response.status, 200)
      t.is(sha256(body), fixtures.big.sha256)
      appOffloaded(t, url)
      return
    }
    // The small file: three 1 MiB bodies in a row let a loaded machine's client fall past the
    // proxy's 5 s keep-alive before its next request (a race on the reused connection).
    const size = fixtures.hostile.bytes.length
    const cases = [
      { range: 'bytes=5-18446744073709551615', start: 5 },
      { range: 'bytes=-99999999999999999999', start: 0 },
      { range: 'bytes=00000000000000000000005-9223372036854775808', start: 5 }
    ]
    for (const [index, { range, start }] of cases.entries()) {
      const url = filesUrl(fixtures.hostile.name) + `?huge-range=${index}`
      const response = await fetch(proxy.url + url, { headers: { Range: range } })
      const body = Buffer.from(await response.arrayBuffer())
      t.is(response.status, 206, range)
      t.is(response.headers.get('content-range'), `bytes ${start}-${size - 1}/${size}`, range)
      t.deepEqual(body, fixtures.hostile.bytes.subarray(start), range)
      t.is(app.last(url)?.status, 206, 'the app answered 206')
      t.is(app.last(url)?.headers[offloadHeader.toLowerCase()], undefined, `the app sent no ${offloadHeader}`)
    }
    // A long number of leading zeros is no large number: offloaded.
    const zerosUrl = filesUrl(fixtures.big.name) + '?huge-range=zeros'
    const zeros = await fetch(proxy.url + zerosUrl, { headers: { Range: 'bytes=000000000000000000000000000005-9' } })
    t.is(zeros.status, 206)
    t.deepEqual(Buffer.from(await zeros.arrayBuffer()), fixtures.big.bytes.subarray(5, 10))
    appOffloaded(t, zerosUrl)
  })

  // Servers that get the app's validators (Apache, lighttpd) get only the requests whose
  // preconditions pass: the app answers a 304 or 412 itself (offload.ts).
  const answeredBy = options.appValidators === undefined ? 'the proxy' : 'the app'
  proxied(`${label}: If-None-Match with the response's ETag → 304, answered by ${answeredBy}`, async (t) => {
    const { proxy, app, fixtures } = context()
    const url = filesUrl(fixtures.big.name) + '?conditional=1'
    const first = await fetch(proxy.url + url)
    await first.arrayBuffer()
    const etag = first.headers.get('etag')
    t.truthy(etag)
    const second = await fetch(proxy.url + url, { headers: { 'If-None-Match': etag ?? '' } })
    t.is(second.status, 304)
    t.is(second.headers.get('etag'), etag)
    t.is((await second.arrayBuffer()).byteLength, 0)
    if (options.appValidators === undefined) appOffloaded(t, url)
    else {
      t.is(app.last(url)?.status, 304, 'the app answered 304')
      t.is(app.last(url)?.headers[offloadHeader.toLowerCase()], undefined, `the app sent no ${offloadHeader}`)
    }
  })

  if (options.appValidators !== undefined) {
    proxied(`${label}: If-Match with another ETag, or an If-Unmodified-Since before the file's date → 412 from the app; If-Match with the file's ETag and a Range → 206 from the proxy`, async (t) => {
      const { proxy, app, fixtures } = context()
      const url = filesUrl(fixtures.big.name) + '?if-match=1'
      const first = await fetch(proxy.url + url)
      await first.arrayBuffer()
      const etag = first.headers.get('etag') ?? ''
      const lastModified = Date.parse(first.headers.get('last-modified') ?? '')
      t.false(Number.isNaN(lastModified))
      for (const headers of [{ 'If-Match': '"another"' }, { 'If-Unmodified-Since': new Date(lastModified - 1000).toUTCString(), Range: 'bytes=0-9' }]) {
        const res = await fetch(proxy.url + url, { headers })
        t.is(res.status, 412, JSON.stringify(headers))
        t.is(res.headers.get('content-disposition'), null)
        await res.arrayBuffer()
        t.is(app.last(url)?.status, 412, 'the app answered 412')
        t.is(app.last(url)?.headers[offloadHeader.toLowerCase()], undefined, `the app sent no ${offloadHeader}`)
      }
      const passing = await fetch(proxy.url + url, { headers: { 'If-Match': etag, Range: 'bytes=0-9' } })
      t.is(passing.status, 206)
      t.deepEqual(Buffer.from(await passing.arrayBuffer()), fixtures.big.bytes.subarray(0, 10))
      appOffloaded(t, url)
    })
  }

  proxied(`${label}: HEAD → 200 with the file's Content-Length and no body`, async (t) => {
    const { proxy, app, fixtures } = context()
    const url = filesUrl(fixtures.big.name) + '?head=1'
    const response = await fetch(proxy.url + url, { method: 'HEAD' })
    t.is(response.status, 200)
    t.is(response.headers.get('content-length'), String(fixtures.big.bytes.length))
    t.is(response.headers.get(offloadHeader), null)
    t.is(app.last(url)?.method, 'HEAD')
    appOffloaded(t, url)
  })

  if (options.encodedNamesUnsupported === undefined) {
    proxied(`${label}: a name with space, %, unicode and a quote gets the right bytes and Content-Disposition`, async (t) => {
      const { proxy, fixtures } = context()
      const url = filesUrl(hostileName)
      const response = await fetch(proxy.url + url)
      const body = Buffer.from(await response.arrayBuffer())
      t.is(response.status, 200)
      t.deepEqual(body, fixtures.hostile.bytes)
      t.is(response.headers.get('content-disposition'),
        'attachment; filename="my _resume_ 100_ done.txt"; filename*=UTF-8\'\'my%20%22r%C3%A9sum%C3%A9%22%20100%25%20done.txt')
      t.is(response.headers.get('content-type'), 'text/plain; charset=utf-8')
      appOffloaded(t, url)
      const inline = await fetch(proxy.url + url + '?inline=1')
      await inline.arrayBuffer()
      t.regex(inline.headers.get('content-disposition') ?? '', /^inline; filename="my _resume_ 100_ done\.txt"; /)
    })
  } else {
    proxied(`${label}: a name that needs percent-encoding gets 404 (${options.encodedNamesUnsupported})`, async (t) => {
      const { proxy, app } = context()
      const url = filesUrl(hostileName)
      const response = await fetch(proxy.url + url)
      await response.arrayBuffer()
      t.is(response.status, 404)
      t.regex(app.last(url)?.headers[offloadHeader.toLowerCase()] ?? '', /%20%22r%C3%A9sum%C3%A9%22%20100%25%20done\.txt$/)
    })
  }

  proxied(`${label}: a name with a control character gets that file's bytes (offloaded or streamed), never its decoy's`, async (t) => {
    const { proxy, app } = context()
    for (const [index, { name }] of controlNames.entries()) {
      const url = `/record/${index}`
      const response = await fetch(proxy.url + url)
      const body = await response.text()
      const sent = app.last(url)
      if (options.encodedNamesUnsupported !== undefined && sent?.headers[offloadHeader.toLowerCase()] !== undefined) {
        // The limitation pinned above: a 404, never another file.
        t.is(response.status, 404, JSON.stringify(name))
        t.false(body.includes('DECOY'), JSON.stringify(name))
        continue
      }
      t.is(response.status, 200, JSON.stringify(name))
      t.is(body, `the file named ${JSON.stringify(name)}\n`)
    }
  })

  proxied(`${label}: a file outside every rule is streamed by Node, no offload header anywhere`, async (t) => {
    const { proxy, app } = context()
    const url = '/public/public.txt'
    const response = await fetch(proxy.url + url)
    t.is(response.status, 200)
    t.is(await response.text(), 'streamed by node\n')
    const sent = app.last(url)
    t.is(sent?.status, 200)
    t.is(sent?.headers[offloadHeader.toLowerCase()], undefined)
    t.is(sent?.headers['content-length'], '17')
  })

  proxied(`${label}: storage on local disk (flydrive fs StorageFile) is offloaded too, byte-identical`, async (t) => {
    const { proxy, fixtures } = context()
    const url = filesUrl(fixtures.big.name, '/storage/')
    const response = await fetch(proxy.url + url)
    t.is(response.status, 200)
    t.is(sha256(new Uint8Array(await response.arrayBuffer())), fixtures.big.sha256)
    t.is(response.headers.get('content-disposition'), 'attachment; filename="big.bin"')
    appOffloaded(t, url)
  })

  proxied(`${label}: a remote URL no rule covers (HttpFile) is streamed by Node through the proxy`, async (t) => {
    const { proxy, app } = context()
    const response = await fetch(proxy.url + '/remote/public.txt')
    t.is(response.status, 200)
    t.is(await response.text(), 'streamed by node\n')
    t.is(response.headers.get('content-disposition'), 'attachment; filename="public.txt"')
    const sent = app.last('/remote/public.txt')
    t.is(sent?.status, 200)
    t.is(sent?.headers[offloadHeader.toLowerCase()], undefined)
    t.is(sent?.headers['content-length'], '17')
  })

  proxied(`${label}: memory and generated files are streamed by Node through the proxy`, async (t) => {
    const { proxy, app } = context()
    const memory = await fetch(proxy.url + '/memory/hello.txt')
    t.is(memory.status, 200)
    t.is(await memory.text(), memoryText)
    t.is(memory.headers.get('content-disposition'), 'attachment; filename="hello.txt"')
    // The status first: a header of a response never recorded would be undefined too.
    t.is(app.last('/memory/hello.txt')?.status, 200)
    t.is(app.last('/memory/hello.txt')?.headers[offloadHeader.toLowerCase()], undefined)
    const generated = await fetch(proxy.url + '/generated/rows.csv')
    t.is(generated.status, 200)
    t.is(await generated.text(), generatedText)
    t.is(generated.headers.get('content-type'), 'text/csv; charset=utf-8')
    t.is(app.last('/generated/rows.csv')?.status, 200)
    t.is(app.last('/generated/rows.csv')?.headers[offloadHeader.toLowerCase()], undefined)
  })

  proxied(`${label}: koa-downloads check passes through the proxy and fails (exit 1) against the app directly`, async (t) => {
    t.timeout(60_000) // three node processes, slow on a loaded CI machine
    const { proxy, app, fixtures } = context()
    const url = filesUrl(fixtures.big.name)
    const good = await runCli(['check', proxy.url + url, '--sha256', fixtures.big.sha256])
    t.is(good.code, 0, good.stderr)
    t.regex(good.stdout, /check OK .* 200, 1048576 bytes/)
    const direct = await runCli(['check', app.url + url, '--sha256', fixtures.big.sha256])
    t.is(direct.code, 1)
    t.regex(direct.stderr, new RegExp(`check FAILED[^]*${offloadHeader}`, 'i'))
    t.regex(direct.stderr, /the body is empty/)
    const wrong = await runCli(['check', proxy.url + url, '--sha256', '0'.repeat(64)])
    t.is(wrong.code, 1)
    t.regex(wrong.stderr, /differs from 0{64}/)
  })

  proxied(`${label}: a file replaced (written under another name and renamed over it) and asked for at once gets its new bytes, with validators that describe them`, async (t) => {
    const { proxy, fixtures } = context()
    const name = 'replaced.txt'
    const path = join(fixtures.protectedDir, name)
    await writeFile(path, 'OLD VERSION\n')
    const first = await fetch(proxy.url + filesUrl(name))
    t.is(await first.text(), 'OLD VERSION\n')
    // lighttpd's default stat cache kept the old file for a second: the old bytes under the new
    // validators, which later revalidations then confirmed.
    for (let round = 1; round <= 3; round++) {
      const bytes = `NEW VERSION ${round}${'!'.repeat(round * 7)}\n`
      await writeFile(`${path}.tmp`, bytes)
      await rename(`${path}.tmp`, path)
      const response = await fetch(proxy.url + filesUrl(name))
      t.is(await response.text(), bytes, `round ${round}`)
      t.is(response.headers.get('content-length'), String(bytes.length), `round ${round}`)
      const etag = response.headers.get('etag') ?? ''
      if (options.appValidators !== undefined) t.regex(etag, new RegExp(`-${bytes.length.toString(16)}"$`), `round ${round}: the app's ETag of the new file`)
    }
  })

  proxied(`${label}: a Range with an If-Range naming the Last-Modified of a small file written this second, or dated in the future (a weak date, RFC 9110 §13.1.5) → ${options.weakDateIfRange === undefined ? '200 with the whole file, never the range' : `206 (${options.weakDateIfRange})`}`, async (t) => {
    const { proxy, fixtures } = context()
    const name = 'written-now.txt'
    const path = join(fixtures.protectedDir, name)
    const bytes = Buffer.from('0123456789'.repeat(100))
    let response: Response | undefined
    // Retried when the second ends between the write and the answer (the date is then strong).
    for (let attempt = 0; attempt < 5; attempt++) {
      await writeFile(path, bytes)
      const written = Math.floor((await stat(path)).mtimeMs / 1000) * 1000
      response = await fetch(proxy.url + filesUrl(name), { headers: { Range: 'bytes=0-9', 'If-Range': new Date(written).toUTCString() } })
      if (Math.floor(Date.now() / 1000) * 1000 === written) break
      await response.arrayBuffer()
      response = undefined
    }
    if (response === undefined) return t.fail('every attempt crossed a second')
    const body = Buffer.from(await response.arrayBuffer())
    if (options.weakDateIfRange !== undefined) {
      t.is(response.status, 206)
      return
    }
    t.is(response.status, 200)
    t.deepEqual(body, bytes)
    t.is(response.headers.get('content-range'), null)
    // A file dated in the future: its Last-Modified (the file's own from nginx and Caddy, clamped
    // to now by the app for Apache and lighttpd) is weak too.
    const future = new Date(Date.now() + 3_600_000)
    await utimes(path, future, future)
    let resumed: Response | undefined
    for (let attempt = 0; attempt < 5; attempt++) {
      const plain = await fetch(proxy.url + filesUrl(name))
      await plain.arrayBuffer()
      const lastModified = plain.headers.get('last-modified') ?? ''
      resumed = await fetch(proxy.url + filesUrl(name), { headers: { Range: 'bytes=0-9', 'If-Range': lastModified } })
      if (Date.parse(lastModified) > Date.now() - 1000) break
      await resumed.arrayBuffer()
      resumed = undefined
    }
    if (resumed === undefined) return t.fail('every attempt crossed a second')
    t.is(resumed.status, 200, 'dated in the future')
    t.deepEqual(Buffer.from(await resumed.arrayBuffer()), bytes)
  })

  const validatorsTitle = options.appValidators
  if (validatorsTitle !== undefined) {
    proxied(`${label}: ${validatorsTitle}`, async (t) => {
      const { proxy, app, fixtures } = context()
      const url = filesUrl(fixtures.big.name) + '?validators=1'
      const response = await fetch(proxy.url + url)
      await response.arrayBuffer()
      const sent = app.last(url)?.headers.etag
      t.regex(sent ?? '', /^"[0-9a-f]+-100000"$/)
      t.is(response.headers.get('etag') ?? undefined, sent)
      t.is(response.headers.get('last-modified') ?? undefined, app.last(url)?.headers['last-modified'])
    })
  }

  return { test: proxied, context }
}
