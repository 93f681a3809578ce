// The demo in a real browser: Debian's Chromium through playwright-core (reference/test-infra.md §6).
// What a user gets is decided by the browser, not by our headers alone: the name it saves under,
// what it displays inline, whether it resumes. One browser per file; a context per test.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import test from 'ava'
import type { ImplementationFn } from 'ava'
import Koa from 'koa'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import { createDemo, filesDir } from '../../demo/app.ts'
import type { Demo } from '../../demo/app.ts'
import { rulesFor } from '../../demo/deliveries.ts'
import { s3Body, squares, textBody } from '../../demo/sources.ts'
import { download, downloads, VirtualFile } from '../../source/index.ts'
import type { DownloadFile } from '../../source/index.ts'
import { makeWorldReadable, proxyTest, startProxy } from '../helpers/proxies.ts'

const executablePath = '/usr/bin/chromium'
// KD_SIMULATE_MISSING=chromium shows the skip path without uninstalling (as for the proxies).
const absent = !existsSync(executablePath) || (process.env.KD_SIMULATE_MISSING ?? '').split(',').includes('chromium')
if (absent && process.env.REQUIRE_PROXIES === '1') throw new Error(`browser tests: ${executablePath} not found and REQUIRE_PROXIES=1`)
if (absent) console.warn(`browser tests skipped: ${executablePath} not found (apt-get install chromium, or set REQUIRE_PROXIES=1 to fail instead)`)

function browserTest (title: string, impl: ImplementationFn<[]>): void {
  if (absent) test.skip(`${title} [skipped: ${executablePath} not found]`, impl)
  else test.serial(title, impl)
}

// --no-sandbox: needed as root; the others keep Chromium off the network.
const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

let browser: Browser | undefined
let demo: Demo | undefined
let base = ''

test.before(async () => {
  if (absent) return
  demo = await createDemo()
  base = `http://127.0.0.1:${await demo.listen(0, '127.0.0.1')}`
  // launch() gives every run a new, empty user-data-dir of its own.
  browser = await chromium.launch({ executablePath, args })
})

test.after.always(async () => {
  await browser?.close()
  await demo?.stop()
})

async function withPage (fn: (page: Page) => Promise<void>): Promise<void> {
  if (browser === undefined) throw new Error('no browser')
  const context = await browser.newContext({ acceptDownloads: true })
  try {
    await fn(await context.newPage())
  } finally {
    await context.close()
  }
}

/** Clicks `selector` and waits for the download to finish: the suggested name and the saved bytes. */
async function clickDownload (page: Page, selector: string): Promise<{ name: string, bytes: Buffer }> {
  const [saved] = await Promise.all([page.waitForEvent('download'), page.click(selector)])
  const failure = await saved.failure()
  if (failure !== null) throw new Error(`download ${selector} failed: ${failure}`)
  return { name: saved.suggestedFilename(), bytes: await readFile(await saved.path()) }
}

const file = async (name: string): Promise<Buffer> => await readFile(join(filesDir, name))
async function generated (): Promise<Buffer> {
  let text = ''
  for await (const row of squares()) text += row
  return Buffer.from(text)
}

const streamed: Array<[string, string, () => Promise<Buffer>]> = [
  ['path', 'résumé €.txt', async () => await file('résumé €.txt')],
  // Chromium replaces " by _ in saved names (the header carries the quotes, see the next test).
  ['storage', 'say _hi_ 100%.txt', async () => await file('say "hi" 100%.txt')],
  ['record', 'Quarterly report – Q1 2026.csv', async () => Buffer.from('quarter,revenue\nQ1 2026,1200\n')],
  ['remote', 'résumé €.txt', async () => await file('résumé €.txt')],
  ['s3', 'data set v2.json', async () => Buffer.from(s3Body)],
  ['text', 'note from memory.txt', async () => Buffer.from(textBody)],
  ['generated', 'squares.csv', generated]
]

