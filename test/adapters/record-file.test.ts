import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Readable } from 'node:stream'
import { DatabaseSync } from 'node:sqlite'
import test from 'ava'
import { Disk } from 'flydrive'
import { FSDriver } from 'flydrive/drivers/fs'
import type { DriverContract } from 'flydrive/types'
import { download } from '../../source/download.ts'
import { DownloadError } from '../../source/errors.ts'
import { recordFile, storage } from '../../adapters/flydrive/index.ts'
import { rawRequest } from '../helpers/file-contract.ts'
import { downloadApp } from '../helpers/koa.ts'
import { listen } from '../helpers/listen.ts'

let root = ''
let db: DatabaseSync

test.serial.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-records-'))
  await mkdir(join(root, 'uploads'))
  await writeFile(join(root, 'uploads/3f9a.bin'), 'quarterly numbers\n')
  db = new DatabaseSync(':memory:')
  db.exec(`CREATE TABLE documents (id INTEGER PRIMARY KEY, file_key TEXT, original_name TEXT, mime TEXT, size INTEGER, uploaded_at TEXT);
    INSERT INTO documents VALUES (1, 'uploads/3f9a.bin', 'Q1 résumé (final).txt', 'text/plain; charset=utf-8', 18, '2026-01-02 03:04:05');
    INSERT INTO documents VALUES (2, NULL, 'nothing.txt', NULL, NULL, NULL);
    INSERT INTO documents VALUES (3, '', 'empty.txt', NULL, NULL, NULL);
    INSERT INTO documents VALUES (4, '../secret.txt', 'secret.txt', NULL, NULL, NULL);
    INSERT INTO documents VALUES (5, 'uploads/3f9a.bin', 'rapport €.txt', 'application/pdf; name="rapport €.pdf"', 18, NULL);
    INSERT INTO documents VALUES (6, 'uploads/3f9a.bin', 'notes.csv', 'text/plain' || char(13, 10) || 'X-Evil: 1', 18, NULL);
    INSERT INTO documents VALUES (7, 'uploads/3f9a.bin', 'notes.csv', '   ', 18, NULL);`)
})
test.after.always(async () => {
  db?.close()
  await rm(root, { recursive: true, force: true })
})

interface DocumentRow { id: number, file_key: string | null, original_name: string, mime: string | null, size: number | null, uploaded_at: string | null }

async function documentsApp (t: Parameters<typeof listen>[0]): Promise<string> {
  const media = storage(new Disk(new FSDriver({ location: root, visibility: 'private' })))
  const select = db.prepare('SELECT * FROM documents WHERE id = ?')
  return await listen(t, downloadApp((ctx) => {
    const row = select.get(Number(ctx.path.slice(1))) as DocumentRow | undefined
    ctx.body = download(recordFile(row, { storage: media, keyField: 'file_key', nameField: 'original_name', typeField: 'mime' }))
  }))
}

test('records: a SQLite row\'s key field is downloaded under its recorded name and type', async (t) => {
  const base = await documentsApp(t)
  const res = await rawRequest(`${base}/1`)
  t.is(res.status, 200)
  t.is(res.body.toString(), 'quarterly numbers\n')
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(res.headers['content-disposition'], 'attachment; filename="Q1 resume (final).txt"; filename*=UTF-8\'\'Q1%20r%C3%A9sum%C3%A9%20%28final%29.txt')
})

test('records: a NULL or empty key field, a missing row and a traversal key are 404', async (t) => {
  const base = await documentsApp(t)
  for (const id of [2, 3, 4, 99]) {
    const res = await rawRequest(`${base}/${id}`)
    t.is(res.status, 404, String(id))
    t.is(res.headers['content-disposition'], undefined, String(id))
  }
})

test('records: size and mtime fields fill in what the storage does not report', async (t) => {
  // A minimal custom driver whose metadata lacks a modification time.
  const driver = {
    getMetaData: async () => ({ contentLength: 5, etag: '"e1"' }),
    getStream: async () => Readable.from([Buffer.from('hello')])
  } as unknown as DriverContract
  const row = db.prepare('SELECT * FROM documents WHERE id = 1').get() as unknown as DocumentRow
  const file = recordFile(row, { disk: driver, keyField: 'file_key', sizeField: 'size', mtimeField: 'uploaded_at' })
  const stat = await file.stat()
  t.is(stat.size, 5, 'the storage\'s size wins over the record\'s')
  t.deepEqual(stat.lastModified, new Date('2026-01-02T03:04:05Z'))
  t.is(stat.ranges, false, 'a driver without ranged reads announces none')
})

test('records: column shapes drivers return — an integer key, a size as a digit string (pg\'s int8) or a bigint, a Unix time in seconds or ms — are read as what they mean', async (t) => {
  const driver = {
    getMetaData: async (key: string) => {
      if (key !== '12345') throw Object.assign(new Error(`${key} not found`), { code: 'ENOENT' })
      return { etag: '"e1"' }
    },
    getStream: async () => Readable.from([Buffer.from('hello')])
  } as unknown as DriverContract
  const rows = [
    { key: 12345, size: '5', mtime: 1767323045 },
    { key: 12345n, size: 5n, mtime: 1767323045000 },
    { key: '12345', size: 5, mtime: 1767323045n }
  ]
  for (const row of rows) {
    const stat = await recordFile(row, { disk: driver, keyField: 'key', sizeField: 'size', mtimeField: 'mtime' }).stat()
    t.is(stat.size, 5, JSON.stringify(row, (_, v: unknown) => typeof v === 'bigint' ? `${v}n` : v))
    t.deepEqual(stat.lastModified, new Date('2026-01-02T03:04:05Z'))
  }
  // Not a size: a sign, a fraction, words.
  for (const size of ['-5', '5.5', 'five', '']) {
    const stat = await recordFile({ key: 12345, size }, { disk: driver, keyField: 'key', sizeField: 'size' }).stat()
    t.is(stat.size, undefined, size)
  }
  // An integer key that is not an object is the same 404 as any other.
  await t.throwsAsync(recordFile({ key: 7 }, { disk: driver, keyField: 'key' }).stat(), { message: /not found|7/ })
})

