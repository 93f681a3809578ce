import type { Server } from 'node:http'

/** The directory every bench server serves `/files/<name>` from (the runner's fixture directory). */
export function benchRoot (): string {
  const root = process.env.BENCH_ROOT
  if (root === undefined || root === '') throw new Error('BENCH_ROOT is not set')
  return root
}

/** `/files/<name>` → `<name>` (undefined for any other path). The fixture names are plain ASCII. */
export function fileName (path: string): string | undefined {
  return path.startsWith('/files/') ? path.slice('/files/'.length) : undefined
}

/** Listens on an ephemeral loopback port and tells the runner which one on stdout. */
export function announce (server: Server): void {
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no TCP address')
    process.stdout.write(`PORT ${address.port}\n`)
  })
}

// Exit through process.exit so that --cpu-prof writes its profile when the runner stops the server.
process.once('SIGTERM', () => { process.exit(0) })
