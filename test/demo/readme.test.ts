// The README cannot rot: every ```ts block is typechecked and run, and every shell command it shows
// is an npm script or is covered by a named test.
//
// How a ```ts block runs: the marker before it (`<!-- readme-test: <id> -->`) names it; the block is
// written to a sandbox directory whose node_modules links to the project's, with four mechanical
// edits — `koa-downloads[/…]` imports point at the sources, `/srv/` paths point into the sandbox
// (which holds the example files), `https://files.example.com/` points at a local origin, and
// `app.listen(…)` is dropped — plus a prelude that imports the user's functions (findReport, …) from
// test/demo/readme-stubs.ts. tsc checks all blocks with the project's strict settings; then each
// block is imported and its app answers requests, with exact statuses, headers and bytes.
import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import type { RequestListener } from 'node:http'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'
import Koa from 'koa'
import type Router from '@koa/router'
import request from 'supertest'
import type { OffloadRule } from '../../source/index.ts'
import type { DownloadFile } from '../../source/types.ts'
import { bufferParser } from '../../source/testing.ts'
import { blocksOf, createSandbox, repo } from './readme-sandbox.ts'
import type { Sandbox } from './readme-sandbox.ts'
import { csvText } from './readme-stubs.ts'

const run = promisify(execFile)
const readme = await readFile(join(repo, 'README.md'), 'utf8')
const blocks = blocksOf(readme)
const tsBlocks = blocks.filter((b) => b.lang === 'ts')

// The blocks of the migration guides and of the adapters page are fragments of an app: typechecked
// (not run), with the app, router, database, storage and functions they use but do not declare.
const guide = await readFile(join(repo, 'docs/migrating-from-django.md'), 'utf8')
const guideBlocks = blocksOf(guide).filter((b) => b.lang === 'ts')
const sendGuideBlocks = blocksOf(await readFile(join(repo, 'docs/migrating-from-koa-send.md'), 'utf8')).filter((b) => b.lang === 'ts')
const adapterBlocks = blocksOf(await readFile(join(repo, 'docs/adapters.md'), 'utf8')).filter((b) => b.lang === 'ts')

// The deployment guides: each page's first ```ts block is the offload-rules.ts its `koa-downloads
// config` command reads, and the configurations the page prints must be what that command prints.
const deployServers = ['nginx', 'apache', 'lighttpd', 'caddy'] as const
const deployPages = new Map(await Promise.all(deployServers.map(async (server) => [server, await readFile(join(repo, `docs/deployment/${server}.md`), 'utf8')] as const)))

// What a block needs besides its own code. `testing` talks to "your app": the two apps above it.
const preludes: Record<string, string> = {
  testing: [
    "import type { RequestListener } from 'node:http'",
    "import { app as reportsApp } from './first-example.ts'",
    "import { app as invoicesApp } from './offload-nginx.ts'",
    'const app = { callback: (): RequestListener => (req, res) => { void (req.url?.startsWith(\'/invoices/\') === true ? invoicesApp : reportsApp).callback()(req, res) } }'
  ].join('\n')
}

let sandbox: Sandbox | undefined
let typeErrors = ''
const modules = new Map<string, Record<string, unknown>>()

