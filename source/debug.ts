import { debuglog } from 'node:util'

/** `NODE_DEBUG=koa-downloads` prints what was decided and why (which range, why 304, which rule). */
export const debug = debuglog('koa-downloads')

/**
 * A URL or offload value for a log line, quoted, without its query: a presigned URL carries its
 * signature there (X-Amz-Signature, X-Goog-Signature), which a debug log must not hand out.
 */
export function loggableUrl (value: string): string {
  return JSON.stringify(withoutQuery(value))
}

/** `value` up to its query, which is replaced by `?…` (for log lines and error messages). */
export function withoutQuery (value: string): string {
  const query = value.indexOf('?')
  return query === -1 ? value : `${value.slice(0, query)}?…`
}
