import type { ExecutionContext } from 'ava'
import { STATUS_CODES } from 'node:http'
import type { Response } from 'supertest'

/** Headers that describe the file and so must never appear on an error response (http-semantics.md §9). */
const fileHeaders = ['content-disposition', 'etag', 'last-modified', 'cache-control', 'expires', 'accept-ranges', 'content-encoding', 'x-accel-redirect', 'x-sendfile', 'location']

/**
 * Asserts that `res` is a clean error response: exactly `status`, a short text/plain body that is the
 * status text (no path, no internal message), a Content-Length equal to the bytes of that body, and
 * no header describing the file. `res.body` must be a Buffer (see fetchBytes()); for HEAD, pass `head`.
 */
export function assertErrorResponse (t: ExecutionContext, res: Response, status: number, options: { size?: number, head?: boolean } = {}): void {
  const { size, head = false } = options
  t.is(res.status, status)
  const text = STATUS_CODES[status] ?? ''
  if (head) {
    // No body on HEAD, but the same Content-Length the GET's error body has.
    t.is(res.headers['content-length'], String(Buffer.byteLength(text)))
  } else {
    const body = res.body as Buffer
    t.true(Buffer.isBuffer(body), 'the body was read as bytes')
    t.is(body.toString('utf8'), text)
    t.is(res.headers['content-length'], String(body.length), 'Content-Length counts the bytes of the error body')
  }
  t.is(res.headers['content-type'], 'text/plain; charset=utf-8')
  for (const name of fileHeaders) t.is(res.headers[name], undefined, `no ${name} on a ${status}`)
  if (status === 416) t.is(res.headers['content-range'], `bytes */${size ?? '?'}`)
  else t.is(res.headers['content-range'], undefined, `no content-range on a ${status}`)
}
