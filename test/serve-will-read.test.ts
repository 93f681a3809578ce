// What serve() announces to stat() (StatOptions.willRead / range), request by request: the contract
// PathFile, HttpFile and StorageFile rely on to open or fetch ahead. A recording file wrapper.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import type { DownloadsOptions } from '../source/downloads.ts'
import type { ByteRange, DownloadFile, StatOptions } from '../source/types.ts'
import { downloadApp } from './helpers/koa.ts'
import { fetchBytes, listen } from './helpers/listen.ts'

const bytes = Buffer.from('0123456789')

/** An app whose file records the options of every stat() call. */
async function recording (t: ExecutionContext, options?: DownloadsOptions): Promise<{ url: string, seen: Array<StatOptions | undefined> }> {
  const seen: Array<StatOptions | undefined> = []
  const file = (): DownloadFile => ({
    name: 'ten.bin',
    stat: async (statOptions?: StatOptions) => {
      seen.push(statOptions)
      return { size: bytes.length, etag: '"ten"', lastModified: new Date(1_700_000_000_000) }
    },
    open: async () => { throw new Error('read() is used for these sizes') },
    read: async (range?: ByteRange) => bytes.subarray(range?.start ?? 0, (range?.end ?? bytes.length - 1) + 1)
  })
  const url = await listen(t, downloadApp((ctx) => { ctx.body = file() }, options))
  return { url, seen }
}

const cases: Array<[title: string, method: 'get' | 'head', headers: Record<string, string>, status: number, willRead: StatOptions['willRead'], range: string | undefined]> = [
  ['a plain GET → whole', 'get', {}, 200, 'whole', undefined],
  ['HEAD → nothing announced', 'head', {}, 200, undefined, undefined],
  ['If-None-Match → nothing (it may be a 304)', 'get', { 'If-None-Match': '"other"' }, 200, undefined, undefined],
  ['If-Modified-Since → nothing', 'get', { 'If-Modified-Since': 'Sat, 01 Jan 2000 00:00:00 GMT' }, 200, undefined, undefined],
  ['If-Match → nothing (it may be a 412)', 'get', { 'If-Match': '"ten"' }, 200, undefined, undefined],
  ['If-Unmodified-Since → nothing', 'get', { 'If-Unmodified-Since': 'Sat, 01 Jan 2000 00:00:00 GMT' }, 412, undefined, undefined],
  ['one range a-b → range, forwarded', 'get', { Range: 'bytes=2-4' }, 206, 'range', 'bytes=2-4'],
  ['one open range → range, forwarded', 'get', { Range: 'bytes=7-' }, 206, 'range', 'bytes=7-'],
  ['one suffix range → range, forwarded', 'get', { Range: 'bytes=-3' }, 206, 'range', 'bytes=-3'],
  ['an unsatisfiable range → range (416 reads nothing)', 'get', { Range: 'bytes=20-30' }, 416, 'range', 'bytes=20-30'],
  ['one range with If-Range → range, not forwarded (it may be a 200)', 'get', { Range: 'bytes=2-4', 'If-Range': '"ten"' }, 206, 'range', undefined],
  ['one range written unusually → range, not forwarded', 'get', { Range: 'bytes= 2-4' }, 206, 'range', undefined],
  ['another unit → range, not forwarded', 'get', { Range: 'items=2-4' }, 200, 'range', undefined],
  ['several ranges → nothing (multipart opens each part later)', 'get', { Range: 'bytes=0-1,4-5' }, 206, undefined, undefined]
]

for (const [title, method, headers, status, willRead, range] of cases) {
  test(`serve announces: ${title}`, async (t) => {
    const { url, seen } = await recording(t)
    const res = await fetchBytes(url, '/', method).set(headers)
    t.is(res.status, status)
    t.is(seen.length, 1)
    const options = seen[0]
    t.true(options?.signal instanceof AbortSignal, 'the abort signal is always passed')
    t.is(options?.willRead, willRead)
    t.is(options?.range, range)
  })
}

test('serve announces: with ranges disabled, a Range is no part → whole', async (t) => {
  const { url, seen } = await recording(t, { ranges: false })
  const res = await fetchBytes(url, '/').set('Range', 'bytes=2-4')
  t.is(res.status, 200)
  t.is((res.body as Buffer).toString(), '0123456789')
  t.is(seen[0]?.willRead, 'whole')
  t.is(seen[0]?.range, undefined)
})
