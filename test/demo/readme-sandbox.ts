// The sandbox the README test runs code blocks in (see test/demo/readme.test.ts): a temp directory
// whose node_modules links to the project's, holding the example files the README names under
// /srv/, plus a loopback server standing in for https://files.example.com/.
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'

export const repo = fileURLToPath(new URL('../../', import.meta.url))

export interface Block { id: string | undefined, lang: string, code: string, line: number }

/** Fenced blocks, each with the `<!-- readme-test: <id> -->` marker on the line before it (if any). */
export function blocksOf (markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i] ?? '')
    if (open === null) continue
    const end = lines.indexOf('```', i + 1)
    if (end === -1) throw new Error(`line ${i + 1}: unclosed code block`)
    const marker = /^<!-- readme-test: ([\w-]+) -->$/.exec(lines[i - 1] ?? '')
    blocks.push({ id: marker?.[1], lang: open[1] ?? '', code: lines.slice(i + 1, end).join('\n'), line: i + 1 })
    i = end
  }
  return blocks
}

const packageSources: Record<string, string> = {
  'koa-downloads': 'source/index.ts',
  'koa-downloads/testing': 'source/testing.ts',
  'koa-downloads/adapters/flydrive': 'adapters/flydrive/index.ts',
  'koa-downloads/adapters/http': 'adapters/http/index.ts'
}

export interface Sandbox {
  dir: string
  /** A relative specifier from the sandbox to a project file (tsc rewrites only relative `.ts` imports). */
  fromSandbox: (path: string) => string
  /**
   * A block as a module: `koa-downloads[/…]` imports point at the sources, `/srv/` into the sandbox,
   * files.example.com at the local origin, `app.listen(…)` is dropped, the user's functions are
   * imported from readme-stubs.ts, and `app`, `router` and `rules` are exported.
   */
  transform: (block: Block, prelude?: string) => string
  write: (name: string, code: string) => Promise<void>
  /** tsc over every module written, with the project's settings: its output ('' when clean). */
  typecheck: () => string
  stop: () => Promise<void>
}

export async function createSandbox (): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-readme-'))
  await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'))
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n')
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ extends: join(repo, 'tsconfig.json'), include: ['*.ts'] }))

  await mkdir(join(dir, 'srv/reports'), { recursive: true })
  await writeFile(join(dir, 'srv/reports/q1.pdf'), '%PDF-1.4 quarterly\n')
  await mkdir(join(dir, 'srv/private/invoices'), { recursive: true })
  await writeFile(join(dir, 'srv/private/invoices/März 2026.pdf'), '%PDF-1.4 invoice\n')
  await mkdir(join(dir, 'srv/media/docs'), { recursive: true })
  await writeFile(join(dir, 'srv/media/docs/ünï (1).txt'), 'media bytes\n')
  await writeFile(join(dir, 'srv/media/uploads-7f3a'), 'a,b\n1,2\n')
  // At rest, as served files are: a file of the current second has a weak ETag (etag.ts statEtag).
  const past = new Date(Date.now() - 3_600_000)
  for (const file of ['reports/q1.pdf', 'private/invoices/März 2026.pdf', 'media/docs/ünï (1).txt', 'media/uploads-7f3a']) await utimes(join(dir, 'srv', file), past, past)
  const db = new DatabaseSync(join(dir, 'srv/app.db'))
  db.exec('CREATE TABLE uploads (id INTEGER PRIMARY KEY, file_key TEXT, original_name TEXT, content_type TEXT)')
  db.prepare('INSERT INTO uploads VALUES (1, ?, ?, ?)').run('uploads-7f3a', 'Relevé de compte.csv', 'text/csv')
  db.close()

  // files.example.com: one file, with a strong ETag.
  const origin = createServer((req, res) => {
    if (req.url !== '/pub/hello%20world.txt') { res.writeHead(404).end(); return }
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 12, ETag: '"v1"', 'Accept-Ranges': 'bytes' })
    res.end(req.method === 'HEAD' ? undefined : 'hello world\n')
  })
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/`

  const fromSandbox = (path: string): string => relative(dir, join(repo, path))
  return {
    dir,
    fromSandbox,
    transform (block, prelude = '') {
      let code = block.code
      for (const [name, path] of Object.entries(packageSources)) code = code.replaceAll(`from '${name}'`, `from '${fromSandbox(path)}'`)
      code = code.replaceAll('/srv/', `${dir}/srv/`)
      code = code.replaceAll('https://files.example.com/', originUrl)
      code = code.replace(/^app\.listen\(.*\)$/m, '// app.listen(…) dropped by the README test')
      const stubs = `import { findReport, generateCsvRows } from '${fromSandbox('test/demo/readme-stubs.ts')}'`
      const exports = ['app', 'router', 'rules'].filter((name) => new RegExp(`^const ${name} = `, 'm').test(code))
      return [stubs, prelude, code, exports.length > 0 ? `export { ${exports.join(', ')} }` : ''].join('\n') + '\n'
    },
    write: async (name, code) => { await writeFile(join(dir, name), code) },
    typecheck () {
      const tsc = spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' })
      return tsc.stdout + tsc.stderr
    },
    stop: async () => {
      await new Promise<void>((resolve) => origin.close(() => { resolve() }))
      await rm(dir, { recursive: true, force: true })
    }
  }
}