test.before(async (t) => {
  t.timeout(180_000, 'tsc over the README blocks')
  const box = sandbox = await createSandbox()
  for (const block of tsBlocks) {
    if (block.id !== undefined) await box.write(`${block.id}.ts`, box.transform(block, preludes[block.id]))
  }
  const guideContext = [
    "import type Koa from 'koa'",
    "import type Router from '@koa/router'",
    "import type { DatabaseSync } from 'node:sqlite'",
    `import type { Storage } from '${box.fromSandbox('adapters/flydrive/index.ts')}'`,
    'declare const app: Koa',
    'declare const router: Router',
    'declare const db: DatabaseSync',
    'declare const media: Storage'
  ].join('\n')
  for (const [i, block] of guideBlocks.entries()) {
    const code = box.transform(block).replace(/^export \{ [\w, ]+ \}$/m, '')
    await box.write(`guide-${i}.ts`, `${guideContext}\n${code}\nexport {}\n`)
  }
  for (const [i, block] of sendGuideBlocks.entries()) {
    const code = box.transform(block).replace(/^export \{ [\w, ]+ \}$/m, '')
    await box.write(`from-koa-send-${i}.ts`, `${guideContext}\n${code}\nexport {}\n`)
  }
  // An adapters block may make its own app and router, and import download(): declare only the rest.
  const fragmentNames: Record<string, string> = {
    Koa: "import type Koa from 'koa'",
    Router: "import type Router from '@koa/router'",
    app: 'declare const app: Koa',
    router: 'declare const router: Router',
    media: `declare const media: import('${box.fromSandbox('adapters/flydrive/index.ts')}').Storage`,
    download: `declare const download: typeof import('${box.fromSandbox('source/index.ts')}').download`,
    downloads: `declare const downloads: typeof import('${box.fromSandbox('source/index.ts')}').downloads`
  }
  for (const [i, block] of adapterBlocks.entries()) {
    const code = box.transform(block).replace(/^export \{ [\w, ]+ \}$/m, '')
    const own = (name: string): boolean => new RegExp(`^(?:const|let|function) ${name}\\b|^import (?:type )?(?:${name}\\b|\\{[^}]*\\b${name}\\b[^}]*\\})`, 'm').test(code)
    const context = Object.entries(fragmentNames).filter(([name]) => !own(name)).map(([, line]) => line)
    await box.write(`adapters-${i}.ts`, `${context.join('\n')}\n${code}\nexport {}\n`)
  }
  // A deployment block may use `app` (declared here), a rule builder it shows without its import, and
  // ./offload-rules.ts (the page's first block).
  for (const [server, page] of deployPages) {
    for (const [i, block] of blocksOf(page).filter((b) => b.lang === 'ts').entries()) {
      const code = box.transform(block).replaceAll("from './offload-rules.ts'", `from './deploy-${server}-0.ts'`)
      const context = [
        ...(/\bapp\./.test(code) && !/^const app\b/m.test(code) ? ["import type Koa from 'koa'", 'declare const app: Koa'] : []),
        ...deployServers
          .filter((name) => new RegExp(`\\b${name}\\(`).test(code) && !new RegExp(`^import \\{[^}]*\\b${name}\\b`, 'm').test(code))
          .map((name) => `import { ${name} } from '${box.fromSandbox('source/index.ts')}'`)
      ]
      await box.write(`deploy-${server}-${i}.ts`, `${context.join('\n')}\n${code}\nexport {}\n`)
    }
  }
  typeErrors = box.typecheck()
  // Import in README order: `testing` uses the apps of the blocks above it.
  for (const block of tsBlocks) {
    if (block.id === undefined) continue
    try {
      modules.set(block.id, await import(pathToFileURL(join(box.dir, `${block.id}.ts`)).href) as Record<string, unknown>)
    } catch (error) {
      modules.set(block.id, { error })
    }
  }
})

test.after.always(async () => { await sandbox?.stop() })

/** The block's module, after checking that it typechecked and ran. */
function moduleOf (id: string): Record<string, unknown> {
  const errors = typeErrors.split('\n').filter((line) => line.includes(`${id}.ts(`))
  if (errors.length > 0) throw new Error(`README block ${id} does not typecheck:\n${errors.join('\n')}`)
  const loaded = modules.get(id)
  if (loaded === undefined) throw new Error(`README block ${id} is missing (its marker was removed or renamed?)`)
  if ('error' in loaded) throw loaded.error
  return loaded
}

const handler = (id: string): RequestListener => {
  const loaded = moduleOf(id)
  if (loaded.app instanceof Koa) return loaded.app.callback()
  const app = new Koa()
  app.use((loaded.router as Router).routes())
  return app.callback()
}

