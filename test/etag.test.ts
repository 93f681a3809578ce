import test from 'ava'
import { createHash } from 'node:crypto'
import { contentEtag, isEntityTagList, parseEntityTag, parseEntityTagList, statEtag, strongMatch, weakMatch } from '../source/etag.ts'
import type { EntityTag } from '../source/etag.ts'

const strong = (opaque: string): EntityTag => ({ weak: false, opaque: `"${opaque}"` })
const weak = (opaque: string): EntityTag => ({ weak: true, opaque: `"${opaque}"` })

test('etag: parseEntityTag reads strong and weak tags, quotes kept in opaque', t => {
  t.deepEqual(parseEntityTag('"abc"'), strong('abc'))
  t.deepEqual(parseEntityTag('W/"abc"'), weak('abc'))
  t.deepEqual(parseEntityTag('""'), strong(''))
  t.deepEqual(parseEntityTag('"a,b"'), strong('a,b'), 'a comma is an etagc')
  t.deepEqual(parseEntityTag('"caf\u00e9"'), strong('caf\u00e9'), 'obs-text (Latin-1 decoded) is an etagc')
})

const malformedTags: Array<[string, string]> = [
  ['unquoted', 'abc'],
  ['lower-case w/', 'w/"abc"'],
  ['W without slash', 'W"abc"'],
  ['unterminated', '"abc'],
  ['a space inside', '"a b"'],
  ['a quote inside', '"a"b"'],
  ['trailing text', '"abc"x'],
  ['surrounding whitespace', ' "abc" '],
  ['a character above U+00FF', '"\u0100"'],
  ['a control character', '"a\u0001"'],
  ['empty', ''],
  ['star', '*']
]
for (const [title, value] of malformedTags) {
  test(`etag: parseEntityTag rejects a malformed tag (${title})`, t => {
    t.is(parseEntityTag(value), undefined)
  })
}

// [title, header, what parseEntityTagList reads, whether isEntityTagList calls it clean]
const lists: Array<[title: string, header: string, expected: '*' | EntityTag[] | undefined, clean: boolean]> = [
  ['a single tag', '"a"', [strong('a')], true],
  ['a list with OWS', '"a" ,\tW/"b",  "c"', [strong('a'), weak('b'), strong('c')], true],
  ['empty list elements', '"a",, ,"b",', [strong('a'), strong('b')], true],
  ['leading and trailing commas', ', "a" ,', [strong('a')], true],
  ['a comma inside a tag is not a separator', '"a,b", "c"', [strong('a,b'), strong('c')], true],
  ['malformed members skipped', 'xyz, "a", W/b, "c" d, "e"', [strong('a'), strong('e')], false],
  ['an unterminated member skipped', '"a, "b"', [strong('b')], false],
  ['star', '*', '*', true],
  ['star with OWS', ' * ', '*', true],
  ['star inside a list is not star', '*, "a"', [strong('a')], false],
  ['star followed by obs-text is not star', '*\x80', undefined, false],
  ['a tag followed by a character', '"a"x', undefined, false],
  ['a tag followed by non-OWS white space', '"a"\xa0', undefined, false],
  ['only malformed members → ignored', 'abc, def', undefined, false],
  ['a list of stars → ignored', '*, *', undefined, false],
  ['empty → ignored', '', undefined, true],
  ['only commas → ignored', ' , ,, ', undefined, true]
]
for (const [title, header, expected, clean] of lists) {
  test(`etag: parseEntityTagList and isEntityTagList, ${title}`, t => {
    t.deepEqual(parseEntityTagList(header), expected)
    t.is(isEntityTagList(header), clean)
  })
}

test('etag: strong comparison needs two strong tags with identical opaque-tags', t => {
  t.true(strongMatch(strong('1'), strong('1')))
  t.false(strongMatch(weak('1'), strong('1')))
  t.false(strongMatch(strong('1'), weak('1')))
  t.false(strongMatch(weak('1'), weak('1')))
  t.false(strongMatch(strong('1'), strong('2')))
  t.false(strongMatch(strong('abc'), strong('ab')), 'no substring match')
})

test('etag: weak comparison ignores W/ on either side', t => {
  t.true(weakMatch(strong('1'), strong('1')))
  t.true(weakMatch(weak('1'), strong('1')))
  t.true(weakMatch(strong('1'), weak('1')))
  t.true(weakMatch(weak('1'), weak('1')))
  t.false(weakMatch(weak('1'), weak('2')))
  t.false(weakMatch(strong('abc'), strong('ab')), 'no substring match')
})

test('etag: statEtag is nginx-like, mtime whole seconds and size in hex, strong', t => {
  t.is(statEtag(1_700_000_000_999, 1234), '"6553f100-4d2"')
  t.is(statEtag(1_700_000_000_000, 0), '"6553f100-0"')
  t.deepEqual(parseEntityTag(statEtag(1_700_000_000_500, 1)), strong('6553f100-1'))
})

test('etag: statEtag given now is weak while the second of the mtime lasts (or the mtime is ahead), strong after', t => {
  t.is(statEtag(1_700_000_000_999, 1234, 1_700_000_000_999), 'W/"6553f100-4d2"')
  t.is(statEtag(1_700_000_000_000, 1234, 1_700_000_000_999), 'W/"6553f100-4d2"')
  t.is(statEtag(1_700_000_005_000, 1234, 1_700_000_000_000), 'W/"6553f105-4d2"')
  t.is(statEtag(1_700_000_000_999, 1234, 1_700_000_001_000), '"6553f100-4d2"')
  t.is(statEtag(1_700_000_000_000, 1234, 1_800_000_000_000), '"6553f100-4d2"')
})

test('etag: contentEtag is length hex and unpadded base64 SHA-1, strong', t => {
  const bytes = new TextEncoder().encode('hello world')
  const sha1 = createHash('sha1').update(bytes).digest('base64').replace(/=+$/, '')
  t.is(contentEtag(bytes), `"b-${sha1}"`)
  t.is(contentEtag(new Uint8Array(0)), '"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk"')
  t.not(contentEtag(new TextEncoder().encode('hello worle')), contentEtag(bytes))
  const parsed = parseEntityTag(contentEtag(bytes))
  t.is(parsed?.weak, false)
})
