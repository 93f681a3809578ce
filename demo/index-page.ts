// The demo's index page: every source × every delivery, one cell each, computed from the real rules.
import type { ServerName } from '../source/server-config.ts'
import { deliveries } from './deliveries.ts'
import type { DeliveryId } from './deliveries.ts'
import { esc, page } from './html.ts'
import { outcomeOf } from './outcome.ts'
import { sources } from './sources.ts'
import type { DemoEnv } from './sources.ts'

export async function indexPage (env: DemoEnv, live: ReadonlySet<DeliveryId>, proxy: ServerName | undefined): Promise<string> {
  const head = deliveries.map((d) => `<th>${esc(d.label)}<small>${esc(d.about)}</small></th>`).join('')
  const rows: string[] = []
  for (const source of sources) {
    const cells: string[] = []
    for (const delivery of deliveries) {
      const outcome = await outcomeOf(env, source, delivery)
      const get = `/get/${delivery.id}/${source.id}`
      const explain = `/explain/${delivery.id}/${source.id}`
      // An offload response without its proxy is an empty body: link to what it hands over instead.
      const real = outcome.kind === 'stream' || outcome.kind === 'redirect' || (outcome.kind === 'offload' && live.has(delivery.id) && outcome.proxyServes !== false)
      const id = `${delivery.id}-${source.id}`
      const link = outcome.kind === 'unavailable'
        ? '<span>unavailable</span>'
        : real
          ? `<a class="download" id="${id}" href="${get}">download</a> · <a href="${explain}">headers</a>`
          : `<a id="${id}" href="${explain}">headers for ${esc(delivery.label)}</a>`
      cells.push(`<td class="${outcome.kind}">${link}<small>${esc(outcome.note)}</small></td>`)
    }
    rows.push(`<tr><th>${esc(source.label)}<small>${esc(source.about)}</small></th>${cells.join('')}</tr>`)
  }

  const proxyNote = proxy === undefined
    ? `<p>No proxy runs in front of this demo, so the offload columns link to <em>the response the proxy would
receive</em>: an empty body with its offload header. Run <code>npm run demo:nginx</code> to put nginx in front and
make the nginx column deliver real bytes. The configurations: ${['nginx', 'apache', 'lighttpd', 'caddy'].map((s) => `<a href="/config/${s}">${s}</a>`).join(', ')}.</p>`
    : `<p><strong>${esc(proxy)}</strong> runs in front of this demo with the configuration from
<a href="/config/${esc(proxy)}"><code>koa-downloads config ${esc(proxy)}</code></a>: its column delivers real bytes.</p>`

  return page('koa-downloads demo', `<h1>koa-downloads demo</h1>
<p>Your Koa route decides <em>whether</em> and <em>what</em> to download; koa-downloads delivers it. Each row is a
source of bytes, each column a way to deliver them. Green cells are streamed by Node, blue ones handed to a proxy,
yellow ones redirected to the object store. Try <code>curl -i -r 0-9</code> on any download link.</p>
${proxyNote}
<table class="matrix">
<thead><tr><th>source \\ delivery</th>${head}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>

<h2>Inline, errors and django-sendfile style</h2>
<ul>
  <li><a id="inline-text" href="/inline/hello.txt">/inline/hello.txt</a> — <code>sendfile(ctx, path, { root })</code>: displayed inline, the name kept for “Save as”.</li>
  <li><a id="inline-pdf" href="/inline/guide.pdf">/inline/guide.pdf</a> — an inline PDF (<code>application/pdf</code>, <code>Content-Disposition: inline</code>).</li>
  <li><a id="quoted" href="/files/${encodeURIComponent('say "hi" 100%.txt')}">/files/say "hi" 100%.txt</a> — quotes and a percent sign: ASCII fallback plus <code>filename*</code>.</li>
  <li><a href="/files/..%2F..%2Fpackage.json">/files/..%2F..%2Fpackage.json</a> — a traversal attempt: 404 from the app, no path in the answer (behind <code>npm run demo:nginx</code>, nginx refuses it first with its own 400).</li>
  <li><a href="/records/2">/records/2</a> — a record whose upload is missing: 404. <a href="/records/99">/records/99</a> — no such record: 404.</li>
</ul>
<p>Logs of every decision: <code>NODE_DEBUG=koa-downloads npm run demo</code>.</p>`)
}
