import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { TestFn } from 'ava'
import { download } from '../../source/download.ts'
import type { DownloadFile } from '../../source/types.ts'
import { downloadApp } from './koa.ts'
import type { LoggedRequest, RequestLog } from './request-log.ts'

/** One adapter under the shared contract: how to make its files and how to watch its storage. */
export interface ContractTarget {
  /** The DownloadFile for `key` (which may not exist). */
  file: (key: string) => DownloadFile
  put: (key: string, bytes: Buffer, contentType?: string) => Promise<void>
  /** The storage's request log and fault switch; absent for local disks (no server to watch). */
  log?: RequestLog | undefined
  /** The requests in the log that fetch object bytes (not metadata). */
  isBodyRequest?: ((entry: LoggedRequest) => boolean) | undefined
  /** Whether the storage keeps the declared Content-Type (a local disk does not). @default true */
  declaredTypes?: boolean | undefined
}

/** What the contract can check, known when the tests are declared (before any server starts). */
export interface ContractShape {
  /** Whether keys are storage keys (checked for traversal) rather than URL paths. @default true */
  keys?: boolean | undefined
  /** Whether the storage is a server with a RequestLog (faults, request counts). @default true */
  server?: boolean | undefined
}

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  /** True only when the response ended normally with every byte its framing announced. */
  complete: boolean
}

/**
 * A raw node:http client: unlike supertest it reports a truncated response as such (`complete:
 * false`) instead of failing, and can go away after the first bytes (`abortAfterFirstChunk`).
 */
export async function rawRequest (url: string, options: { method?: string, headers?: Record<string, string>, abortAfterFirstChunk?: boolean } = {}): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    // The path goes out raw: a URL parser would remove `.`/`..` (even encoded) segments first.
    const [, host = '', port = '80', path = '/'] = /^http:\/\/([^:/]+):?(\d*)(\/.*)?$/.exec(url) ?? []
    const req = request({ host, port: Number(port === '' ? 80 : port), path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = []
      let settled = false
      const done = (complete: boolean): void => {
        if (settled) return
        settled = true
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete })
      }
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        if (options.abortAfterFirstChunk === true) {
          req.destroy()
          done(false)
        }
      })
      res.on('end', () => { done(res.complete) })
      res.on('error', () => { done(false) })
      res.on('close', () => { done(res.complete && res.readableEnded) })
    })
    req.on('error', (error) => { reject(error) })
    req.end()
  })
}

// Dots encoded too, so that no client or URL parser removes `.` and `..` segments on the way.
const encodeKey = (key: string): string => key.split('/').map((s) => encodeURIComponent(s).replace(/\./g, '%2E')).join('/')

/** Keys every storage must serve, flydrive's normaliser notwithstanding. */
export const hostileKeys = ['docs/ünïcödé résumé.txt', "odd/(1) a+b@c'd%e&f.bin"]

/**
 * The contract every adapter meets through a real Koa app with downloads(): full and ranged
 * (single, multipart) downloads read at the source, 304/412, HEAD without a body transfer, 404,
 * storage down → 502, storage dying mid-body → a truncated response, client abort → the storage
 * request is closed, and keys with unicode and the characters flydrive refuses.
 */