const checks: Record<string, (t: import('ava').ExecutionContext) => Promise<void>> = {
  'first-example': async (t) => {
    const app = handler('first-example')
    const report = await request(app).get('/reports/42').buffer(true).parse(bufferParser)
    t.is(report.status, 200)
    t.is(report.headers['content-type'], 'application/pdf')
    t.is(report.headers['content-disposition'], 'attachment; filename="Q1 _ resume.pdf"; filename*=UTF-8\'\'Q1%20%E2%80%94%20r%C3%A9sum%C3%A9.pdf')
    t.is(report.headers['cache-control'], 'private, max-age=3600')
    t.regex(report.headers.etag ?? '', /^"[0-9a-f]+-[0-9a-f]+"$/)
    t.deepEqual(report.body, Buffer.from('%PDF-1.4 quarterly\n'))
    const ranged = await request(app).get('/reports/42').set('Range', 'bytes=0-3').buffer(true).parse(bufferParser)
    t.is(ranged.status, 206)
    t.deepEqual(ranged.body, Buffer.from('%PDF'))
    t.is((await request(app).get('/reports/7')).status, 404)
    const csv = await request(app).get('/export.csv')
    t.is(csv.status, 200)
    t.is(csv.headers['content-type'], 'text/csv; charset=utf-8')
    t.is(csv.headers['content-disposition'], 'attachment; filename="export.csv"')
    t.is(csv.headers['content-length'], undefined)
    t.is(csv.text, csvText)
  },
  sources: async (t) => {
    const app = handler('sources')
    const media = await request(app).get(`/media/${encodeURIComponent('docs/ünï (1).txt')}`)
    t.is(media.status, 200)
    t.is(media.headers['content-disposition'], 'attachment; filename="uni (1).txt"; filename*=UTF-8\'\'%C3%BCn%C3%AF%20%281%29.txt')
    t.is(media.text, 'media bytes\n')
    t.is((await request(app).get(`/media/${encodeURIComponent('../app.db')}`)).status, 404)
    const upload = await request(app).get('/uploads/1')
    t.is(upload.status, 200)
    t.is(upload.headers['content-type'], 'text/csv')
    t.is(upload.headers['content-disposition'], 'attachment; filename="Releve de compte.csv"; filename*=UTF-8\'\'Relev%C3%A9%20de%20compte.csv')
    t.is(upload.text, 'a,b\n1,2\n')
    t.is((await request(app).get('/uploads/2')).status, 404)
    const mirror = await request(app).get('/mirror/hello world.txt')
    t.is(mirror.status, 200)
    t.is(mirror.headers['content-disposition'], 'attachment; filename="hello world.txt"')
    t.is(mirror.headers.etag, '"v1"')
    t.is(mirror.text, 'hello world\n')
    const robots = await request(app).get('/robots.txt')
    t.is(robots.headers['content-disposition'], 'inline; filename="robots.txt"')
    t.is(robots.headers['content-type'], 'text/plain; charset=utf-8')
    t.is(robots.text, 'User-agent: *\nDisallow: /private/\n')
  },
  'offload-nginx': async (t) => {
    const app = handler('offload-nginx')
    for (const method of ['get', 'head'] as const) {
      const response = await request(app)[method]('/invoices/März 2026.pdf')
      t.is(response.status, 200, method)
      t.is(response.headers['content-length'], '0', method)
      t.is(response.headers['content-type'], 'application/pdf', method)
      t.is(response.headers['content-disposition'], 'attachment; filename="Marz 2026.pdf"; filename*=UTF-8\'\'M%C3%A4rz%202026.pdf', method)
      t.is(response.headers['x-accel-redirect'], '/protected/invoices/M%C3%A4rz%202026.pdf', method)
      t.is(response.headers['x-accel-charset'], undefined, method)
    }
    t.is((await request(app).get('/invoices/..%2F..%2Fapp.db')).status, 404)
  },
  backends: async (t) => {
    const rules = moduleOf('backends').rules as OffloadRule[]
    const srv = `${sandbox?.dir ?? ''}/srv`
    const file = (where: { path?: string, url?: string }): DownloadFile => ({
      name: 'a b.pdf', ...where, stat: async () => ({}), open: async () => { throw new Error('never opened') }
    })
    const value = (i: number, f: DownloadFile): string | undefined => rules[i]?.match(f, { method: 'GET', headers: {} })?.value
    t.is(rules[0]?.match(file({ path: `${srv}/private/a b.pdf` }), { method: 'GET', headers: {} })?.header, 'X-Sendfile')
    t.is(value(0, file({ path: `${srv}/private/a b.pdf` })), `${srv}/private/a b.pdf`)
    t.is(value(1, file({ path: `${srv}/exports/a b.pdf` })), '/var/www/private/a%20b.pdf')
    t.is(value(2, file({ path: `${srv}/caddy/a b.pdf` })), '/protected/a b.pdf')
    t.is(value(3, file({ path: `${srv}/cgi/a b.pdf` })), '/private/a%20b.pdf')
    t.is(value(4, file({ url: 'https://media.example.com/files/a%20b.pdf' })), '/_origin/a%20b.pdf')
    t.is(value(5, file({ url: 'https://bucket.s3.example.com/k%20x?X-Amz-Signature=abc' })), '/_remote/https/bucket.s3.example.com/k%2520x?X-Amz-Signature=abc')
    // Outside every source: no rule takes it.
    t.true(rules.every((rule) => rule.match(file({ path: '/etc/passwd' }), { method: 'GET', headers: {} }) === undefined))
  },
  sendfile: async (t) => {
    const response = await request(handler('sendfile')).get(`/media/${encodeURIComponent('uploads-7f3a')}`)
    t.is(response.status, 200)
    t.is(response.headers['content-disposition'], 'inline; filename="uploads-7f3a"')
    t.is((await request(handler('sendfile')).get('/media/..%2Fapp.db')).status, 404)
  },
  'stat-cache': async (t) => {
    const app = handler('stat-cache')
    const first = await request(app).get('/media/uploads-7f3a').buffer(true).parse(bufferParser)
    t.is(first.status, 200)
    t.deepEqual(first.body, Buffer.from('a,b\n1,2\n'))
    const etag = first.headers.etag ?? ''
    t.regex(etag, /^"[0-9a-f]+-8"$/)
    const again = await request(app).get('/media/uploads-7f3a').set('If-None-Match', etag)
    t.is(again.status, 304)
    t.is(again.headers.etag, etag)
    t.is((await request(app).head('/media/..%2Fapp.db')).status, 404)
    // The cache at work: a file removed since its last look is still described (no byte sent)...
    const removed = join(sandbox?.dir ?? '', 'srv/media/removed-soon.txt')
    await writeFile(removed, 'soon gone\n')
    t.is((await request(app).head('/media/removed-soon.txt')).status, 200)
    await rm(removed)
    const stale = await request(app).head('/media/removed-soon.txt')
    t.is(stale.status, 200)
    t.is(stale.headers['content-length'], '10')
    // ...but never sent.
    t.is((await request(app).get('/media/removed-soon.txt')).status, 404)
  },
  testing: async (t) => {
    // The block ran its assertions at import time; a failing one would have rejected the import.
    t.truthy(moduleOf('testing'))
  }
}

