// nginx({ proxyRefusesSymlinks: true }) through the real nginx, with the config the CLI generates
// from the same rule: the whole offload contract still holds, the app sends X-Accel-Redirect for a
// rooted PathFile without resolving it, and nginx refuses every symlink below the source directory
// (`disable_symlinks on from=$document_root`), so a link out of the root never serves its target.
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nginx } from '../../source/backends/nginx.ts'
import { filesUrl } from '../helpers/app.ts'
import { assertAppOwn404, offloadSuite } from '../helpers/offload-suite.ts'

const { test, context } = offloadSuite({
  server: 'nginx',
  label: 'nginx proxyRefusesSymlinks',
  offloadHeader: 'X-Accel-Redirect',
  dropsAppHeaders: 'nginx keeps six headers of an X-Accel-Redirect response',
  rules: ({ protectedDir }) => [nginx({ sourceDir: protectedDir, destinationUrl: '/protected/', proxyRefusesSymlinks: true })]
})

const secret = 'SECRET OUTSIDE THE SERVED TREE\n'

test('nginx proxyRefusesSymlinks: symlinks below the source directory are refused by nginx (403, or 404 through a symlinked directory), their targets never sent, while the app offloaded them unresolved', async (t) => {
  const { proxy, app, fixtures } = context()
  const outside = join(fixtures.root, 'outside')
  await mkdir(outside, { recursive: true })
  await writeFile(join(outside, 'secret.txt'), secret)
  await mkdir(join(fixtures.protectedDir, 'links'), { recursive: true })
  await symlink(join(outside, 'secret.txt'), join(fixtures.protectedDir, 'links', 'file-out.txt'))
  await symlink(outside, join(fixtures.protectedDir, 'links', 'dir-out'))
  await symlink(join(fixtures.protectedDir, fixtures.big.name), join(fixtures.protectedDir, 'links', 'file-in.bin'))
  // nginx 1.22 answers a symlinked file with 403 and a symlinked directory on the way with 404.
  for (const [name, status] of [['links/file-out.txt', 403], ['links/dir-out/secret.txt', 404], ['links/file-in.bin', 403]] as const) {
    const url = filesUrl(name)
    const response = await fetch(proxy.url + url)
    const body = Buffer.from(await response.arrayBuffer())
    t.is(response.status, status, name)
    // nginx keeps the app's Cache-Control on its own error; the generated page adds no-store, so
    // that a browser does not show the refusal again from its cache (docs/deployment/nginx.md §4).
    t.is(response.headers.get('cache-control'), 'private, max-age=60, no-store', name)
    t.false(body.includes(Buffer.from('SECRET')), `${name}: the target's bytes are not in the body`)
    t.false(body.includes(fixtures.big.bytes.subarray(0, 64)), `${name}: nor those of the file the inside link points to`)
    // The app did not resolve the path: it offloaded the link as named, and nginx refused it.
    const sent = app.last(url)
    t.is(sent?.status, 200, name)
    t.is(sent?.headers['x-accel-redirect'], `/protected/${name.split('/').map(encodeURIComponent).join('/')}`, name)
  }
  // Control: the regular file the inside link points to is served.
  const direct = await fetch(proxy.url + filesUrl(fixtures.big.name))
  t.is(direct.status, 200)
  t.is(direct.headers.get('cache-control'), 'private, max-age=60')
  t.is((await direct.arrayBuffer()).byteLength, fixtures.big.bytes.length)
})

test('nginx proxyRefusesSymlinks: a missing file is nginx\'s 404, not to be cached; ".." is still refused by the app (404, nothing offloaded)', async (t) => {
  const { proxy, app } = context()
  const missing = filesUrl('no-such-file.bin')
  const response = await fetch(proxy.url + missing)
  await response.arrayBuffer()
  t.is(response.status, 404)
  t.is(response.headers.get('cache-control'), 'private, max-age=60, no-store')
  t.is(app.last(missing)?.headers['x-accel-redirect'], '/protected/no-such-file.bin')
  await assertAppOwn404(t, context(), '/files/..%2Fpublic%2Fpublic.txt', 'X-Accel-Redirect', 'streamed by node')
})
