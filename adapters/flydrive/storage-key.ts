/**
 * Our own check of a storage key, used instead of flydrive's key normaliser: that one rejects real
 * filenames (unicode, parentheses, `+`, `@`, `'`, `%`, `&`) and condenses whitespace, so the adapter
 * talks to the driver directly and must refuse traversal itself.
 *
 * Returns why the key is refused, or undefined when it is acceptable: non-empty, no NUL or other
 * C0 control, no backslash (a separator on Windows), no leading `/`, no `.` or `..` segment, valid
 * UTF-8 (no lone surrogate), at most 1024 bytes.
 */
export function keyProblem (key: unknown): string | undefined {
  if (typeof key !== 'string' || key === '') return 'the key is empty'
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key)) return 'the key contains a control character'
  if (key.includes('\\')) return 'the key contains a backslash'
  if (key.startsWith('/')) return 'the key starts with /'
  if (key.split('/').some((segment) => segment === '..' || segment === '.')) return 'the key has a . or .. segment'
  // No storage can hold these: asking would only turn a client's bad key into a 502.
  if (!key.isWellFormed()) return 'the key contains a lone surrogate (not UTF-8)'
  if (Buffer.byteLength(key) > 1024) return 'the key is longer than 1024 bytes (the S3 and GCS limit)'
  return undefined
}

/** The last segment of a key: the download name. */
export function keyName (key: string): string {
  const slash = key.lastIndexOf('/')
  return slash === -1 ? key : key.slice(slash + 1)
}

/** Percent-encodes a key for a URL path: every byte outside RFC 3986 unreserved characters, `/` kept. */
export function encodeKey (key: string): string {
  return key.split('/').map((segment) =>
    encodeURIComponent(segment).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
  ).join('/')
}
