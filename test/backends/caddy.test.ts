import test from 'ava'
import { caddy } from '../../source/backends/caddy.ts'
import type { DownloadFile } from '../../source/types.ts'

const file = (where: { path?: string, url?: string }): DownloadFile => ({
  name: 'x', ...where, stat: async () => ({}), open: async () => { throw new Error('never opened') }
})
const get = { method: 'GET', headers: {} }

test('caddy(): exposes backend, sourceDir, destinationUrl, header (default X-Accel-Redirect) and forwardQuery', (t) => {
  const rule = caddy({ sourceDir: '/srv/files', destinationUrl: '/protected' })
  t.is(rule.backend, 'caddy')
  t.is(rule.sourceDir, '/srv/files')
  t.is(rule.destinationUrl, '/protected/')
  t.is(rule.header, 'X-Accel-Redirect')
  t.false(rule.forwardQuery)
  t.is(caddy({ sourceDir: '/s', destinationUrl: '/p/', header: 'X-Serve' }).header, 'X-Serve')
})

test('caddy(): bad destinationUrl, header or forwardQuery → TypeError naming the option', (t) => {
  t.throws(() => caddy({ sourceDir: '/s' } as never), { instanceOf: TypeError, message: /^caddy\(\): destinationUrl is required/ })
  t.throws(() => caddy({ sourceDir: '/s', destinationUrl: 'https://h/p/' }), { instanceOf: TypeError, message: /^caddy\(\): destinationUrl must be/ })
  t.throws(() => caddy({ sourceDir: '/s', destinationUrl: '/dl%20files/' }), { instanceOf: TypeError, message: /^caddy\(\): destinationUrl must not contain "%"/ })
  for (const header of ['Content-Type', 'content-disposition', 'Location', 'Set-Cookie', 'Trailer', 'TE', 'Keep-Alive', 'Upgrade', 'Content-Security-Policy', 'X Bad', '', 'X-\n', 'X_File', 'X`File', 'X#File']) {
    t.throws(() => caddy({ sourceDir: '/s', destinationUrl: '/p/', header }), { instanceOf: TypeError, message: /^caddy\(\): header must be/ }, header)
  }
  t.throws(() => caddy({ sourceDir: '/s', destinationUrl: '/p/', forwardQuery: 1 as never }), { instanceOf: TypeError, message: /^caddy\(\): forwardQuery must be a boolean/ })
})

test('caddy: the raw path as UTF-8 bytes, a literal % kept, no validators', (t) => {
  const rule = caddy({ sourceDir: '/srv/files', destinationUrl: '/protected/' })
  const target = rule.match(file({ path: '/srv/files/a%20b ü.txt' }), get)
  t.is(target?.header, 'X-Accel-Redirect')
  t.is(Buffer.from(target?.value ?? '', 'latin1').toString('utf8'), '/protected/a%20b ü.txt')
  t.false(target?.validators)
})

test('caddy: a name with "?" is not offloaded (Caddy would cut it at the query)', (t) => {
  const rule = caddy({ sourceDir: '/srv/files', destinationUrl: '/protected/' })
  t.is(rule.match(file({ path: '/srv/files/q?x.txt' }), get), undefined)
  t.is(rule.match(file({ path: '/srv/files/why?/x.txt' }), get), undefined)
})

test('caddy: the URL query is forwarded only when asked', (t) => {
  const url = 'https://o.example/m/k.bin?sig=1'
  t.is(caddy({ sourceUrl: 'https://o.example/m/', destinationUrl: '/_origin/' }).match(file({ url }), get)?.value, '/_origin/k.bin')
  t.is(caddy({ sourceUrl: 'https://o.example/m/', destinationUrl: '/_origin/', forwardQuery: true }).match(file({ url }), get)?.value, '/_origin/k.bin?sig=1')
  // Caddy's rewrite would expand {…} in the query as placeholders
  t.is(caddy({ sourceUrl: 'https://o.example/m/', destinationUrl: '/_origin/', forwardQuery: true }).match(file({ url: 'https://o.example/m/k.bin?a={env.HOME}&b=}{' }), get)?.value,
    '/_origin/k.bin?a=%7Benv.HOME%7D&b=%7D%7B')
})

test('caddy sourceUrl: a name whose URL escapes "+" or ";" is streamed (Caddy sends them unescaped: another URL at some origins); other sub-delimiters stay offloaded', (t) => {
  const rule = caddy({ sourceUrl: 'https://cdn.example/b/', destinationUrl: '/_o/' })
  const value = (url: string): string | undefined => rule.match(file({ url }), get)?.value
  // Go escapes the path its own way: "+" and ";" unescaped (measured with Caddy 2.6.2)
  t.is(value('https://cdn.example/b/p%2Bq.txt'), undefined)
  t.is(value('https://cdn.example/b/a%3Bb.txt'), undefined)
  t.is(value('https://cdn.example/b/p+q;a.txt'), '/_o/p+q;a.txt')
  // Go escapes "'()" where the URL may not, and the reverse: every origin decodes these
  t.is(value('https://cdn.example/b/it\'s.txt'), '/_o/it\'s.txt')
  t.is(value('https://cdn.example/b/a%3Ab%40c.txt'), '/_o/a:b@c.txt')
  t.is(value('https://cdn.example/b/it%27s%20%281%29%21.txt'), '/_o/it\'s (1)!.txt')
  t.is(value('https://cdn.example/b/(1).txt'), '/_o/(1).txt')
  // escapes of unreserved characters, hex case and characters no URI holds literally do not count
  t.is(value('https://cdn.example/b/%41%7e%c3%bc%7C|.txt'), '/_o/A~\xC3\xBC||.txt')
  t.is(caddy({ sourceDir: '/srv', sourceUrl: 'https://cdn.example/b/', destinationUrl: '/_o/' }).match(file({ path: '/srv/p+q.txt' }), get)?.value, '/_o/p+q.txt', 'a path match is not concerned')
})
