import { connect } from 'node:net'

export interface RawResponse {
  status: number
  /** Lower-cased names; repeated fields joined with ', ' (set-cookie kept apart as a list in `all`). */
  headers: Record<string, string>
  /** Every header line as sent, in order, names lower-cased. */
  all: Array<[string, string]>
  /** The body bytes as received (chunked encoding removed); `complete` says whether it ended cleanly. */
  body: Buffer
  /** True when the body ended as its framing promised (full Content-Length, or the last chunk). */
  complete: boolean
  /** The raw bytes of the head (status line and header lines). */
  head: string
}

/**
 * One HTTP/1.1 request over a fresh socket, written byte for byte as given (no URL normalisation,
 * unlike fetch or supertest, which resolve `%2e%2e` and `..` before sending), read until the server
 * closes. `target` is sent as latin1, so each char ≤ U+00FF is one byte on the wire.
 */
export async function rawRequest (port: number, method: string, target: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close']
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  const request = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect(port, '127.0.0.1', () => { socket.write(request) })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('close', () => { resolve(Buffer.concat(chunks)) })
    // A reset after some bytes is a result (a truncated response), not a test failure.
    socket.on('error', (error: NodeJS.ErrnoException) => { if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error) })
  })
  return parseResponse(raw, method === 'HEAD')
}

export function parseResponse (raw: Buffer, head = false): RawResponse {
  const end = raw.indexOf('\r\n\r\n')
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(raw.subarray(0, 200).toString('latin1'))}`)
  const headText = raw.subarray(0, end).toString('latin1')
  const [statusLine = '', ...fieldLines] = headText.split('\r\n')
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine)
  if (match === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`)
  const status = Number(match[1])
  const headers: Record<string, string> = {}
  const all: Array<[string, string]> = []
  for (const line of fieldLines) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`)
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).trim()
    all.push([name, value])
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  const rest = raw.subarray(end + 4)
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { status, headers, all, body: rest, complete: rest.length === 0, head: headText }
  }
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const { body, complete } = dechunk(rest)
    return { status, headers, all, body, complete, head: headText }
  }
  const length = headers['content-length']
  if (length !== undefined) {
    const expected = Number(length)
    return { status, headers, all, body: rest, complete: rest.length === expected, head: headText }
  }
  return { status, headers, all, body: rest, complete: true, head: headText }
}

function dechunk (data: Buffer): { body: Buffer, complete: boolean } {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    if (lineEnd === -1) return { body: Buffer.concat(parts), complete: false }
    const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (Number.isNaN(size)) return { body: Buffer.concat(parts), complete: false }
    if (size === 0) return { body: Buffer.concat(parts), complete: data.indexOf('\r\n', lineEnd + 2) !== -1 }
    const start = lineEnd + 2
    if (start + size + 2 > data.length) {
      parts.push(data.subarray(start, Math.min(data.length, start + size)))
      return { body: Buffer.concat(parts), complete: false }
    }
    parts.push(data.subarray(start, start + size))
    at = start + size + 2
  }
}

/**
 * The request-target form of a payload: its own `%XX` escapes kept, every char outside visible ASCII
 * percent-encoded as UTF-8 (lone surrogates become U+FFFD, as any client would send them).
 */
export function toTarget (payload: string): string {
  let out = ''
  for (const char of payload) {
    if (/^[\x21-\x7e]$/.test(char)) out += char
    else for (const byte of Buffer.from(char, 'utf8')) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

/** The same with non-ASCII sent as raw UTF-8 bytes (as latin1 chars), which some clients do. */
export function toRawUtf8Target (payload: string): string {
  let out = ''
  for (const char of payload) {
    if (/^[\x21-\x7e]$/.test(char)) out += char
    else if (char.codePointAt(0)! > 0x7f) out += Buffer.from(char, 'utf8').toString('latin1')
    else out += '%' + char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

/** Runs `task` over `items` with at most `limit` in flight. */
export async function pool<T> (items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await task(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
