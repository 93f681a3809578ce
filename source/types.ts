import type { Readable } from 'node:stream'

/**
 * What a file wrapper knows about its bytes. Every field is optional: a generated stream may know
 * nothing at all, and then it is sent chunked, without validators and without range support.
 */
export interface FileStat {
  /** Length in bytes. `undefined` = unknown: no Content-Length, no ranges. */
  size?: number | undefined
  /** Modification time. Omitted from the response when unknown or the Unix epoch. */
  lastModified?: Date | undefined
  /**
   * A complete entity-tag, quotes included: `"abc"` (strong) or `W/"abc"` (weak). Anything else
   * (`abc`, a control character) is left out of the response and its comparisons, with a debug line.
   */
  etag?: string | undefined
  /** The type the source declares (storage metadata, upstream header), used verbatim. */
  contentType?: string | undefined
  /**
   * The content coding the bytes are stored in (`gzip`, `br`: an object uploaded with
   * `Content-Encoding` metadata), sent as `Content-Encoding`. `size`, ranges and validators then
   * describe the encoded bytes, as the storage itself serves them; a request for several ranges gets
   * the whole file (a multipart body has no place for a coding). A client whose Accept-Encoding
   * refuses a single gzip, deflate or br coding gets the bytes decoded (no length, no ranges, the
   * ETag suffixed `-decoded`); both answers say `Vary: Accept-Encoding`. `identity`, `aws-chunked`,
   * or a value that is not a list of tokens, is ignored.
   */
  contentEncoding?: string | undefined
  /**
   * Whether `open({ start, end })` reads just that range at the source.
   * @default true when `size` is known
   */
  ranges?: boolean | undefined
}

/** An inclusive byte range, as in `Content-Range: bytes start-end/size`. */
export interface ByteRange {
  start: number
  end: number
}

/** Per-request context handed to a file wrapper, so that it can stop work the client no longer wants. */
export interface OpenOptions {
  /** Aborted when the client goes away; sources that hold sockets must honour it. */
  signal?: AbortSignal | undefined
  /**
   * The read size `serve()` asks streamed bytes to come in (its `chunkSize` option). A hint: a
   * local file reads exactly this much per chunk; sources whose chunks come from elsewhere (a
   * socket, an SDK) may ignore it.
   */
  chunkSize?: number | undefined
  /**
   * The `stat()` result the response was planned with (`serve()` passes it to `open()` and
   * `read()`). A source whose `stat()` looks again on every call (a local file) checks the bytes
   * it opens against this one, so that an instance shared by concurrent requests never sends one
   * request's bytes under the validators of another's `stat()`.
   */
  stat?: FileStat | undefined
}

/** What `serve()` tells `stat()` about the response it is planning. */
export interface StatOptions extends Omit<OpenOptions, 'stat'> {
  /**
   * Set when the bytes will be read right after `stat()` — a GET with no precondition that could
   * answer 304 or 412 — so that a source may start opening them now and hand what it opened to the
   * `open()` or `read()` that follows (a local file opens its descriptor instead of stat-ing its
   * path: one thread-pool round trip instead of three). `'whole'`: the response is the whole file
   * (200). `'range'`: the request asks for one range, so it may be a part (206) — or nothing at all
   * when the size makes the range unsatisfiable (416), and then what was opened is released unread.
   * (A request for several ranges announces nothing: multipart opens each part as it is sent.)
   * A source that opened something must release it by itself if no `open()`/`read()` follows
   * within the same turn of the event loop.
   */
  willRead?: 'whole' | 'range' | undefined
  /**
   * With `willRead: 'range'`, the client's Range header when it asks for exactly one plain range
   * (`bytes=a-b`, `bytes=a-`, `bytes=-n`) and carries no If-Range: a remote source may send it
   * upstream with the one request that also gives the metadata, and hand that part to the
   * `open(range)` that follows when the range planned from the size is the one the upstream sent.
   */
  range?: string | undefined
}

