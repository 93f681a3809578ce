// Peer: pillarjs send on bare node:http (no framework on top).
import { createServer } from 'node:http'
import send from 'send'
import { announce, benchRoot, fileName } from './shared.ts'

const root = benchRoot()
announce(createServer((req, res) => {
  const name = fileName(req.url ?? '/')
  if (name === undefined) {
    res.statusCode = 404
    res.end()
    return
  }
  send(req, name, { root }).on('error', (error: { status?: number }) => {
    res.statusCode = error.status ?? 500
    res.end()
  }).pipe(res)
}))
