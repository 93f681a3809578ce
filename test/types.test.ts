/**
 * Type tests, checked by `npm run typecheck`: every `@ts-expect-error` line must be a compile error
 * (tsc fails on an unused directive), and the lines without one must compile. Each misuse is also
 * run, so that JavaScript callers get the same answer at runtime: a TypeError naming the option.
 */
import test from 'ava'
import type { Context } from 'koa'
import { Readable } from 'node:stream'
// The public entry point: what users of 'koa-downloads' get.
import { Download, PathFile, VirtualFile, download, downloads, nginx, offload, sendfile, serve } from '../source/index.ts'
import type { DownloadFile, DownloadOptions, FileStat } from '../source/index.ts'
import { fixtureRoot } from './helpers/koa.ts'

const file = new PathFile('hello.txt', { root: fixtureRoot })
const ctx = {} as Context

test('types: correct calls compile and build what they say', t => {
  const marker: Download = download(file, { attachment: false, filename: 'a.txt', contentType: 'text/plain', cacheControl: 'no-store' })
  t.true(marker instanceof Download)
  const options: DownloadOptions = { attachment: undefined }
  t.true(download(file, options) instanceof Download)
  const custom: DownloadFile = {
    name: 'custom.bin',
    stat: async (): Promise<FileStat> => ({ size: 1 }),
    open: async () => Readable.from([Buffer.from('x')])
  }
  t.true(download(custom) instanceof Download)
  for (const content of ['text', new Uint8Array(1), Buffer.from('x'), Readable.from([]), new ReadableStream<Uint8Array>(), (async function * () { yield 'x' })()]) {
    t.is(new VirtualFile(content, { name: 'v.txt', size: undefined, etag: '"e"', lastModified: new Date(1e12) }).name, 'v.txt')
  }
  t.is(typeof downloads({ bufferSize: 0, rules: [nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] }), 'function')
  t.is(typeof serve({ etag: false, lastModified: false, ranges: false, maxRanges: 4 }), 'function')
  // A shared, read-only list of rules (`as const`, a frozen array) is taken as it is.
  const shared = Object.freeze([nginx({ sourceDir: fixtureRoot, destinationUrl: '/protected/' })] as const)
  t.is(typeof downloads({ rules: shared }), 'function')
  t.is(typeof offload(shared), 'function')
})

test('types: download() misuse is a compile error and a runtime TypeError', t => {
  // @ts-expect-error attachment is a boolean
  t.throws(() => download(file, { attachment: 'yes' }), { instanceOf: TypeError, message: /attachment must be a boolean/ })
  // @ts-expect-error filename is a string
  t.throws(() => download(file, { filename: 42 }), { instanceOf: TypeError, message: /filename must be a string/ })
  // @ts-expect-error an unknown option name (a typo) on an object literal
  t.throws(() => download(file, { atachment: true }), { instanceOf: TypeError, message: /unknown option "atachment"/ })
  // @ts-expect-error the file must be a DownloadFile, not a path
  t.throws(() => download('hello.txt'), { instanceOf: TypeError, message: /file must be a DownloadFile/ })
  // @ts-expect-error a DownloadFile needs open()
  t.throws(() => download({ name: 'x', stat: async () => ({}) }), { instanceOf: TypeError, message: /file must be a DownloadFile/ })
})

test('types: PathFile misuse is a compile error and a runtime TypeError', t => {
  // @ts-expect-error the path is a string
  t.throws(() => new PathFile(1), { instanceOf: TypeError, message: /path must be a string/ })
  // @ts-expect-error root is a string
  t.throws(() => new PathFile('x', { root: true }), { instanceOf: TypeError, message: /root must be a non-empty string/ })
  // @ts-expect-error a misspelt root: it must not silently drop the confinement
  t.throws(() => new PathFile('../secret.txt', { rot: fixtureRoot }), { instanceOf: TypeError, message: /PathFile: unknown option "rot" \(allowed: root, name, followSymlinks, statCache\)/ })
})

test('types: VirtualFile misuse is a compile error and a runtime TypeError', t => {
  // @ts-expect-error options (with name) are required
  t.throws(() => new VirtualFile('x'), { instanceOf: TypeError, message: /options\.name must be a string/ })
  // @ts-expect-error name is required
  t.throws(() => new VirtualFile('x', {}), { instanceOf: TypeError, message: /options\.name must be a string/ })
  // @ts-expect-error size is a number
  t.throws(() => new VirtualFile('x', { name: 'a', size: '3' }), { instanceOf: TypeError, message: /size must be a non-negative integer/ })
  // @ts-expect-error content is a string, bytes or a stream
  t.throws(() => new VirtualFile(42, { name: 'a' }), { instanceOf: TypeError, message: /content must be/ })
})

test('types: downloads(), serve() and sendfile() misuse is a compile error and a runtime TypeError', async t => {
  // @ts-expect-error bufferSize is a number
  t.throws(() => downloads({ bufferSize: '1' }), { instanceOf: TypeError, message: /bufferSize must be a non-negative integer/ })
  // @ts-expect-error an unknown option name
  t.throws(() => downloads({ buffersize: 1 }), { instanceOf: TypeError, message: /unknown option "buffersize"/ })
  // @ts-expect-error maxRanges is a number
  t.throws(() => serve({ maxRanges: '3' }), { instanceOf: TypeError, message: /maxRanges must be a positive integer/ })
  // @ts-expect-error rules are offload rules
  t.throws(() => downloads({ rules: ['nginx'] }), { instanceOf: TypeError, message: /rules\[0\] must be an offload rule/ })
  // @ts-expect-error nginx() needs destinationUrl
  t.throws(() => nginx({ sourceDir: fixtureRoot }), { instanceOf: TypeError, message: /destinationUrl is required/ })
  // @ts-expect-error attachment is a boolean
  await t.throwsAsync(sendfile(ctx, 'hello.txt', { attachment: 1 }), { instanceOf: TypeError, message: /attachment must be a boolean/ })
  // @ts-expect-error an unknown option name
  await t.throwsAsync(sendfile(ctx, 'hello.txt', { roots: fixtureRoot }), { instanceOf: TypeError, message: /unknown option "roots"/ })
  // @ts-expect-error the path is a string
  await t.throwsAsync(sendfile(ctx, 7), { instanceOf: TypeError, message: /path must be a string/ })
})

/** Checked by tsc, never run: misuses that have no runtime counterpart. */
function compileOnly (): void {
  const custom: DownloadFile = {
    name: 'x',
    // @ts-expect-error stat() returns a Promise
    stat: () => ({ size: 1 }),
    open: async () => Readable.from([])
  }
  // @ts-expect-error name is read-only
  file.name = 'other.txt'
  // @ts-expect-error a FileStat size is a number
  const stat: FileStat = { size: '1' }
  // @ts-expect-error a Download's options are read-only
  download(custom).options.attachment = false
  void stat
}
void compileOnly