test('records: a type field no header can carry (non-ASCII, CR/LF, blank) is ignored: the name gives the type, the row is still served', async (t) => {
  const base = await documentsApp(t)
  for (const [id, type] of [[5, 'text/plain; charset=utf-8'], [6, 'text/csv; charset=utf-8'], [7, 'text/csv; charset=utf-8']] as const) {
    const res = await rawRequest(`${base}/${id}`)
    t.is(res.status, 200, String(id))
    t.is(res.headers['content-type'], type, String(id))
    t.is(res.headers['x-evil'], undefined, String(id))
    t.is(res.headers['content-length'], '18', String(id))
    t.is(res.body.toString(), 'quarterly numbers\n', String(id))
  }
})

/**
 * Serves SQLite rows through recordFile() from a child process running in America/New_York (the
 * test's own process is usually in UTC, where a date read as local time is right by accident).
 * The driver reports no modification time, so the row's decides Last-Modified.
 */
const newYorkApp = `
  import { DatabaseSync } from 'node:sqlite'
  import { Readable } from 'node:stream'
  import { recordFile } from './adapters/flydrive/index.ts'
  import { download } from './source/download.ts'
  import { downloadApp } from './test/helpers/koa.ts'
  const db = new DatabaseSync(':memory:')
  db.exec(\`CREATE TABLE documents (id INTEGER PRIMARY KEY, file_key TEXT, uploaded_at TEXT);
    INSERT INTO documents VALUES (1, 'report.txt', '2024-01-02 03:04:05');
    INSERT INTO documents VALUES (2, 'report.txt', strftime('%Y-%m-%d %H:%M:%f', '2024-01-02 03:04:05.678'));
    INSERT INTO documents VALUES (3, 'report.txt', '2024-01-02 03:04:05.678000');
    INSERT INTO documents VALUES (4, 'report.txt', '2024-01-02T03:04:05');
    INSERT INTO documents VALUES (5, 'report.txt', '2024-01-02 03:04');\`)
  const driver = { getMetaData: async () => ({ contentLength: 5 }), getStream: async () => Readable.from([Buffer.from('hello')]) }
  const select = db.prepare('SELECT * FROM documents WHERE id = ?')
  const server = downloadApp((ctx) => {
    ctx.body = download(recordFile(select.get(Number(ctx.path.slice(1))), { disk: driver, keyField: 'file_key', mtimeField: 'uploaded_at' }))
  }).listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ port: server.address().port, offset: new Date(2024, 0, 2).getTimezoneOffset(), stored: select.get(2).uploaded_at }))
  })
`

test('records: SQLite timestamps with and without fractional seconds, seconds or the space are UTC, whatever the server\'s time zone', async (t) => {
  const child = spawn(process.execPath, ['--input-type=module', '--eval', newYorkApp], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    env: { ...process.env, TZ: 'America/New_York' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { child.kill() })
  const [line] = await once(child.stdout, 'data') as [Buffer]
  const { port, offset, stored } = JSON.parse(line.toString()) as { port: number, offset: number, stored: string }
  t.is(offset, 300, 'the app runs at UTC-5')
  t.is(stored, '2024-01-02 03:04:05.678', 'strftime(\'%f\') stores milliseconds')
  for (const id of [1, 2, 3, 4, 5]) {
    const res = await rawRequest(`http://127.0.0.1:${port}/${id}`)
    t.is(res.status, 200, String(id))
    // SQLite reads all five as UTC (`datetime('2024-01-02 03:04')` is 03:04:00 UTC); so does recordFile().
    t.is(res.headers['last-modified'], id === 5 ? 'Tue, 02 Jan 2024 03:04:00 GMT' : 'Tue, 02 Jan 2024 03:04:05 GMT', String(id))
    t.is(res.body.toString(), 'hello', String(id))
  }
})

test('records: misuse is a compile error and a TypeError at the call', async (t) => {
  // @ts-expect-error neither storage nor disk
  t.throws(() => recordFile({ k: 'a' }, { keyField: 'k' }), { instanceOf: TypeError, message: /exactly one of storage or disk/ })
  const disk = new Disk(new FSDriver({ location: tmpdir(), visibility: 'private' }))
  // @ts-expect-error both storage and disk
  t.throws(() => recordFile({ k: 'a' }, { keyField: 'k', disk, storage: storage(disk) }), { instanceOf: TypeError, message: /exactly one of storage or disk/ })
  // @ts-expect-error keyField names a field of the record (at runtime: no key, a 404)
  const missing = recordFile({ k: 'a' }, { keyField: 'key', disk })
  await t.throwsAsync(missing.stat(), { instanceOf: DownloadError, message: /^StorageFile: / })
  t.is(((await missing.stat().catch((error: unknown) => error)) as DownloadError).code, 'E_NOT_FOUND')
  t.throws(() => recordFile({ k: 'a' }, { keyField: '' as 'k', disk: {} as never }), { instanceOf: TypeError })
})
