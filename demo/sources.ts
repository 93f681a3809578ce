// The rows of the demo's table: where the bytes of a download come from.
import { PathFile, VirtualFile } from '../source/index.ts'
import type { DownloadFile } from '../source/index.ts'
import { recordFile } from '../adapters/flydrive/index.ts'
import { HttpFile } from '../adapters/http/index.ts'
import type { Storage } from '../adapters/flydrive/index.ts'
import type { Records } from './records.ts'

/** Everything the sources need, created by `createDemo()`. */
export interface DemoEnv {
  /** demo/files, absolute. */
  filesDir: string
  /** The location of the flydrive fs disk (a temp dir holding copies of the demo files and the uploads). */
  storageDir: string
  /** `storage()` over the fs disk. */
  media: Storage
  records: Records
  /** The local "remote" origin, `http://127.0.0.1:<port>/` (demo files below `files/`). */
  originUrl: string
  /** `storage()` over the S3 disk, when an S3 server is running. */
  s3: { storage: Storage, endpoint: string, bucket: string } | undefined
  /** Why there is no S3, for the page. */
  s3Problem: string | undefined
}

export type SourceId = 'path' | 'storage' | 'record' | 'remote' | 's3' | 'text' | 'generated'

export interface DemoSource {
  id: SourceId
  label: string
  /** One sentence for the page. */
  about: string
  /** The name the browser saves the download under. */
  filename: string
  /** A fresh wrapper for one request (wrappers cache their metadata for the request); undefined = unavailable. */
  file: (env: DemoEnv) => Promise<DownloadFile | undefined>
  /** The bytes live in an object store: the "presigned redirect" column sends the browser to a short-lived signed URL (presignedRedirect()). */
  objectStore?: true
}

export const storageKey = 'shared/say "hi" 100%.txt'
// No parentheses, quotes or non-ASCII in this name: @20minutes/s3rver 5.0.0 computes the SigV4
// canonical query with encodeURIComponent, so a signed response-content-disposition containing
// ( ) ' or a filename* (with %) fails with SignatureDoesNotMatch there (AWS S3 accepts them).
export const s3Key = 'exports/data set v2.json'
export const s3Body = '{ "rows": [1, 2, 3], "note": "stored in S3, read with ranged GetObject" }\n'
export const textBody = 'Made in memory by the demo: a VirtualFile over a string.\nIt has a content-hash ETag, so Range and If-Range work.\n'

/** The generated CSV, row by row: nothing is held in memory. */
export async function * squares (): AsyncGenerator<string> {
  yield 'n,square\n'
  for (let n = 1; n <= 1000; n++) yield `${n},${n * n}\n`
}

export const sources: readonly DemoSource[] = [
  {
    id: 'path',
    label: 'Local path',
    about: 'PathFile over demo/files/résumé €.txt, confined to that directory (../ and symlinks out of it are a 404).',
    filename: 'résumé €.txt',
    file: async (env) => new PathFile('résumé €.txt', { root: env.filesDir })
  },
  {
    id: 'storage',
    label: 'Storage (flydrive fs)',
    about: 'StorageFile of a flydrive fs disk; its key has quotes, a space and a percent sign.',
    filename: 'say "hi" 100%.txt',
    file: async (env) => env.media.file(storageKey)
  },
  {
    id: 'record',
    label: 'Database record',
    about: 'recordFile() of row 1 of an SQLite uploads table: the key, the original name and the type come from the row.',
    filename: 'Quarterly report – Q1 2026.csv',
    file: async (env) => recordFile(env.records.find(1), { storage: env.media, keyField: 'file_key', nameField: 'original_name', typeField: 'content_type' })
  },
  {
    id: 'remote',
    label: 'Remote URL',
    about: 'HttpFile of a URL on the local origin; the name is the URL\'s last segment, percent-decoded.',
    filename: 'résumé €.txt',
    file: async (env) => new HttpFile(new URL('files/r%C3%A9sum%C3%A9%20%E2%82%AC.txt', env.originUrl))
  },
  {
    id: 's3',
    label: 'S3 object',
    about: 'StorageFile of an S3 disk (in-process S3 server); its url is a presigned URL, which the nginx remote location can fetch.',
    filename: 'data set v2.json',
    file: async (env) => await env.s3?.storage.signedFile(s3Key, { expiresIn: 300 }),
    objectStore: true
  },
  {
    id: 'text',
    label: 'Text in memory',
    about: 'VirtualFile over a string: sized, with a strong content-hash ETag, ranges served by slicing.',
    filename: 'note from memory.txt',
    file: async () => new VirtualFile(textBody, { name: 'note from memory.txt' })
  },
  {
    id: 'generated',
    label: 'Generated stream',
    about: 'VirtualFile over an async generator: unknown length, so chunked, no ranges, nothing buffered.',
    filename: 'squares.csv',
    file: async () => new VirtualFile(squares(), { name: 'squares.csv' })
  }
]

export function findSource (id: string | undefined): DemoSource | undefined {
  return sources.find((source) => source.id === id)
}
