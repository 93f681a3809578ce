import { randomBytes, createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import { storage } from '../../adapters/flydrive/storage.ts'
import { HttpFile } from '../../adapters/http/http-file.ts'
import { download } from '../../source/download.ts'
import { downloads } from '../../source/downloads.ts'
import type { OffloadRule } from '../../source/offload-rule.ts'
import { PathFile } from '../../source/path-file.ts'
import { VirtualFile } from '../../source/virtual-file.ts'
import { makeWorldReadable } from './proxies.ts'

/** A name with a space, `%`, non-ASCII letters and a double quote: every encoding trap at once. */
export const hostileName = 'my "résumé" 100% done.txt'
/**
 * Names with a control character, each beside a decoy whose name has `_` in its place: lighttpd
 * turns a decoded control character into `_` (measured), so a sendfile path carrying one named the
 * decoy.
 */
export const controlNames: ReadonlyArray<{ name: string, decoy: string }> = [
  { name: 'ctl\x01name.txt', decoy: 'ctl_name.txt' },
  { name: 'tab\tname.txt', decoy: 'tab_name.txt' },
  { name: 'del\x7fname.txt', decoy: 'del_name.txt' }
]

export interface Fixtures {
  root: string
  /** Covered by the rules: `<root>/protected` */
  protectedDir: string
  /** Covered by no rule: `<root>/public` */
  publicDir: string
  big: { name: string, bytes: Buffer, sha256: string }
  hostile: { name: string, bytes: Buffer }
  slow: { name: string, bytes: Buffer }
  remove: () => Promise<void>
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** A temp tree the proxies' workers can read (they run as nobody/www-data under root). */
export async function makeFixtures (): Promise<Fixtures> {
  // spaces, quotes, non-ASCII, ';' and '#' in the directory: the generated configs must quote them
  const root = await mkdtemp(join(tmpdir(), 'kd files "ü" #;-'))
  const protectedDir = join(root, 'protected')
  const publicDir = join(root, 'public')
  await mkdir(join(protectedDir, 'slow'), { recursive: true })
  await mkdir(publicDir)
  const big = randomBytes(1024 * 1024)
  const hostile = Buffer.from('résumé contents\n')
  const slow = randomBytes(256 * 1024)
  await writeFile(join(protectedDir, 'big.bin'), big)
  await writeFile(join(protectedDir, hostileName), hostile)
  await writeFile(join(protectedDir, 'slow', 'slow.bin'), slow)
  await writeFile(join(publicDir, 'public.txt'), 'streamed by node\n')
  // An upload that runs script when a browser renders it in the app's origin.
  await writeFile(join(protectedDir, 'page.html'), activePage)
  for (const { name, decoy } of controlNames) {
    await writeFile(join(protectedDir, name), `the file named ${JSON.stringify(name)}\n`)
    await writeFile(join(protectedDir, decoy), 'DECOY: another user\'s file\n')
  }
  // At rest: a file of the current second has a weak ETag (etag.ts statEtag), which would turn
  // strong between a test's two requests.
  const past = new Date(Date.now() - 3_600_000)
  for (const file of ['big.bin', hostileName, 'slow/slow.bin', 'page.html', ...controlNames.flatMap(({ name, decoy }) => [name, decoy])]) {
    await utimes(join(protectedDir, file), past, past)
  }
  await utimes(join(publicDir, 'public.txt'), past, past)
  makeWorldReadable(root)
  return {
    root,
    protectedDir,
    publicDir,
    big: { name: 'big.bin', bytes: big, sha256: sha256(big) },
    hostile: { name: hostileName, bytes: hostile },
    slow: { name: 'slow/slow.bin', bytes: slow },
    remove: async () => { await rm(root, { recursive: true, force: true }) }
  }
}

export const activePage = '<!doctype html><script>fetch("/steal?" + document.cookie)</script>\n'

export const memoryText = 'hello from memory\n'
export const generatedText = 'n,square\n0,0\n1,1\n2,4\n'

async function * generatedRows (): AsyncGenerator<string> {
  yield 'n,square\n'
  for (let n = 0; n < 3; n++) yield `${n},${n * n}\n`
}

/** What the app itself answered, as seen after downloads() ran: the proof of who did the work. */
export interface AppResponse {
  method: string
  url: string
  status: number
  headers: Record<string, string>
}

export interface TestApp {
  port: number
  url: string
  /** Every response the app produced, in order. */
  responses: AppResponse[]
  /** The app's response to the last request whose URL is `url`. */
  last: (url: string) => AppResponse | undefined
  close: () => Promise<void>
}

/**
 * The Koa app behind the proxies: `downloads({ rules })` app-wide; `GET /files/<path>` serves
 * `<protectedDir>/<path>`, `GET /public/<name>` serves `<publicDir>/<name>` (no rule covers it);
 * `?inline=1` asks for inline, `?vary=1` sets `Vary: Origin` first. Every response gets `Cache-Control: private, max-age=60`.
 * `GET /storage/<key>` serves the same tree through flydrive's fs driver (StorageFile, which has a path).
 * `GET /remote/public.txt` is an HttpFile of the app's own `/public/public.txt` (a URL no rule covers).
 * `GET /record/<n>` serves `controlNames[n]` below `protectedDir` (a name from a record, not the URL).
 * `GET /memory/hello.txt` (in-memory) and `GET /generated/rows.csv` (an async generator) have no
 * path or url: always streamed.
 */
export async function startApp (fixtures: Fixtures, rules: OffloadRule[]): Promise<TestApp> {
  const responses: AppResponse[] = []
  const app = new Koa()
  app.use(async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      // An HTTP error (a 412, a 404 …) thrown for Koa to answer: its status, and no header of ours
      // (Koa's error response keeps none of them).
      responses.push({ method: ctx.method, url: ctx.url, status: (error as { status?: number }).status ?? 500, headers: {} })
      throw error
    }
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(ctx.response.headers)) headers[name] = String(value)
    responses.push({ method: ctx.method, url: ctx.url, status: ctx.status, headers })
  })
  app.use(downloads({ rules }))
  let selfUrl = ''
  const disk = storage(new Disk(new FSDriver({ location: fixtures.protectedDir, visibility: 'private' })))
  app.use(async (ctx) => {
    if (ctx.path.startsWith('/storage/')) {
      ctx.body = download(disk.file(decodeURIComponent(ctx.path.slice('/storage/'.length))))
      return
    }
    if (ctx.path === '/remote/public.txt') {
      ctx.body = download(new HttpFile(`${selfUrl}/public/public.txt`))
      return
    }
    if (ctx.path === '/memory/hello.txt') {
      ctx.body = download(new VirtualFile(memoryText, { name: 'hello.txt' }))
      return
    }
    if (ctx.path === '/generated/rows.csv') {
      ctx.body = download(new VirtualFile(generatedRows(), { name: 'rows.csv' }))
      return
    }
    const record = /^\/record\/(\d+)$/.exec(ctx.path)
    if (record !== null) {
      // A name found by id, as in a database record: one a request URL could not carry (a proxy
      // refuses control characters in its request line).
      const name = controlNames[Number(record[1])]?.name
      if (name !== undefined) ctx.body = download(new PathFile(name, { root: fixtures.protectedDir }))
      return
    }
    const inline = ctx.query.inline === '1'
    // a CORS middleware's Vary
    if (ctx.query.vary === '1') ctx.vary('Origin')
    const path = decodeURIComponent(ctx.path)
    for (const [prefix, root] of [['/files/', fixtures.protectedDir], ['/public/', fixtures.publicDir]] as const) {
      if (path.startsWith(prefix)) {
        ctx.body = download(new PathFile(path.slice(prefix.length), { root }), { attachment: !inline, cacheControl: 'private, max-age=60' })
        return
      }
    }
    ctx.status = 404
  })
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { server.once('listening', resolve); server.once('error', reject) })
  const { port } = server.address() as AddressInfo
  selfUrl = `http://127.0.0.1:${port}`
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    responses,
    last: (url) => responses.findLast((r) => r.url === url),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

/** `/files/my%20%22r%C3%A9sum%C3%A9%22%20100%25%20done.txt` */
export function filesUrl (name: string, prefix = '/files/'): string {
  return prefix + name.split('/').map(encodeURIComponent).join('/')
}
