// The koa-downloads demo: `npm run demo`, then open http://localhost:3000 (PORT to change).
import { fileURLToPath } from 'node:url'
import Router from '@koa/router'
import Koa from 'koa'
import { download, downloads, PathFile, sendfile, VirtualFile } from '../source/index.ts'

const files = fileURLToPath(new URL('./files/', import.meta.url))
const port = Number(process.env.PORT ?? 3000)

export function createDemoApp (): Koa {
  const app = new Koa()
  const router = new Router()

  router.get('/', (ctx) => {
    ctx.type = 'html'
    ctx.body = indexPage()
  })
  // A local file, as an attachment, confined to demo/files (../ and symlinks out of it → 404).
  router.get('/files/:name', (ctx) => {
    ctx.body = download(new PathFile(ctx.params.name ?? '', { root: files }))
  })
  // django-sendfile style: one call, inline by default.
  router.get('/inline/:name', async (ctx) => {
    await sendfile(ctx, ctx.params.name ?? '', { root: files })
  })
  // Text made in memory: sized, with a strong content-hash ETag, ranges served.
  router.get('/text', (ctx) => {
    ctx.body = download(new VirtualFile(`Generated for you at ${new Date().toISOString()}\n`, { name: 'note.txt' }))
  })
  // A generated stream of unknown length: chunked, no ranges.
  router.get('/generated', (ctx) => {
    async function * rows (): AsyncGenerator<string> {
      yield 'id,square\n'
      for (let i = 1; i <= 1000; i++) yield `${i},${i * i}\n`
    }
    ctx.body = download(new VirtualFile(rows(), { name: 'squares.csv' }))
  })

  app.use(downloads())
  app.use(router.routes())
  app.use(router.allowedMethods())
  return app
}

function indexPage (): string {
  const rows = [
    ['/files/hello.txt', 'A local file (PathFile), as an attachment.'],
    [`/files/${encodeURIComponent('résumé €.txt')}`, 'A unicode name: ASCII fallback plus filename* (RFC 8187).'],
    [`/files/${encodeURIComponent('say "hi" 100%.txt')}`, 'Quotes and a percent sign in the name.'],
    ['/inline/hello.txt', 'sendfile(): shown inline by the browser, filename kept for "Save as".'],
    ['/text', 'In-memory text (VirtualFile) with a content-hash ETag.'],
    ['/generated', 'A generated CSV stream of unknown length (chunked).'],
    ['/files/..%2F..%2Fpackage.json', 'A traversal attempt: 404.']
  ]
  const items = rows.map(([href, text]) => `<li><a href="${href}">${href}</a> — ${text}</li>`).join('\n')
  return `<!doctype html><meta charset="utf-8"><title>koa-downloads demo</title>
<h1>koa-downloads demo</h1>
<p>Every link below is served by Node with RFC 9110 semantics (Range, conditional requests, HEAD). Try <code>curl -i -r 0-4</code> on them.</p>
<ul>
${items}
</ul>`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  createDemoApp().listen(port, () => {
    console.log(`koa-downloads demo on http://localhost:${port}`)
  })
}
