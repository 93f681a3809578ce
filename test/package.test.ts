// The package as npm would publish it, used the way a consumer uses it. The repository has no dist/
// (it is built, and ignored by git), so `npm pack` from a checkout must build it first; then every
// `exports` target and the `bin` must be in the tarball and load from an installed copy on Node 24.
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'

const run = promisify(execFile)
const repo = fileURLToPath(new URL('..', import.meta.url))

interface Manifest {
  exports: Record<string, string | { types: string, default: string }>
  bin: Record<string, string>
  dependencies: Record<string, string>
}

test('package: npm pack from a fresh checkout builds dist/, ships every exports target and the bin, and a consumer can import and run them', async (t) => {
  t.timeout(180_000, 'tsc and npm pack')
  const dir = await mkdtemp(join(tmpdir(), 'kd-pack-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  // A checkout: the tracked files a build needs, no dist/ (plus a stale file a build must not ship).
  const checkout = join(dir, 'checkout')
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'SECURITY.md', 'tsconfig.json', 'tsconfig.build.json', 'source', 'adapters', 'docs']) {
    await cp(join(repo, entry), join(checkout, entry), { recursive: true })
  }
  const modules = await realpath(join(repo, 'node_modules'))
  await symlink(modules, join(checkout, 'node_modules'))
  await mkdir(join(checkout, 'dist/source'), { recursive: true })
  await writeFile(join(checkout, 'dist/source/removed-module.js'), 'export {}\n')

  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: checkout, maxBuffer: 16 << 20 })
  const [packed] = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  const files = new Set(packed?.files.map((f) => f.path))
  const manifest = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Manifest
  const targets = [
    ...Object.values(manifest.exports).flatMap((target) => typeof target === 'string' ? [target] : [target.types, target.default]),
    ...Object.values(manifest.bin)
  ].map((path) => path.replace(/^\.\//, ''))
  t.deepEqual(targets.filter((path) => !files.has(path)), [], 'exports/bin targets missing from the tarball')
  t.false(files.has('dist/source/removed-module.js'), 'a stale file of an earlier build was shipped')
  // The README's relative links (docs/…, SECURITY.md) resolve inside the installed package too.
  const links = [...(await readFile(join(repo, 'README.md'), 'utf8')).matchAll(/\]\((?!https?:|#)([^)#]+)/g)].map((m) => m[1] ?? '')
  t.true(links.length > 5)
  t.deepEqual(links.filter((link) => !files.has(link)), [], 'README links missing from the tarball')

  // A consumer: the tarball unpacked as node_modules/koa-downloads, its dependencies and koa beside it.
  const consumer = join(dir, 'consumer')
  const installed = join(consumer, 'node_modules/koa-downloads')
  await mkdir(installed, { recursive: true })
  await run('tar', ['-xzf', join(dir, packed?.filename ?? ''), '-C', installed, '--strip-components=1'])
  // The source maps carry their sources: the .ts files they name are not in the package, and a
  // stack trace under --enable-source-maps would point at a file that does not exist.
  const map = JSON.parse(await readFile(join(installed, 'dist/source/testing.js.map'), 'utf8')) as { sources: string[], sourcesContent?: Array<string | null> }
  t.deepEqual(map.sources, ['../../source/testing.ts'])
  t.is(map.sourcesContent?.[0], await readFile(join(repo, 'source/testing.ts'), 'utf8'))
  for (const name of [...Object.keys(manifest.dependencies), 'koa']) await symlink(join(modules, name), join(consumer, 'node_modules', name))
  await writeFile(join(consumer, 'package.json'), '{ "type": "module" }\n')
  await writeFile(join(consumer, 'names.js'), [
    "const main = await import('koa-downloads')",
    "const flydrive = await import('koa-downloads/adapters/flydrive')",
    "const http = await import('koa-downloads/adapters/http')",
    "const testing = await import('koa-downloads/testing')",
    "const names = { main: ['download', 'downloads', 'serve', 'offload', 'sendfile', 'PathFile', 'VirtualFile', 'nginx', 'apache', 'lighttpd', 'caddy', 'internalRedirect', 'negotiated'], flydrive: ['storage', 'StorageFile', 'recordFile', 'presignedRedirect'], http: ['HttpFile'], testing: ['assertDownload', 'assertXAccelRedirect', 'assertXSendfile', 'assertInternalRedirect', 'bufferParser'] }",
    'const modules = { main, flydrive, http, testing }',
    "console.log(JSON.stringify(Object.entries(names).flatMap(([m, list]) => list.filter((n) => typeof modules[m][n] !== 'function').map((n) => `${m}.${n}`))))"
  ].join('\n'))
  const names = await run(process.execPath, ['names.js'], { cwd: consumer })
  t.is(names.stdout.trim(), '[]', 'names the README imports that the package does not export')

  await writeFile(join(consumer, 'offload-rules.ts'), "import { nginx } from 'koa-downloads'\nexport const rules = [nginx({ sourceDir: '/srv/private', destinationUrl: '/protected/' })]\n")
  const bin = join(installed, manifest.bin['koa-downloads'] ?? '')
  const config = await run(process.execPath, [bin, 'config', 'nginx', '--rules', './offload-rules.ts'], { cwd: consumer })
  t.regex(config.stdout, /\nlocation \^~ \/protected\/ \{\n[\s\S]*\n {4}alias \/srv\/private\/;\n[\s\S]*\}\n/)
})
