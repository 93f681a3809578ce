// lighttpd's `server.follow-symlink = "disable"` with the offload koa-downloads makes: the config the
// CLI generates for a lighttpd() rule, plus that one line (docs/deployment/lighttpd.md, "Symlinks").
// The app keeps its own check (a link out of the root is its 404); lighttpd then also refuses every
// symlink on the X-Sendfile path it opens (403), the app's headers not passed on. This is the proxy
// side that closes the window between the app's check and lighttpd's open (SECURITY.md).
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lighttpd } from '../../source/backends/lighttpd.ts'
import { renderLighttpd } from '../../source/server-config/lighttpd.ts'
import { filesUrl } from '../helpers/app.ts'
import { assertAppOwn404, proxiedApp } from '../helpers/offload-suite.ts'

const secret = 'SECRET OUTSIDE THE SERVED TREE\n'

const { test: proxied, context } = proxiedApp({
  server: 'lighttpd',
  rules: ({ protectedDir }) => [lighttpd({ sourceDir: protectedDir, destinationDir: protectedDir })],
  prepare: async ({ root, protectedDir, big }) => {
    await mkdir(join(root, 'outside'))
    await writeFile(join(root, 'outside', 'secret.txt'), secret)
    await mkdir(join(protectedDir, 'links'))
    await symlink(join(protectedDir, big.name), join(protectedDir, 'links', 'file-in.bin'))
    await symlink(join(protectedDir, 'slow'), join(protectedDir, 'links', 'dir-in'))
    await symlink(join(root, 'outside', 'secret.txt'), join(protectedDir, 'links', 'file-out.txt'))
  },
  // The generated configuration, plus the one line this file is about.
  configFor: (rules) => ({ port, prefix, appPort }) => renderLighttpd(rules, { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${appPort}`, prefix }) + 'server.follow-symlink = "disable"\n'
})

proxied('lighttpd follow-symlink "disable": a regular file is served; links inside the root, which the app offloads, are refused by lighttpd (403) without the app\'s headers', async (t) => {
  const { proxy, app, fixtures } = context()
  const direct = await fetch(proxy.url + filesUrl(fixtures.big.name))
  t.is(direct.status, 200)
  t.deepEqual(Buffer.from(await direct.arrayBuffer()), fixtures.big.bytes)

  for (const name of ['links/file-in.bin', 'links/dir-in/slow.bin']) {
    const url = filesUrl(name)
    const response = await fetch(proxy.url + url)
    const body = Buffer.from(await response.arrayBuffer())
    t.is(response.status, 403, name)
    t.false(body.includes(fixtures.big.bytes.subarray(0, 64)) || body.includes(fixtures.slow.bytes.subarray(0, 64)), `${name}: none of the file's bytes`)
    // The app checked the link (its target is inside the root) and offloaded the path as named.
    const sent = app.last(url)
    t.is(sent?.status, 200, name)
    t.is(sent?.headers['x-sendfile'], join(fixtures.protectedDir, name).split('/').map(encodeURIComponent).join('/'), name)
    t.truthy(sent?.headers.etag, name)
    // lighttpd's 403 carries none of the app's headers: no validators, no download name.
    t.is(response.headers.get('etag'), null, name)
    t.is(response.headers.get('last-modified'), null, name)
    t.is(response.headers.get('content-disposition'), null, name)
    t.is(response.headers.get('x-sendfile'), null, name)
  }
})

proxied('lighttpd follow-symlink "disable": a directory replaced by a symlink right after a request was served is refused on the next request', async (t) => {
  const { proxy, fixtures } = context()
  const dir = join(fixtures.protectedDir, 'swapped')
  await mkdir(dir)
  await writeFile(join(dir, 'a.txt'), 'first\n')
  const url = filesUrl('swapped/a.txt')
  const first = await fetch(proxy.url + url)
  t.is(first.status, 200)
  t.is(await first.text(), 'first\n')
  // Its contents move to a sibling, and the name becomes a link to it (inside the root: the app lets it through).
  await rename(dir, dir + '.old')
  await symlink(dir + '.old', dir)
  const second = await fetch(proxy.url + url)
  t.is(second.status, 403)
  t.false((await second.text()).includes('first'), 'none of the file behind the link')
})

proxied('lighttpd follow-symlink "disable": a link out of the root is still the app\'s own 404 (never offloaded); a missing file too (the app stats it for the validators)', async (t) => {
  // A link out of the root; a missing file, which the app's stat (lighttpd rules carry the file's
  // validators) answers 404 itself.
  for (const name of ['links/file-out.txt', 'no-such-file.bin']) await assertAppOwn404(t, context(), filesUrl(name), 'X-Sendfile')
})
