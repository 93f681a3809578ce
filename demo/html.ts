// Escaping for the demo's HTML pages: every value that comes from a name, a header or a URL.
export function esc (value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/**
 * A header value as a person reads it: Apache and Caddy get raw UTF-8 bytes, which travel (and
 * arrive in fetch) as one latin1 char per byte; shown decoded, with a note.
 */
export function readableHeader (value: string): string {
  if (!/[\x80-\xff]/.test(value) || /[^\x00-\xff]/.test(value)) return value
  const decoded = Buffer.from(value, 'latin1').toString('utf8')
  return decoded.includes('\ufffd') ? value : `${decoded}   (sent as raw UTF-8 bytes)`
}

export function page (title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 78rem; padding: 0 1rem; color: #222 }
  table { border-collapse: collapse; width: 100%; table-layout: fixed }
  table.matrix th:first-child { width: 12% }
  td small { overflow-wrap: anywhere }
  th, td { border: 1px solid #ccc; padding: .45rem; vertical-align: top; text-align: left }
  thead th { background: #f3f3f3; font-size: .9em }
  td small, th small { display: block; color: #555; font-weight: normal; font-size: .82em }
  td.stream { background: #f6fbf6 } td.offload { background: #f4f7fd } td.redirect { background: #fdf9f0 } td.unavailable { background: #f4f4f4; color: #888 }
  code, pre { font: 13px/1.4 ui-monospace, monospace; background: #f5f5f5 }
  pre { padding: .8rem; overflow-x: auto }
  a.download { font-weight: 600 }
</style></head>
<body>
${body}
</body></html>
`
}
