// The koa-downloads demo: `npm run demo`, then open http://localhost:3000 (PORT to change; it
// listens on the loopback interface only, HOST=0.0.0.0 to reach it from elsewhere).
// Everything it needs runs in this process: demo/files, a flydrive fs disk, an SQLite table,
// a local "remote" origin and an in-process S3 server. See demo/app.ts.
import { fileURLToPath } from 'node:url'
import { createDemo } from './app.ts'

export { createDemo } from './app.ts'
export type { Demo, DemoOptions } from './app.ts'

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  const demo = await createDemo()
  let bound = port
  try {
    bound = await demo.listen(port, host)
  } catch (error) {
    await demo.stop()
    console.error(`koa-downloads demo: cannot listen on port ${port}: ${(error as Error).message} (set PORT to use another)`)
    process.exit(1)
  }
  const shown = host === '127.0.0.1' ? 'localhost' : host.includes(':') ? `[${host}]` : host
  console.log(`koa-downloads demo on http://${shown}:${bound}  (Ctrl-C to stop)`)
  const stop = (): void => { demo.stop().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
