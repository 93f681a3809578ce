import { debuglog } from 'node:util'

/** `NODE_DEBUG=koa-downloads` prints what was decided and why (which range, why 304, which rule). */
export const debug = debuglog('koa-downloads')

/**
 * A URL or offload value for a log line, quoted, without its query (a presigned URL carries its
 * signature there: X-Amz-Signature, X-Goog-Signature) or credentials, which a log must not hand out.
 */
export function loggableUrl (value: string): string {
  return JSON.stringify(redactUrl(value))
}

/**
 * `value` without its secrets, for log lines and error messages: the query replaced by `?…`, and
 * credentials in the authority (`https://user:token@host/`, sent upstream as Basic auth) left out.
 */
export function redactUrl (value: string): string {
  const query = value.indexOf('?')
  const bare = query === -1 ? value : `${value.slice(0, query)}?…`
  return bare.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1')
}
