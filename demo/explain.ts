// The "headers" view of a cell: the response the route gives, as the proxy in front receives it.
import { renderServerConfig } from '../source/server-config.ts'
import type { DemoDelivery } from './deliveries.ts'
import { esc, page, readableHeader } from './html.ts'
import type { DemoEnv, DemoSource } from './sources.ts'

const offloadHeaders = ['x-accel-redirect', 'x-sendfile', 'location']

/** `upstream`: where the app listens, for the proxy lines of the configuration shown. */
export async function explainPage (env: DemoEnv, delivery: DemoDelivery, source: DemoSource, response: Response, upstream: string): Promise<string> {
  const body = Buffer.from(await response.arrayBuffer())
  const rows: string[] = []
  response.headers.forEach((value, name) => {
    const mark = offloadHeaders.includes(name) ? ' style="background:#fff3c4"' : ''
    rows.push(`<tr${mark}><th>${esc(name)}</th><td><code>${esc(readableHeader(value))}</code></td></tr>`)
  })
  const headers = rows.join('\n')
  const offload = response.headers.get('x-accel-redirect') ?? response.headers.get('x-sendfile') ??
    (response.status === 200 ? response.headers.get('location') : null)
  const server = delivery.server
  let what: string
  if (offload !== null && server !== undefined) {
    const config = renderServerConfig(server, delivery.rules(env).filter((r) => r.backend === 'internal-redirect' || r.backend === server), { upstream })
    what = `<p>This is an <strong>offload response</strong>: status 200, an empty body, and the header ${esc(server)} acts on.
${esc(server)} replaces it with the file at <code>${esc(readableHeader(offload))}</code> and answers Range, If-None-Match and HEAD
itself. Without the proxy, this empty response is what a client would get, which is why the demo links here instead.</p>
<p>The ${esc(server)} configuration for this column (<code>koa-downloads config ${esc(server)}</code>):</p>
<pre>${esc(config)}</pre>`
  } else if (response.status >= 300 && response.status < 400) {
    what = '<p>A <strong>redirect</strong>: the browser fetches the bytes from the URL in <code>Location</code>.</p>'
  } else {
    const preview = body.subarray(0, 300).toString('utf8')
    what = `<p><strong>Streamed by Node</strong>: ${body.length} bytes.</p><pre>${esc(preview)}${body.length > 300 ? '\n…' : ''}</pre>`
  }
  return page(`${source.label} × ${delivery.label}`, `<p><a href="/">← all downloads</a></p>
<h1>${esc(source.label)} × ${esc(delivery.label)}</h1>
<p>${esc(source.about)}<br>${esc(delivery.about)}</p>
<p><code>GET /get/${esc(delivery.id)}/${esc(source.id)}</code> → <strong>${response.status}</strong></p>
<table>${headers}</table>
${what}`)
}