/**
 * Bytes that live somewhere: a local path, a storage object, a remote URL, memory, a generator.
 *
 * `stat()` is called before anything is opened (apart from what `willRead` invites), usually once
 * per request: again when an offload rule hands the request back to `serve()` (Apache and lighttpd
 * get a 304 or 412 from the app) and when `serve()` plans anew after `open()` found the file
 * changed. A wrapper whose `stat()` is costly (a request to a service) keeps its result for the
 * request. `open()` is called only when bytes are actually sent (never for HEAD, 304, 412, 416 or
 * an offloaded response), once per range for multipart responses.
 */
export interface DownloadFile {
  /** The download name (the basename, decoded), used for Content-Type and Content-Disposition. */
  readonly name: string
  /** Absolute local path, when the bytes are a local file: offload rules match `sourceDir` on it. */
  readonly path?: string | undefined
  /** Where the bytes are reachable over HTTP: offload rules match `sourceUrl` on it. */
  readonly url?: string | undefined
  /**
   * A Content-Type known without I/O (a database record's type column): for responses that stat
   * nothing (a file offloaded by its URL), and when `stat()` gives no `contentType`. A type
   * `stat()` gives wins.
   */
  readonly contentType?: string | undefined
  /**
   * `true` when the origin at `url` may send the bytes with a stored Content-Encoding whatever the
   * client accepts (S3 does; HTTP origins negotiate). Offloading such a file to an
   * origin then stats it first for a client whose Accept-Encoding refuses gzip (and that asks for no
   * Range), and leaves a coded one to `serve()`, which decodes it for that client (or refuses it:
   * HttpFile, 502). StorageFile and HttpFile set it.
   */
  readonly sendsStoredCoding?: boolean | undefined
  stat(options?: StatOptions): Promise<FileStat>
  open(range?: ByteRange, options?: OpenOptions): Promise<Readable>
  /**
   * Optional fast path for small files of random-access sources: the bytes (of `range`) as one
   * buffer. `serve()` uses it instead of `open()` for responses up to its `bufferSize`.
   */
  read?(range?: ByteRange, options?: OpenOptions): Promise<Uint8Array>
  /**
   * Optional, for a wrapper that holds a resource before `open()` (VirtualFile: the stream it was
   * given): `serve()` calls it when the response carries none of the bytes — HEAD, 304, 412, 416,
   * or an error — and never once `open()` or `read()` has handed them over.
   */
  [Symbol.dispose]?(): void
}

/** How to present a file. */
export interface DownloadOptions {
  /**
   * `true` → `Content-Disposition: attachment` (the browser saves the file);
   * `false` → `inline` (the browser displays it when it can). Both carry the filename.
   * @default true
   */
  attachment?: boolean | undefined
  /**
   * The name offered to the user. `''` sends the bare disposition type without a filename (the Content-Type still comes from the file's own name).
   * @default file.name
   */
  filename?: string | undefined
  /**
   * The Content-Type, used verbatim.
   * @default the source's declared type, else looked up from the filename (`; charset=utf-8` for text)
   */
  contentType?: string | undefined
  /**
   * The Cache-Control header of the download (also sent on 304 and offloaded responses).
   * @default `'private'`, unless the route set a Cache-Control of its own (kept): a response with a
   * Last-Modified and no Cache-Control may be stored by a shared cache and handed to other users
   * (RFC 9111 §4.2.2)
   * @example 'private, max-age=3600'
   */
  cacheControl?: string | undefined
  /**
   * For an inline download (`attachment: false`) of a type a browser may run script in — HTML, SVG,
   * XML, an unknown type it would sniff; not images, audio, video, PDF, plain text, CSV or JSON —,
   * `Content-Security-Policy: sandbox` (no script, no form, an opaque origin), beside any policy the
   * app set: an uploaded page renders but runs nothing in the app's origin. `false` for the app's own
   * pages served as files (an SPA's index.html through sendfile()).
   * @default true
   */
  sandbox?: boolean | undefined
}
