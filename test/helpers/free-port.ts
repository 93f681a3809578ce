import { createServer } from 'node:net'

/**
 * A loopback port that was free a moment ago, for servers that need their port in a config file
 * before they start (the proxies, nginx in bench/). Callers retry on EADDRINUSE. No ava import, so
 * that bench/ can use it outside the test runner.
 */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}
