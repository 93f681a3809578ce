import test from 'ava'
import { lookupContentType } from '../source/content-type.ts'

test('content-type: "; charset=utf-8" for text and JSON/JavaScript types, never for XML ones (their own declaration says the encoding)', (t) => {
  const cases: Array<[string, string]> = [
    ['a.txt', 'text/plain; charset=utf-8'],
    ['a.html', 'text/html; charset=utf-8'],
    ['a.csv', 'text/csv; charset=utf-8'],
    ['a.json', 'application/json; charset=utf-8'],
    ['a.js', 'text/javascript; charset=utf-8'],
    ['a.xml', 'application/xml'],
    ['a.mml', 'text/mathml'],
    ['a.svg', 'image/svg+xml'],
    ['a.pdf', 'application/pdf'],
    ['a.unknown-extension', 'application/octet-stream'],
    // gzip files, whatever mime-types says of the XML inside: no Content-Encoding is taken from a name
    ['a.tar.gz', 'application/gzip'],
    ['logo.svgz', 'application/gzip'],
    ['LOGO.SVGZ', 'application/gzip'],
    ['scene.x3dz', 'application/gzip']
  ]
  for (const [name, type] of cases) t.is(lookupContentType(name), type, name)
})
