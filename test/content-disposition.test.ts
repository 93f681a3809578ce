import test from 'ava'
import fc from 'fast-check'
import { validateHeaderValue } from 'node:http'
import { contentDisposition, sanitizeFilename } from '../source/content-disposition.ts'

// reference/http-semantics.md §8, "Expected shapes", plus the cases the issue lists.
const shapes: Array<[title: string, name: string | undefined, header: string]> = [
  ['plain ASCII', 'report.pdf', 'attachment; filename="report.pdf"'],
  ['spaces', 'a b.txt', 'attachment; filename="a b.txt"'],
  ['commas and semicolons', 'a,b;c.txt', 'attachment; filename="a,b;c.txt"'],
  ['apostrophe and parentheses', "it's (1).txt", 'attachment; filename="it\'s (1).txt"'],
  // not escaped (`\\"`): curl -OJ ends the name at the quote and saved it under the URL's last segment
  ['double quotes: `_` in the fallback, the name in filename*', 'the "plans".pdf', "attachment; filename=\"the _plans_.pdf\"; filename*=UTF-8''the%20%22plans%22.pdf"],
  ['Latin-1', 'résumé.pdf', "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"],
  ['Latin-1 in decomposed (NFD) form', 're\u0301sume\u0301.pdf', "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"],
  ['ligature', 'ﬁ.txt', "attachment; filename=\"fi.txt\"; filename*=UTF-8''%EF%AC%81.txt"],
  ['CJK', '日本語.pdf', "attachment; filename=\"___.pdf\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.pdf"],
  ['Hangul: one _ per syllable, not per jamo', '한.txt', "attachment; filename=\"_.txt\"; filename*=UTF-8''%ED%95%9C.txt"],
  ['emoji: one _ per code point', 'emoji😀.txt', "attachment; filename=\"emoji_.txt\"; filename*=UTF-8''emoji%F0%9F%98%80.txt"],
  ['percent', '100%.txt', "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"],
  ['literal %20', 'percent%20.txt', "attachment; filename=\"percent_20.txt\"; filename*=UTF-8''percent%2520.txt"],
  ['apostrophe and space are encoded in filename*', "it's é.txt", "attachment; filename=\"it's e.txt\"; filename*=UTF-8''it%27s%20%C3%A9.txt"],
  ['encodeURIComponent leftovers ( ) * are encoded', 'é(*).txt', "attachment; filename=\"e(*).txt\"; filename*=UTF-8''%C3%A9%28%2A%29.txt"],
  ['every attr-char is kept', 'é!#$&+-.^_`|~', "attachment; filename=\"e!#$&+-.^_`|~\"; filename*=UTF-8''%C3%A9!#$&+-.^_`|~"],
  ['a double quote next to a non-ASCII character: `_` in the fallback, %22 in filename*', 'é"x.txt', "attachment; filename=\"e_x.txt\"; filename*=UTF-8''%C3%A9%22x.txt"],
  ['a Unix path keeps its basename', '../../etc/passwd', 'attachment; filename="passwd"'],
  ['a Windows path keeps its basename', 'C:\\x\\passwd', 'attachment; filename="passwd"'],
  ['a slash', 'a/b.txt', 'attachment; filename="b.txt"'],
  ['CR LF cannot inject a header', 'a\r\nSet-Cookie: x=1.txt', 'attachment; filename="aSet-Cookie: x=1.txt"'],
  ['NUL, tab, DEL and C1 controls are removed', 'a\u0000\t\u007f\u0085\u009fb.txt', 'attachment; filename="ab.txt"'],
  ['bidi controls are removed', 'invoice\u202Efdp.exe', 'attachment; filename="invoicefdp.exe"'],
  ['a name of lone combining marks: the fallback is _, never empty', '\u1dc0', "attachment; filename=\"_\"; filename*=UTF-8''%E1%B7%80"],
  ['dots and a lone combining mark: the fallback is no dot segment', '..\u1dc0', "attachment; filename=\"__\"; filename*=UTF-8''..%E1%B7%80"],
  ['every bidi control is removed', '\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069x.txt', 'attachment; filename="x.txt"'],
  ['a compatibility decomposition to a slash does not make a path', '℀.txt', "attachment; filename=\"_.txt\"; filename*=UTF-8''%E2%84%80.txt"],
  ['a fullwidth percent is not a percent in the fallback', 'a％.txt', "attachment; filename=\"a_.txt\"; filename*=UTF-8''a%EF%BC%85.txt"],
  ['a lone surrogate becomes U+FFFD', 'a\ud800.txt', "attachment; filename=\"a_.txt\"; filename*=UTF-8''a%EF%BF%BD.txt"],
  ['empty', '', 'attachment'],
  ['undefined', undefined, 'attachment'],
  ['a lone slash', '/', 'attachment'],
  ['dot', '.', 'attachment'],
  ['dot dot', '..', 'attachment'],
  ['a path ending in ..', 'a/..', 'attachment'],
  ['only controls', '\r\n\u0000\u202e', 'attachment'],
  ['dot dot hidden by a control', '.\u0000.', 'attachment']
]

