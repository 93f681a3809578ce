import type { Stream } from 'node:stream'
import { fileURLToPath } from 'node:url'
import Koa from 'koa'
import type { Context } from 'koa'
import { downloads } from '../../source/downloads.ts'
import type { DownloadsOptions } from '../../source/downloads.ts'

/** The committed fixture root (hostile names inside) and the decoy secret outside it. */
export const fixtureRoot = fileURLToPath(new URL('../fixtures/root/', import.meta.url)).replace(/\/$/, '')
export const decoySecret = fileURLToPath(new URL('../fixtures/secret.txt', import.meta.url))

/** A Koa app with `downloads(options)` in front of `handler`; Koa's own error log is silenced. */
export function downloadApp (handler: (ctx: Context) => void | Promise<void>, options?: DownloadsOptions): Koa {
  const app = new Koa()
  app.silent = true
  app.use(downloads(options))
  app.use(async (ctx) => { await handler(ctx) })
  return app
}

/** supertest parser that keeps every body as raw bytes, whatever its type. */
export function binaryParser (res: Stream, callback: (error: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = []
  res.on('data', (chunk: Buffer) => chunks.push(chunk))
  res.on('end', () => { callback(null, Buffer.concat(chunks)) })
  res.on('error', (error: Error) => { callback(error, Buffer.concat(chunks)) })
}
