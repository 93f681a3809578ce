import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'

/** One request a test storage server received, and how its response ended. */
export interface LoggedRequest {
  method: string
  url: string
  range: string | undefined
  headers: IncomingHttpHeaders
  /** True once the response closed before it was complete (the client went away or we dropped it). */
  closedEarly: boolean
  /** Settles when the response is finished or closed. */
  settled: Promise<void>
}

/**
 * What the storage does wrong, for the next body responses:
 * - `reset`: every request's connection is destroyed without a response (the storage is down);
 * - `drop`: headers and half the body are sent, then the connection is destroyed;
 * - `stall`: headers and the first bytes are sent, then nothing until the client goes away;
 * - `hang`: no response at all (not even headers) until the client goes away;
 * - `hold`: the whole response is sent, then the server's thread — which the app under test
 *   shares — is kept busy for 900 ms: the app's event loop is held up while the response waits
 *   in its socket.
 * The S3 proxy applies them to GetObject (GET) only, `reset` excepted.
 */
export type Fault = 'reset' | 'drop' | 'stall' | 'hang' | 'hold' | undefined

/** The request log and fault switch that every test storage server (origin, GCS stub, S3 proxy) shares. */
export class RequestLog {
  readonly entries: LoggedRequest[] = []
  fault: Fault = undefined

  record (req: IncomingMessage, res: ServerResponse): LoggedRequest {
    let settle: () => void = () => {}
    const entry: LoggedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      range: req.headers.range,
      headers: req.headers,
      closedEarly: false,
      settled: new Promise((resolve) => { settle = resolve })
    }
    res.once('close', () => {
      entry.closedEarly = !res.writableFinished
      settle()
    })
    this.entries.push(entry)
    return entry
  }

  clear (): void {
    this.entries.length = 0
    this.fault = undefined
  }

  /** Requests whose URL path contains `part` (decoded comparison is the caller's business). */
  matching (part: string): LoggedRequest[] {
    return this.entries.filter((e) => e.url.includes(part))
  }

  /** Resolves with the first request satisfying `predicate` once it has settled; rejects after `ms`. */
  async settledWhere (predicate: (entry: LoggedRequest) => boolean, ms = 5000): Promise<LoggedRequest> {
    const deadline = Date.now() + ms
    while (Date.now() < deadline) {
      const entry = this.entries.find(predicate)
      if (entry !== undefined) {
        let timer: NodeJS.Timeout | undefined
        const settled = await Promise.race([entry.settled.then(() => true), new Promise<false>((resolve) => { timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), false) })])
        clearTimeout(timer)
        if (!settled) throw new Error(`the request for ${entry.url} reached the storage but did not settle within ${ms} ms`)
        return entry
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw new Error('no matching request reached the storage in time')
  }
}

/** Writes `body` (headers already set) honouring the log's fault. */
export function sendWithFault (res: ServerResponse, body: Uint8Array, fault: Fault): void {
  if (fault === 'drop') {
    res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy())
    return
  }
  if (fault === 'stall') {
    res.write(body.subarray(0, Math.min(1024, Math.floor(body.length / 2))))
    return
  }
  if (fault === 'hang') return
  res.end(body)
  if (fault === 'hold') {
    const until = Date.now() + 900
    while (Date.now() < until) {}
  }
}

/** Faults that break the connection before any response. */
export function resetIfDown (req: IncomingMessage, fault: Fault): boolean {
  if (fault !== 'reset') return false
  req.socket.destroy()
  return true
}