for (const [title, name, header] of shapes) {
  test(`content-disposition: ${title} → ${header}`, t => {
    t.is(contentDisposition(name), header)
  })
}

test('content-disposition: inline carries the filename', t => {
  t.is(contentDisposition('photo.jpg', true), 'inline; filename="photo.jpg"')
  t.is(contentDisposition('résumé.pdf', true), "inline; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
})

test('content-disposition: inline without a usable name is just inline', t => {
  t.is(contentDisposition(undefined, true), 'inline')
  t.is(contentDisposition('..', true), 'inline')
})

test('content-disposition: attachment is the default, inline=false is attachment', t => {
  t.is(contentDisposition('a.txt', false), 'attachment; filename="a.txt"')
})

test('content-disposition: the percent-decoded last URL segment (query dropped) gives the name', t => {
  const url = new URL('https://cdn.example/dl/r%C3%A9sum%C3%A9.pdf?sig=x#frag')
  const name = decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf('/') + 1))
  t.is(contentDisposition(name), "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
})

test('sanitizeFilename: basename, controls removed, NFC', t => {
  t.is(sanitizeFilename('dir/sub\\re\u0301sume\u0301.pdf'), 'résumé.pdf')
  t.is(sanitizeFilename('a\r\nb'), 'ab')
  t.is(sanitizeFilename('x/'), '')
  t.is(sanitizeFilename('...'), '...')
  t.is(sanitizeFilename('.hidden'), '.hidden')
  t.is(sanitizeFilename('日本語.pdf'), '日本語.pdf')
})

test('sanitizeFilename: a name over 240 UTF-8 bytes (room for a browser\'s .crdownload and " (1)") keeps its extension and whole graphemes of its stem', t => {
  const bytes = (name: string): number => Buffer.byteLength(name)
  t.is(sanitizeFilename('a'.repeat(240)), 'a'.repeat(240))
  t.is(sanitizeFilename('a'.repeat(241)), 'a'.repeat(240))
  t.is(sanitizeFilename('a'.repeat(300) + '.txt'), 'a'.repeat(236) + '.txt')
  t.is(sanitizeFilename('a'.repeat(300)), 'a'.repeat(240))
  // 3 bytes each: 78 of them fit beside '.txt' (234 + 4 bytes)
  t.is(sanitizeFilename('日'.repeat(1700) + '.txt'), '日'.repeat(78) + '.txt')
  t.is(sanitizeFilename('日'.repeat(80)), '日'.repeat(80))
  t.is(sanitizeFilename('日'.repeat(85)), '日'.repeat(80))
  // an emoji family (one grapheme of 25 bytes) is kept whole or left out, never split
  const family = '👩‍👩‍👧‍👦'
  const cut = sanitizeFilename(family.repeat(20) + '.pdf')
  t.is(cut, family.repeat(9) + '.pdf')
  // a dotted name with no short extension is cut at the end; a long "extension" is not kept
  t.is(sanitizeFilename('v1.2.' + 'x'.repeat(300)), ('v1.2.' + 'x'.repeat(300)).slice(0, 240))
  // one grapheme longer than the budget (a letter with 300 combining marks): its code points
  const zalgo = sanitizeFilename('e' + '\u0301'.repeat(300) + '.txt')
  t.true(zalgo.startsWith('é') && zalgo.endsWith('.txt') && bytes(zalgo) <= 240 && bytes(zalgo) > 225, zalgo)
  t.true(bytes(sanitizeFilename('é'.repeat(500) + '.tar.gz')) <= 240)
  t.true(sanitizeFilename('é'.repeat(500) + '.tar.gz').endsWith('.gz'))
})

