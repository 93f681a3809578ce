import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { ExecutionContext } from 'ava'
import type Koa from 'koa'
import request from 'supertest'
import { binaryParser } from './koa.ts'

/**
 * Starts `app` on an ephemeral 127.0.0.1 port for the duration of test `t` (closed in its teardown,
 * open connections included) and returns its base URL.
 */
export async function listen (t: ExecutionContext, app: Koa): Promise<string> {
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  const { port } = server.address() as AddressInfo
  return `http://127.0.0.1:${port}`
}

/** A supertest request whose body is always the raw bytes (a Buffer), whatever the Content-Type. */
export function fetchBytes (url: string, path: string, method: 'get' | 'head' | 'post' = 'get'): request.Test {
  return request(url)[method](path).buffer(true).parse(binaryParser)
}
