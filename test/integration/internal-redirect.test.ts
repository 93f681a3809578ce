import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { filesUrl } from '../helpers/app.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'
import { makeWorldReadable } from '../helpers/proxies.ts'

// Plain HTTP proxies pass a 200 + Location through to the client (reference/proxies.md §11); Caddy
// honours it with a handle_response matcher on status 200 + Location, which `koa-downloads config
// caddy` generates for internalRedirect() rules. Caddy uses the value raw, while the CGI convention
// (RFC 3875 §6.3.2) percent-encodes it: the generated block answers 404 to any value with a "%",
// so only names that need no encoding get through, and an encoded one never names another file.
const { test, context } = offloadSuite({
  server: 'caddy',
  label: 'internalRedirect via caddy',
  offloadHeader: 'Location',
  rules: ({ protectedDir }) => [internalRedirect({ sourceDir: protectedDir, destinationUrl: '/protected/' })],
  encodedNamesUnsupported: 'Caddy does not percent-decode the Location value; use caddy() for such names',
  weakDateIfRange: 'Go compares the date alone; an internalRedirect() rule does not know that Caddy serves it, caddy() streams such a request'
})

test('internalRedirect via caddy: "a b.txt" is a 404, never the sibling file literally named "a%20b.txt"', async (t) => {
  const { proxy, app, fixtures } = context()
  await writeFile(join(fixtures.protectedDir, 'a b.txt'), 'the authorised file\n')
  await writeFile(join(fixtures.protectedDir, 'a%20b.txt'), 'DECOY sibling\n')
  makeWorldReadable(fixtures.root)
  const url = filesUrl('a b.txt')
  const response = await fetch(proxy.url + url)
  const body = await response.text()
  t.is(response.status, 404)
  t.false(body.includes('DECOY'))
  t.is(app.last(url)?.headers.location, '/protected/a%20b.txt', 'the app sent the encoded Location')
  // a name that needs no encoding is still served
  await writeFile(join(fixtures.protectedDir, 'plain-name.txt'), 'plain\n')
  makeWorldReadable(fixtures.root)
  const plain = await fetch(proxy.url + filesUrl('plain-name.txt'))
  t.is(plain.status, 200)
  t.is(await plain.text(), 'plain\n')
})