test('sanitizeFilename: a long name keeps an extension of up to 16 characters after the dot (.markdown, .torrent, .sqlite3), not one of 17', t => {
  const sixteen = '.' + 'abcdefghijklmnop'
  const seventeen = '.' + 'abcdefghijklmnopq'
  for (const ext of ['.markdown', '.torrent', '.sqlite3', '.numbers', sixteen]) {
    t.is(sanitizeFilename('r'.repeat(300) + ext), 'r'.repeat(240 - ext.length) + ext, ext)
    // whole graphemes of a stem of 3-byte characters, beside the extension's bytes
    t.is(sanitizeFilename('日'.repeat(100) + ext), '日'.repeat(Math.floor((240 - ext.length) / 3)) + ext, ext)
  }
  // 17 characters after the dot is no extension: the name is cut at its end, as one without a dot.
  t.is(sanitizeFilename('r'.repeat(300) + seventeen), 'r'.repeat(240))
  t.is(contentDisposition('r'.repeat(300) + '.markdown'), `attachment; filename="${'r'.repeat(231)}.markdown"`)
})

test('content-disposition: a 17,000-character name gives a header Node\'s client reads (one of about 1 KiB)', t => {
  const header = contentDisposition('日'.repeat(1700) + '.txt')
  t.is(header, `attachment; filename="${'_'.repeat(78)}.txt"; filename*=UTF-8''${'%E6%97%A5'.repeat(78)}.txt`)
  t.is(contentDisposition('a'.repeat(17000) + '.txt'), `attachment; filename="${'a'.repeat(236)}.txt"`)
})

const printableAscii = /^[\x20-\x7e]*$/

test('content-disposition: output is printable ASCII for arbitrary strings, and Node accepts it as a header', t => {
  const anyString = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.string({ unit: fc.constantFrom('/', '\\', '"', '%', '\r', '\n', '\u0000', '.', 'é', '\u0301', '\u202e', '😀', 'a', ' ', '\ud800'), maxLength: 20 })
  )
  fc.assert(fc.property(anyString, fc.boolean(), (name, inline) => {
    const header = contentDisposition(name, inline)
    if (!printableAscii.test(header)) return false
    validateHeaderValue('Content-Disposition', header) // throws ERR_INVALID_CHAR on a bad byte
    // The fallback never contains a path separator or an unescaped quote.
    const fallback = /^(?:attachment|inline)(?:; filename="((?:[^"\\]|\\["\\])*)"(?:; filename\*=UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]+)?)?$/.exec(header)
    if (fallback === null) return false
    if (fallback[1] !== undefined && /[/%]/.test(fallback[1].replace(/\\\\/g, ''))) return false
    return true
  }), { numRuns: 5000 })
  t.pass()
})

test('content-disposition: filename* decodes back to the sanitised name', t => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), name => {
    const header = contentDisposition(name)
    const star = /filename\*=UTF-8''(.*)$/.exec(header)
    const sanitized = sanitizeFilename(name)
    if (star?.[1] !== undefined) return decodeURIComponent(star[1]) === sanitized
    // No filename*: the quoted fallback is the name itself.
    return sanitized === '' ? header === 'attachment' : header === `attachment; filename="${sanitized.replace(/["\\]/g, '\\$&')}"`
  }), { numRuns: 3000 })
  t.pass()
})
