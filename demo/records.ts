// The "record" source: an SQLite table of uploads (node:sqlite, in memory), the way a Django app
// keeps a FileField: the storage key, the name the user uploaded it under, and its type.
import { DatabaseSync } from 'node:sqlite'

export interface UploadRow {
  id: number
  title: string
  file_key: string
  original_name: string
  content_type: string
}

export interface Records {
  find: (id: number) => UploadRow | undefined
  close: () => void
}

/** The rows the demo starts with, and the bytes each key holds in the storage disk. */
export const seedUploads: ReadonlyArray<UploadRow & { bytes: string }> = [
  {
    id: 1,
    title: 'Quarterly report',
    file_key: 'uploads/2026/7f3a9c.csv',
    original_name: 'Quarterly report – Q1 2026.csv',
    content_type: 'text/csv; charset=utf-8',
    bytes: 'quarter,revenue\nQ1 2026,1200\n'
  },
  {
    // A record whose file was never uploaded: the download is a 404, not a crash.
    id: 2,
    title: 'Lost upload',
    file_key: 'uploads/2026/missing.bin',
    original_name: 'lost.bin',
    content_type: 'application/octet-stream',
    bytes: ''
  }
]

export function openRecords (): Records {
  const db = new DatabaseSync(':memory:')
  db.exec(`CREATE TABLE uploads (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, file_key TEXT NOT NULL,
    original_name TEXT NOT NULL, content_type TEXT NOT NULL)`)
  const insert = db.prepare('INSERT INTO uploads (id, title, file_key, original_name, content_type) VALUES (?, ?, ?, ?, ?)')
  for (const row of seedUploads) insert.run(row.id, row.title, row.file_key, row.original_name, row.content_type)
  const select = db.prepare('SELECT id, title, file_key, original_name, content_type FROM uploads WHERE id = ?')
  return {
    find: (id) => select.get(id) as UploadRow | undefined,
    close: () => { db.close() }
  }
}