test('readme: every ```ts block has a readme-test marker with a check, and every check has its block', (t) => {
  t.deepEqual(tsBlocks.filter((b) => b.id === undefined).map((b) => `README.md:${b.line}`), [])
  t.deepEqual(tsBlocks.map((b) => b.id).sort(), Object.keys(checks).sort())
})

for (const id of Object.keys(checks)) {
  test(`readme: the "${id}" example typechecks, runs and answers as the README says`, async (t) => {
    await checks[id]?.(t)
  })
}

test('docs: every ```ts block of docs/migrating-from-django.md typechecks', (t) => {
  t.true(guideBlocks.length >= 3)
  const errors = typeErrors.split('\n').filter((line) => /guide-\d+\.ts\(/.test(line))
  t.deepEqual(errors, [])
})

test('docs: every ```ts block of docs/migrating-from-koa-send.md typechecks', (t) => {
  t.true(sendGuideBlocks.length >= 3)
  const errors = typeErrors.split('\n').filter((line) => /from-koa-send-\d+\.ts\(/.test(line))
  t.deepEqual(errors, [])
})

test('docs: every ```ts block of docs/adapters.md typechecks', (t) => {
  t.true(adapterBlocks.length >= 3)
  const errors = typeErrors.split('\n').filter((line) => /adapters-\d+\.ts\(/.test(line))
  t.deepEqual(errors, [])
})

for (const server of deployServers) {
  test(`docs: docs/deployment/${server}.md: its \`\`\`ts blocks typecheck, and each configuration it prints is what its \`koa-downloads config\` command prints for its rules`, async (t) => {
    t.deepEqual(typeErrors.split('\n').filter((line) => line.includes(`deploy-${server}-`)), [])
    const page = deployPages.get(server) ?? ''
    const blocks = blocksOf(page)
    const command = blocks.find((b) => b.lang === 'sh' && b.code.includes('koa-downloads config'))?.code.trim() ?? ''
    t.regex(command, new RegExp(`^npx koa-downloads config ${server} --rules \\./offload-rules\\.ts( --upstream \\S+)?$`))
    // "Add `--listen … --upstream … --prefix …`" (possibly wrapped): the complete configuration.
    const fullArgs = (/`(--listen \S+\s+--upstream \S+\s+--prefix\s+\S+)`/.exec(page)?.[1] ?? '').split(/\s+/)
    t.is(fullArgs.length, 6)
    const dir = sandbox?.dir ?? ''
    const args = command.split(' ').slice(2).map((arg) => arg === './offload-rules.ts' ? join(dir, `deploy-${server}-0.ts`) : arg)
    const cli = async (extra: string[]): Promise<string> => {
      const { stdout } = await run(process.execPath, [join(repo, 'source/cli.ts'), ...args, ...extra])
      return stdout.replaceAll(`${dir}/srv/`, '/srv/')
    }
    const printed = blocks.filter((b) => b.code.startsWith('# koa-downloads: ')).map((b) => `${b.code}\n`)
    const expected = [await cli([]), await cli(fullArgs)]
    if (process.env.UPDATE_DOCS === '1' && printed.length === expected.length && printed.some((text, i) => text !== expected[i])) {
      // UPDATE_DOCS=1 npx ava test/demo/readme.test.ts: the page gets what the generator prints now
      // (review the diff: the text around the blocks may need the same change).
      let updated = page
      for (const [i, text] of printed.entries()) updated = updated.replace(text, () => expected[i] ?? text)
      await writeFile(join(repo, `docs/deployment/${server}.md`), updated)
      t.log(`docs/deployment/${server}.md updated`)
      return
    }
    t.deepEqual(printed, expected)
  })
}

test('readme: every npm command (in shell blocks and in the text) is a script of package.json', async (t) => {
  const scripts = (JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  const commands = [
    ...blocks.filter((b) => b.lang === 'sh').flatMap((b) => [...b.code.matchAll(/\bnpm (?:run )?([\w:-]+)/g)].map((m) => m[1] ?? '')),
    ...[...readme.matchAll(/`npm run ([\w:-]+)`/g)].map((m) => m[1] ?? '')
  ]
  t.true(commands.includes('demo:nginx'))
  for (const name of commands) {
    if (name === 'install') continue
    t.true(name in scripts, `npm ${name}`)
  }
})

test('readme: every `npx koa-downloads <command>` is covered by a named test that exists', async (t) => {
  const used = new Set(blocks.filter((b) => b.lang === 'sh').flatMap((b) => [...b.code.matchAll(/npx koa-downloads (\w+)/g)].map((m) => m[1] ?? '')))
  t.deepEqual([...used].sort(), ['check', 'config'])
  const covered = [...readme.matchAll(/<!-- readme-covered: (\S+) "(.+)" -->/g)]
  for (const command of used) {
    const marker = covered.find((m) => (m[2] ?? '').startsWith(`cli ${command}:`))
    t.truthy(marker, `no readme-covered marker for ${command}`)
    const source = await readFile(join(repo, marker?.[1] ?? ''), 'utf8')
    t.true(source.includes(`test('${(marker?.[2] ?? '').replaceAll("'", "\\'")}'`), `${marker?.[1]} has no test ${marker?.[2]}`)
  }
})

test('readme: the quick start is exactly `npm install && npm run demo` and `npm test`', (t) => {
  // The first sh block is how a user of the package installs it; the second, the clone's quick start.
  const [install, quick] = blocks.filter((b) => b.lang === 'sh')
  t.regex(install?.code ?? '', /^npm install koa-downloads koa +# .+\n/)
  t.regex(quick?.code ?? '', /^npm install && npm run demo +# .+\nnpm test +# .+$/)
})