browserTest('browser: the index page and a text configuration page load without a console error or a failed request (no favicon 404)', async (t) => {
  for (const path of ['/', '/config/nginx']) {
    await withPage(async (page) => {
      const problems: string[] = []
      page.on('console', (message) => { if (message.type() === 'error') problems.push(`console: ${message.text()}`) })
      page.on('pageerror', (error) => { problems.push(`page: ${error.message}`) })
      page.on('response', (response) => { if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`) })
      await page.goto(`${base}${path}`, { waitUntil: 'networkidle' })
      t.deepEqual(problems, [], path)
    })
  }
})

for (const [source, name, bytes] of streamed) {
  browserTest(`browser: the ${source} source streamed by Node is saved as ${JSON.stringify(name)} with its exact bytes`, async (t) => {
    await withPage(async (page) => {
      await page.goto(`${base}/`)
      const saved = await clickDownload(page, `#node-${source}`)
      t.is(saved.name, name)
      t.deepEqual(saved.bytes, await bytes())
    })
  })
}

browserTest('browser: quotes and % reach Chromium intact through filename* (it saves " as _)', async (t) => {
  const response = await fetch(`${base}/files/${encodeURIComponent('say "hi" 100%.txt')}`)
  t.is(response.headers.get('content-disposition'), 'attachment; filename="say _hi_ 100_.txt"; filename*=UTF-8\'\'say%20%22hi%22%20100%25.txt')
  await withPage(async (page) => {
    await page.goto(`${base}/`)
    const saved = await clickDownload(page, '#quoted')
    // The % survived (the ASCII fallback has _ there, so Chromium used filename*).
    t.is(saved.name, 'say _hi_ 100%.txt')
    t.deepEqual(saved.bytes, await file('say "hi" 100%.txt'))
  })
})

browserTest('browser: the presigned redirect of the S3 object is followed and saved under the name signed into the URL', async (t) => {
  await withPage(async (page) => {
    await page.goto(`${base}/`)
    const saved = await clickDownload(page, '#presigned-s3')
    t.is(saved.name, 'data set v2.json')
    t.deepEqual(saved.bytes, Buffer.from(s3Body))
  })
})

browserTest('browser: without a proxy, an offload cell opens the headers view (X-Accel-Redirect shown), never an empty download', async (t) => {
  await withPage(async (page) => {
    let downloads = 0
    page.on('download', () => { downloads++ })
    await page.goto(`${base}/`)
    await Promise.all([page.waitForURL(`${base}/explain/nginx/path`), page.click('#nginx-path')])
    const text = await page.textContent('body') ?? ''
    t.true(text.includes('x-accel-redirect'))
    t.true(text.includes('/_protected/files/r%C3%A9sum%C3%A9%20%E2%82%AC.txt'))
    t.true(text.includes('location ^~ /_protected/files/'))
    t.is(downloads, 0)
  })
})

browserTest('browser: inline text is displayed, not downloaded', async (t) => {
  await withPage(async (page) => {
    let downloads = 0
    page.on('download', () => { downloads++ })
    const response = await page.goto(`${base}/inline/hello.txt`)
    t.is(response?.status(), 200)
    t.is(response?.headers()['content-disposition'], 'inline; filename="hello.txt"')
    t.is(await page.textContent('body'), (await file('hello.txt')).toString())
    t.is(downloads, 0)
  })
})

// Chromium hands an inline PDF to its viewer (Playwright then reports the viewer's wrapper page as
// the body, so the bytes are not comparable here); what is observable is that the navigation
// committed to the PDF response and did not turn into a download.
browserTest('browser: an inline PDF is navigated to (application/pdf, inline), not turned into a download', async (t) => {
  await withPage(async (page) => {
    let downloads = 0
    page.on('download', () => { downloads++ })
    const response = await page.goto(`${base}/inline/guide.pdf`)
    t.is(response?.status(), 200)
    t.is(response?.headers()['content-type'], 'application/pdf')
    t.is(response?.headers()['content-disposition'], 'inline; filename="guide.pdf"')
    t.is(page.url(), `${base}/inline/guide.pdf`)
    await page.waitForTimeout(300) // a download would have been reported by now
    t.is(downloads, 0)
  })
})

const withNginx = absent ? { test: browserTest } : proxyTest('nginx')

withNginx.test('browser + nginx: behind the real nginx (demo:nginx), the nginx column is saved under each name with the bytes nginx sent', async (t) => {
  t.timeout(60_000)
  const behind = await createDemo({ proxy: 'nginx' })
  try {
    const appPort = await behind.listen(0, '127.0.0.1')
    makeWorldReadable(behind.env.storageDir)
    const proxy = await startProxy('nginx', { rules: rulesFor('nginx', behind.env), appPort })
    try {
      await withPage(async (page) => {
        await page.goto(`${proxy.url}/`)
        for (const [source, name, bytes] of streamed.filter(([id]) => ['path', 'storage', 'record', 'remote', 's3'].includes(id))) {
          const saved = await clickDownload(page, `#nginx-${source}`)
          t.is(saved.name, name, source)
          t.deepEqual(saved.bytes, await bytes(), source)
        }
      })
      // The app answered these URLs with an empty body and X-Accel-Redirect (demo.test.ts): the 47
      // bytes nginx logged for the path download came from its internal location.
      t.regex(await readFile(join(proxy.prefix, 'access.log'), 'utf8'), /"GET \/get\/nginx\/path HTTP\/1\.1" 200 47 /)
    } finally {
      await proxy.stop()
    }
  } finally {
    await behind.stop()
  }
})

browserTest('browser: an interrupted download is resumed by Chromium with Range + If-Range and saved complete', async (t) => {
  // 4 MiB in memory (strong content-hash ETag); the first transfer is cut after 1.5 MB, as a
  // dropped connection would: serve() aborts the response, Chromium auto-resumes.
  const big = Buffer.alloc(4 * 1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251
  const cut = 1_500_000
  const inner = new VirtualFile(big, { name: 'big file – resumed.bin' })
  let opens = 0
  const flaky: DownloadFile = {
    name: inner.name,
    stat: async () => await inner.stat(),
    open: async (range) => {
      const stream = await inner.open(range)
      if (opens++ > 0) return stream
      return Readable.from((async function * () {
        let sent = 0
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (sent + chunk.length >= cut) {
            yield chunk.subarray(0, cut - sent)
            // Let the bytes reach the browser before the connection drops.
            await new Promise((resolve) => setTimeout(resolve, 200))
            throw new Error('connection cut by the test')
          }
          sent += chunk.length
          yield chunk
        }
      })())
    }
  }
  const requests: Array<{ range: string, ifRange: string }> = []
  const app = new Koa()
  app.silent = true
  app.use(downloads())
  app.use((ctx) => {
    if (ctx.path === '/big') {
      requests.push({ range: ctx.get('range'), ifRange: ctx.get('if-range') })
      ctx.body = download(flaky)
    } else {
      ctx.type = 'html'
      ctx.body = '<a id="big" href="/big">big</a>'
    }
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  try {
    const etag = (await inner.stat()).etag
    await withPage(async (page) => {
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
      const saved = await clickDownload(page, '#big')
      t.is(saved.name, 'big file – resumed.bin')
      t.is(saved.bytes.length, big.length)
      t.true(saved.bytes.equals(big))
    })
    t.deepEqual(requests, [{ range: '', ifRange: '' }, { range: `bytes=${cut}-`, ifRange: etag ?? 'no etag' }])
  } finally {
    server.closeAllConnections()
    server.close()
  }
})
