import { lighttpd } from '../../source/backends/lighttpd.ts'
import { filesUrl } from '../helpers/app.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

const { test, context } = offloadSuite({
  server: 'lighttpd',
  label: 'lighttpd',
  offloadHeader: 'X-Sendfile',
  rules: ({ protectedDir }) => [lighttpd({ sourceDir: protectedDir, destinationDir: protectedDir })]
})

test('lighttpd: the client gets the app\'s ETag and Last-Modified, which lighttpd answers conditionals with', async (t) => {
  const { proxy, app, fixtures } = context()
  const url = filesUrl(fixtures.big.name) + '?validators=1'
  const response = await fetch(proxy.url + url)
  await response.arrayBuffer()
  const sent = app.last(url)?.headers.etag
  t.regex(sent ?? '', /^"[0-9a-f]+-100000"$/)
  t.is(response.headers.get('etag') ?? undefined, sent)
  t.is(response.headers.get('last-modified') ?? undefined, app.last(url)?.headers['last-modified'])
})