export function fileContract (test: TestFn, label: string, target: () => ContractTarget, shape: ContractShape = {}): void {
  // Larger than serve()'s bufferSize (64 KiB), so that full downloads are streamed.
  const bytes = randomBytes(256 * 1024)
  const small = randomBytes(2048)
  let base = ''
  let server: ReturnType<ReturnType<typeof downloadApp>['listen']> | undefined
  const t = (): ContractTarget => target()
  const bodyRequests = (): LoggedRequest[] => {
    const { log, isBodyRequest } = t()
    return log === undefined ? [] : log.entries.filter(isBodyRequest ?? ((e) => e.method === 'GET'))
  }
  const url = (key: string): string => `${base}/k/${encodeKey(key)}`
  const serial = test.serial

  // Serial: ava runs hooks of one kind concurrently, and the file's own setup must come first.
  test.serial.before(async () => {
    await t().put('contract/object.bin', bytes, 'application/x-test')
    await t().put('contract/small.bin', small, 'application/x-test')
    for (const key of hostileKeys) await t().put(key, Buffer.from(`contents of ${key}\n`), 'text/plain; charset=utf-8')
    const app = downloadApp((ctx) => {
      const key = decodeURIComponent(ctx.path.replace(/^\/k\//, ''))
      ctx.body = download(t().file(key))
    })
    server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server?.once('listening', resolve))
    const address = server.address()
    base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  })
  test.after.always(async () => {
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
  })
  test.beforeEach(() => { t().log?.clear() })

  serial(`${label}: full download sends every byte with a strong ETag, read in one storage request`, async (tt) => {
    const res = await rawRequest(url('contract/object.bin'))
    tt.is(res.status, 200)
    tt.true(res.complete)
    tt.true(res.body.equals(bytes))
    tt.is(res.headers['content-length'], String(bytes.length))
    tt.is(res.headers['content-type'], t().declaredTypes === false ? 'application/octet-stream' : 'application/x-test')
    tt.is(res.headers['accept-ranges'], 'bytes')
    tt.regex(res.headers.etag ?? '', /^"[^"]+"$/)
    tt.is(res.headers['content-disposition'], 'attachment; filename="object.bin"')
    if (t().log !== undefined) {
      tt.is(bodyRequests().length, 1)
      tt.is(bodyRequests()[0]?.range, undefined)
    }
  })

  serial(`${label}: single range → 206, read as a ranged request at the storage`, async (tt) => {
    const res = await rawRequest(url('contract/object.bin'), { headers: { Range: 'bytes=100-1123' } })
    tt.is(res.status, 206)
    tt.is(res.headers['content-range'], `bytes 100-1123/${bytes.length}`)
    tt.is(res.headers['content-length'], '1024')
    tt.true(res.body.equals(bytes.subarray(100, 1124)))
    if (t().log !== undefined) tt.deepEqual(bodyRequests().map((e) => e.range), ['bytes=100-1123'])
  })

  serial(`${label}: multipart ranges → 206 multipart/byteranges, one ranged storage read per part`, async (tt) => {
    const res = await rawRequest(url('contract/object.bin'), { headers: { Range: 'bytes=0-9,200000-200009' } })
    tt.is(res.status, 206)
    const boundary = /^multipart\/byteranges; boundary=(\w+)$/.exec(res.headers['content-type'] ?? '')?.[1]
    tt.truthy(boundary)
    tt.is(res.headers['content-length'], String(res.body.length))
    const text = res.body.toString('latin1')
    tt.true(text.includes(`Content-Range: bytes 0-9/${bytes.length}\r\n\r\n${bytes.subarray(0, 10).toString('latin1')}\r\n`))
    tt.true(text.includes(`Content-Range: bytes 200000-200009/${bytes.length}\r\n\r\n${bytes.subarray(200000, 200010).toString('latin1')}\r\n`))
    tt.true(text.endsWith(`--${boundary ?? ''}--\r\n`))
    if (t().log !== undefined) tt.deepEqual(bodyRequests().map((e) => e.range).sort(), ['bytes=0-9', 'bytes=200000-200009'])
  })

  serial(`${label}: If-None-Match with the ETag → 304 without a body transfer`, async (tt) => {
    const first = await rawRequest(url('contract/object.bin'), { method: 'HEAD' })
    t().log?.clear()
    const res = await rawRequest(url('contract/object.bin'), { headers: { 'If-None-Match': first.headers.etag ?? '' } })
    tt.is(res.status, 304)
    tt.is(res.body.length, 0)
    tt.is(res.headers.etag, first.headers.etag)
    tt.is(res.headers['content-disposition'], undefined)
    tt.is(bodyRequests().length, 0)
  })

  serial(`${label}: If-Match with another ETag → 412 without a body transfer`, async (tt) => {
    const res = await rawRequest(url('contract/object.bin'), { headers: { 'If-Match': '"not-the-etag"' } })
    tt.is(res.status, 412)
    tt.is(res.headers.etag, undefined)
    tt.is(bodyRequests().length, 0)
  })

  serial(`${label}: HEAD → 200 with the full Content-Length and no body transfer`, async (tt) => {
    const res = await rawRequest(url('contract/object.bin'), { method: 'HEAD' })
    tt.is(res.status, 200)
    tt.is(res.headers['content-length'], String(bytes.length))
    tt.is(res.body.length, 0)
    if (t().log !== undefined) {
      tt.true(t().log?.entries.length !== 0, 'the storage was asked for metadata')
      tt.is(bodyRequests().length, 0)
    }
  })

  serial(`${label}: missing object → 404 without file headers`, async (tt) => {
    const res = await rawRequest(url('contract/missing.bin'))
    tt.is(res.status, 404)
    tt.is(res.headers['content-disposition'], undefined)
    tt.is(res.headers.etag, undefined)
  })

  for (const key of hostileKeys) {
    serial(`${label}: key ${JSON.stringify(key)} (refused by flydrive's normaliser) is served`, async (tt) => {
      const res = await rawRequest(url(key))
      tt.is(res.status, 200)
      tt.is(res.body.toString(), `contents of ${key}\n`)
      tt.regex(res.headers['content-disposition'] ?? '', /^attachment; filename="[^"]+"; filename\*=UTF-8''/)
    })
  }

  if (shape.keys !== false) {
    for (const key of ['../contract/object.bin', 'contract/../contract/object.bin', './contract/object.bin']) {
      serial(`${label}: traversal key ${JSON.stringify(key)} → 404`, async (tt) => {
        const res = await rawRequest(url(key))
        tt.is(res.status, 404)
      })
    }
  }

  if (shape.server === false) return

  serial(`${label}: storage down → 502 before any file header`, async (tt) => {
    const log = t().log as RequestLog
    log.fault = 'reset'
    const res = await rawRequest(url('contract/object.bin'))
    log.fault = undefined
    tt.is(res.status, 502)
    tt.is(res.headers['content-disposition'], undefined)
    tt.is(res.headers.etag, undefined)
    tt.false(res.body.includes(bytes.subarray(0, 16)))
  })

  serial(`${label}: storage dying mid-body → the client sees a truncated response, never a clean short 200`, async (tt) => {
    const log = t().log as RequestLog
    log.fault = 'drop'
    const res = await rawRequest(url('contract/object.bin'))
    log.fault = undefined
    tt.is(res.status, 200)
    tt.is(res.headers['content-length'], String(bytes.length))
    tt.false(res.complete)
    tt.true(res.body.length < bytes.length)
  })

  serial(`${label}: storage dying mid-body on a small object (read whole before the headers) → a clean 502/504`, async (tt) => {
    const log = t().log as RequestLog
    log.fault = 'drop'
    const res = await rawRequest(url('contract/small.bin'))
    log.fault = undefined
    // 504 where the SDK hangs on the dropped connection and the idle timeout notices (GCS).
    tt.true(res.status === 502 || res.status === 504, String(res.status))
    tt.true(res.complete)
    tt.is(res.headers['content-disposition'], undefined)
    tt.false(res.body.includes(small.subarray(0, 16)))
  })

  serial(`${label}: client abort → the storage request is closed`, async (tt) => {
    const log = t().log as RequestLog
    log.fault = 'stall'
    const res = await rawRequest(url('contract/object.bin'), { abortAfterFirstChunk: true })
    tt.is(res.status, 200)
    const entry = await log.settledWhere((e) => bodyRequests().includes(e))
    log.fault = undefined
    tt.true(entry.closedEarly)
  })
}
