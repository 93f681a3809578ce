import { isHeaderSafe } from '../../source/download.ts'
import { byteCount } from './backend.ts'
import { StorageFile } from './storage-file.ts'
import type { DiskLike, StorageFileOptions } from './storage-file.ts'
import type { Storage } from './storage.ts'

/**
 * Where the keys belong, and which fields of the record say what: the storage (from
 * `storage(disk)`) or the disk, one of the two.
 */
export type RecordFileOptions<R> = RecordFields<R> & (
  | { storage: Storage, disk?: undefined }
  | { disk: DiskLike, storage?: undefined }
)

/** The fields of recordFile()'s options that name the record's columns. */
export interface RecordFields<R> {
  /** The field holding the storage key (django's FileField; an integer key is its decimal string). Empty, null or missing → 404. */
  keyField: keyof R & string
  /** The field holding the download name. @default the last key segment */
  nameField?: (keyof R & string) | undefined
  /** The field holding the Content-Type (ignored when no header can carry it). @default the storage's, else from the name */
  typeField?: (keyof R & string) | undefined
  /** The field holding the size in bytes (a number, a bigint or a string of digits, as pg returns int8), used when the storage reports none. */
  sizeField?: (keyof R & string) | undefined
  /**
   * The field holding the modification time (Date, ms since the epoch — or seconds, for a number
   * below 10^11, which as ms would be before 1973 —, or an ISO/SQL date string; one with no offset,
   * `YYYY-MM-DD HH:MM[:SS[.fff…]]` with a space or a `T`, is UTC, as SQLite reads it), used when the
   * storage reports none.
   */
  mtimeField?: (keyof R & string) | undefined
}

/**
 * The file a database record refers to, django's FileField case:
 * `ctx.body = download(recordFile(row, { storage: media, keyField: 'file_key', nameField: 'original_name' }))`.
 * A missing record or an empty key field gives a file that is a 404 (the route stays one line).
 */
export function recordFile<R extends object> (record: R | null | undefined, options: RecordFileOptions<R>): StorageFile {
  if (options === null || typeof options !== 'object') throw new TypeError('recordFile(): options must be an object')
  const { storage, disk, keyField, nameField, typeField, sizeField, mtimeField } = options
  if ((storage === undefined) === (disk === undefined)) throw new TypeError('recordFile(): pass exactly one of storage or disk')
  if (typeof keyField !== 'string' || keyField === '') throw new TypeError('recordFile(): keyField must be a field name')
  for (const [label, field] of [['nameField', nameField], ['typeField', typeField], ['sizeField', sizeField], ['mtimeField', mtimeField]] as const) {
    if (field !== undefined && (typeof field !== 'string' || field === '')) throw new TypeError(`recordFile(): ${label} must be a field name`)
  }
  const row = (record ?? {}) as Record<string, unknown>
  const key = keyOf(row[keyField]) ?? ''
  const fileOptions: StorageFileOptions = {}
  const name = nameField === undefined ? undefined : stringField(row[nameField])
  if (name !== undefined) fileOptions.name = name
  // A type no header can carry (non-ASCII, CR/LF, blank) is bad data in one row, not misuse: the
  // field is ignored and the storage's type, else the name's, is sent (StorageFile would throw).
  const type = typeField === undefined ? undefined : stringField(row[typeField])
  if (type !== undefined && type.trim() !== '' && isHeaderSafe(type)) fileOptions.contentType = type
  const size = sizeField === undefined ? undefined : byteCount(row[sizeField])
  const lastModified = mtimeField === undefined ? undefined : dateOf(row[mtimeField])
  if (size !== undefined || lastModified !== undefined) fileOptions.fallback = { size, lastModified }
  return storage !== undefined ? storage.file(key, fileOptions) : new StorageFile(disk as DiskLike, key, fileOptions)
}

function stringField (value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

/** A key column may be an integer (an id the objects are stored under): its decimal string. */
function keyOf (value: unknown): string | undefined {
  if ((typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'bigint') return String(value)
  return stringField(value)
}

/** Below this, a number of milliseconds would be a date before March 1973: it is seconds (Unix time). */
const SECONDS_BELOW = 1e11

function dateOf (value: unknown): Date | undefined {
  let date: Date | undefined
  if (value instanceof Date) date = value
  else if (typeof value === 'number' || typeof value === 'bigint') {
    const n = Number(value)
    date = new Date(Math.abs(n) < SECONDS_BELOW ? n * 1000 : n)
  }
  // SQLite's CURRENT_TIMESTAMP is `YYYY-MM-DD HH:MM:SS` in UTC; strftime('%Y-%m-%d %H:%M:%f') adds
  // milliseconds, and Django's SQLite backend microseconds (`…:SS.ffffff`, UTC with USE_TZ). SQLite
  // reads every date-time with no offset as UTC — also `HH:MM` without seconds and the `T`
  // separator —; JavaScript would read them as local time: the `Z` is added.
  else if (typeof value === 'string' && value !== '') {
    const naive = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?)$/.exec(value)
    date = new Date(naive === null ? value : `${naive[1] ?? ''}T${naive[2] ?? ''}Z`)
  }
  return date !== undefined && !Number.isNaN(date.getTime()) ? date : undefined
}
