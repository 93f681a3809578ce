import { closeSync, constants, fstatSync, open, readlinkSync, realpath, stat, statSync } from 'node:fs'
import type { Stats } from 'node:fs'
import { basename, isAbsolute, resolve, sep } from 'node:path'
import type { Readable } from 'node:stream'
import { debug } from './debug.ts'
import { DownloadError, fromFsError, notFound } from './errors.ts'
import { statEtag } from './etag.ts'
import { borrow, DescriptorReader, FileStream, giveBack, readExactly } from './file-stream.ts'
import { ReadAhead } from './read-ahead.ts'
import { answeredFromCache, cacheForget, cacheLookup, cacheStore, skipCacheOnce, StatCache } from './stat-cache.ts'
import type { ByteRange, DownloadFile, FileStat, OpenOptions, StatOptions } from './types.ts'

export interface PathFileOptions {
  /**
   * Confine the file to this directory: a relative `path` is resolved against it, an absolute path
   * already inside it is used as is (`/srv/media/a.pdf`), any other absolute path is read relative
   * to it (a URL path: `/a.pdf` → `<root>/a.pdf`; decoded — `decodeURIComponent(ctx.path)` or a
   * router param —, as `ctx.path` is not: `/a%20b.txt` names a file called `a%20b.txt`), and a path
   * that leaves it — lexically (`..`) or through a symlink that resolves outside — is a 404.
   */
  root?: string | undefined
  /**
   * With a `root`: check the confinement on the path as written only (lexically, as send, koa-send
   * and nginx's default `disable_symlinks off` do) and follow symlinks wherever they point. Saves
   * the symlink check that a HEAD, a conditional request (an `O_PATH` lookup) or an offload (a
   * `realpath`) otherwise costs (bench/: one thread-pool round trip per request). Only for trees
   * where nobody untrusted can create a symlink: a symlink under the root then serves whatever it
   * points to. @default false
   */
  followSymlinks?: boolean | undefined
  /** The download name. @default the basename of the path */
  name?: string | undefined
  /**
   * Share what stat() finds for up to the cache's `maxAge` with every PathFile given the same
   * cache: a 304, a 412 or a HEAD of a file stat'ed within that time makes no file system call
   * (see StatCache for what that trades). Responses that send bytes still open and check the file.
   */
  statCache?: StatCache | undefined
}

/** PathFile's multipart reader (internal: serve() only, through rangeReaderOf()). */
const openReader = Symbol('openReader')
/** PathFile's read of a single range into a lent buffer (internal: serve() only, through lendingReaderOf()). */
const readBorrowed = Symbol('readBorrowed')

/** Default chunk size of file streams (serve()'s `chunkSize`): 256 KiB moved 1.48× the bytes of Node's 64 KiB default (docs/benchmarks.md). */
export const FILE_CHUNK_SIZE = 256 * 1024

/** Whether `size` is a read size serve() accepts as `chunkSize`: an integer from 1 KiB to 8 MiB. */
export function isChunkSize (size: unknown): size is number {
  return Number.isSafeInteger(size) && (size as number) >= 1024 && (size as number) <= 8 * 1024 * 1024
}

/**
 * A file on the local filesystem. `stat()` gives an ETag from mtime + size (like nginx), strong
 * once the mtime's second is over (weak, `W/`, during it: a rewrite of the same size within that
 * second keeps the tag), and the mtime as Last-Modified; `open()` opens the file, checks that it
 * is still the file that was stat'ed (same inode, size and mtime: a file replaced in between is
 * never sent under the old validators) and streams just the requested range.
 */
export class PathFile implements DownloadFile {
  readonly name: string
  /** The absolute path; `undefined` when the path was refused (NUL byte, outside `root`), so that no offload rule can match it. */
  readonly path: string | undefined
  /** A local file has no URL: offload rules match it by `sourceDir` only. */
  readonly url?: undefined
  readonly #root: string | undefined
  /** The root, when symlinks must also stay inside it (not with `followSymlinks`). */
  readonly #realRoot: string | undefined
  readonly #refused: string | undefined
  /** What the last stat() saw, for an open()/read() not given the stat() result it follows. */
  #last: PathFileStat | undefined
  /** The descriptor stat() opened for the read announced by `willRead`, until open()/read() takes it. */
  readonly #ahead = new ReadAhead<Held>((held) => { closeSync(held.fd) })
  readonly #cache: StatCache | undefined
  /** This file's key in the cache: its path and the root its real path was checked against. */
  readonly #cacheKey: string
  /** Set by statUncached() for the stat() it calls; cleared by that stat(). */
  #skipCache = false
  /** Whether the last stat() was answered from the cache. */
  #fromCache = false

  constructor (path: string, options: PathFileOptions = {}) {
    if (typeof path !== 'string') throw new TypeError('PathFile: path must be a string')
    if (options === null || typeof options !== 'object') throw new TypeError('PathFile: options must be an object')
    // A misspelt `root` must not silently drop the confinement.
    for (const key of Object.keys(options)) {
      if (key !== 'root' && key !== 'name' && key !== 'followSymlinks' && key !== 'statCache') throw new TypeError(`PathFile: unknown option "${key}" (allowed: root, name, followSymlinks, statCache)`)
    }
    const { root, name, followSymlinks = false, statCache } = options
    if (root !== undefined && (typeof root !== 'string' || root === '')) throw new TypeError('PathFile: root must be a non-empty string')
    if (name !== undefined && typeof name !== 'string') throw new TypeError('PathFile: name must be a string')
    if (typeof followSymlinks !== 'boolean') throw new TypeError('PathFile: followSymlinks must be a boolean')
    if (statCache !== undefined && !(statCache instanceof StatCache)) throw new TypeError('PathFile: statCache must be a StatCache')
    const rootDir = root === undefined ? undefined : resolvedRoot(root)
    // With a root, an absolute path already inside it is taken as is (django-sendfile passes full
    // paths); any other absolute path is read relative to the root (koa-send style: `ctx.path`).
    // Either way the result lies inside the root.
    let absolute: string
    if (rootDir === undefined) absolute = resolve(path)
    else if (isAbsolute(path)) {
      const direct = resolve(path)
      absolute = isInside(direct, rootDir) ? direct : resolve(rootDir, `.${sep}${path}`)
    } else if (sep === '/' && path !== '' && path !== '.' && path !== '..' && !path.includes('/')) {
      // One plain segment (a file name): what resolve() would give, without its normalising pass.
      absolute = rootDir === '/' ? '/' + path : rootDir + '/' + path
    } else absolute = resolve(rootDir, path)
    let refused: string | undefined
    if (path.includes('\0')) refused = 'the path contains a NUL byte'
    else if (path === '') refused = 'the path is empty'
    // `a.txt/` (a URL with a trailing slash) names a directory, which the file is not: the OS says
    // ENOTDIR, as nginx and send answer 404. resolve() would drop the slash and serve the file.
    else if (TRAILING_SLASH.test(path)) refused = 'the path ends with a slash (a directory)'
    else if (rootDir !== undefined && !isInside(absolute, rootDir)) refused = 'the path leaves the root'
    this.#root = rootDir
    this.#realRoot = followSymlinks ? undefined : rootDir
    this.#refused = refused
    this.path = refused === undefined ? absolute : undefined
    this.name = name ?? basename(absolute)
    this.#cache = refused === undefined ? statCache : undefined
    this.#cacheKey = this.#cache === undefined ? '' : `${this.#realRoot ?? ''}\0${absolute}`
  }

  /** The confining root directory (absolute), if any. */
  get root (): string | undefined {
    return this.#root
  }

  /**
   * A file wrapper is not data: one that reaches a JSON serialiser (no `downloads()` mounted, or a
   * JSON middleware between the route and it) fails loudly instead of publishing its path.
   */
  toJSON (): never {
    throw new TypeError('koa-downloads: a PathFile reached a JSON serialiser; mount downloads() or serve() before the route (and body-transforming middleware before it)')
  }

  /**
   * The real path, once the path is known to stay inside the root (through symlinks too): a
   * rejection is a 404. Without a root, or with `followSymlinks`, the path itself, with no I/O.
   * offload() calls this alone before handing a file to a proxy, which would follow a symlink out
   * of the root.
   */
  async confine (): Promise<string> {
    const path = this.path
    if (path === undefined) throw notFound(`PathFile: ${this.#refused ?? 'refused'}`)
    const root = this.#realRoot
    if (root === undefined) return path
    try {
      const real = await realpathOf(path)
      if (!insideKnownRoot(real, root)) await confineAgain(real, root)
      return real
    } catch (error) {
      throw fromFsError(error, 'PathFile')
    }
  }

  async stat (options?: StatOptions): Promise<FileStat> {
    // Every refusal is a DownloadError (a route that stat()s the file itself to choose a fallback
    // sees E_NOT_FOUND for a missing file as for one outside the root).
    try {
      this.#ahead.drop()
      const cache = this.#cache
      if (cache !== undefined) {
        const skip = this.#skipCache
        this.#skipCache = false
        this.#fromCache = false
        // A response that sends no byte of the file may describe it as it was up to maxAge ago.
        const entry = options?.willRead === undefined && !skip ? cache[cacheLookup](this.#cacheKey) : undefined
        if (entry !== undefined) {
          this.#fromCache = true
          return this.#described(entry.stats, entry.real)
        }
      }
      // The bytes will be read next: open the descriptor now and check it instead of the path. The
      // confinement is then checked on the file actually opened (no window for a symlink swap), and
      // open() takes this descriptor (bench/: 4 → 2 thread-pool round trips per small file).
      if (options?.willRead !== undefined && this.path !== undefined && (this.#realRoot === undefined || fdPaths !== false)) {
        const held = await this.#openConfined(this.path)
        if (held !== undefined) {
          this.#ahead.hold(held)
          this.#remember(held.stats, held.real)
          return this.#described(held.stats, held.real)
        }
      }
      // Confined, where Linux can: the metadata of the very file whose location was checked (a
      // symlink swapped in after a realpath() would otherwise be followed by the stat after it).
      if (this.#realRoot !== undefined && this.path !== undefined && O_PATH !== undefined && fdPaths !== false) {
        const located = await this.#locate(this.path, this.#realRoot)
        if (located !== undefined) {
          if (!located.stats.isFile()) throw notFound('PathFile: not a regular file')
          this.#remember(located.stats, located.real)
          return this.#described(located.stats, located.real)
        }
      }
      const real = await this.confine()
      // With the default confinement, this request's realpath() has just walked every component of
      // `real` in the thread pool: the kernel holds its dentries and inode, and a stat of it cannot
      // wait on the disk, like the fstat of a descriptor just opened (bench/: one thread-pool round
      // trip per HEAD or conditional request instead of two). With no realpath, the path has not
      // been looked up yet: the stat goes to the thread pool. (Only where /proc/self/fd is missing
      // does a confined stat take this route, with its window between the realpath and the stat.)
      const stats = this.#realRoot === undefined ? await statOf(real) : statSync(real)
      if (!stats.isFile()) throw notFound('PathFile: not a regular file')
      this.#remember(stats, real)
      return this.#described(stats, real)
    } catch (error) {
      this.#forget()
      throw fromFsError(error, 'PathFile')
    }
  }

  /** Internal (statUncached()): the next stat() looks at the file itself. */
  [skipCacheOnce] (): void {
    this.#skipCache = true
  }

  /** Internal (statWasCached()): whether the last stat() came from the cache. */
  get [answeredFromCache] (): boolean {
    return this.#fromCache
  }

  /** A fresh look at the file, for the cache if it has one. */
  #remember (stats: Stats, real: string): void {
    if (this.#cache !== undefined) this.#cache[cacheStore](this.#cacheKey, stats, real)
  }

  /** The file is gone, changed or refused: the cache, if it has one, forgets what it held. */
  #forget (): void {
    if (this.#cache !== undefined) this.#cache[cacheForget](this.#cacheKey)
  }

  /** The stat() result, remembering what was stat'ed: the open() or read() of the same response checks against it. */
  #described (stats: Stats, real: string): FileStat {
    const described = new PathFileStat(this, stats, real)
    this.#last = described
    return described
  }

  /**
   * Opens `path` and checks, on the descriptor, that it is a regular file inside the root.
   * `undefined` when that cannot be done here (no /proc/self/fd, or the open failed): stat() then
   * takes the path route, which gives every failure its usual answer (outside the root → 404 even
   * when the target is unreadable, and so on).
   */
  async #openConfined (path: string): Promise<Held | undefined> {
    let fd: number
    try {
      // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
      fd = await openOf(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
    } catch {
      return undefined
    }
    try {
      const stats = fstatSync(fd)
      if (!stats.isFile()) throw notFound('PathFile: not a regular file')
      const root = this.#realRoot
      if (root !== undefined) {
        const real = fdPath(fd)
        if (real === undefined) {
          closeSync(fd)
          return undefined
        }
        if (!insideKnownRoot(real, root)) await confineAgain(real, root)
        return { fd, stats, real }
      }
      return { fd, stats, real: path }
    } catch (error) {
      closeSync(fd)
      throw error
    }
  }

  /**
   * The file at `path` and where it really is, from an O_PATH descriptor: a handle on the file
   * that opens nothing (no read permission needed, no FIFO or device opened), so a HEAD, 304 or
   * 412 still starts no read. Its fstat and its /proc/self/fd path describe the same inode, the
   * one the kernel reached through any symlinks at that moment, so no swap can slip in between
   * the confinement check and the metadata. `undefined` where /proc/self/fd does not tell.
   */
  async #locate (path: string, root: string): Promise<{ stats: Stats, real: string } | undefined> {
    const fd = await openOf(path, O_PATH as number)
    try {
      const real = fdPath(fd)
      if (real === undefined) return undefined
      if (!insideKnownRoot(real, root)) await confineAgain(real, root)
      return { stats: fstatSync(fd), real }
    } finally {
      closeSync(fd)
    }
  }

  async open (range?: ByteRange, options?: OpenOptions): Promise<Readable> {
    const { fd, stats } = await this.#openChecked(options?.stat)
    const start = range?.start ?? 0
    const end = range?.end ?? stats.size - 1
    return new FileStream(fd, start, end, chunkSizeOf(options?.chunkSize), stats)
  }

  /** Small-file fast path for serve(): the bytes as one buffer, read with a single syscall where possible. */
  // Not async itself: no second promise per small file (the 4 KiB path is CPU-bound, bench/).
  read (range?: ByteRange, options?: OpenOptions): Promise<Buffer> {
    return this.#read(range, options, false)
  }

  /** read(), into a buffer from borrow(): for a body that serve() lends to the response (see lendingReaderOf()). */
  [readBorrowed] (range: ByteRange, options?: OpenOptions): Promise<Buffer> {
    return this.#read(range, options, true)
  }

  async #read (range: ByteRange | undefined, options: OpenOptions | undefined, borrowed: boolean): Promise<Buffer> {
    const { fd, stats } = await this.#openChecked(options?.stat)
    const start = range?.start ?? 0
    const length = (range?.end ?? stats.size - 1) - start + 1
    const buffer = borrowed ? borrow(length) : Buffer.allocUnsafe(length)
    try {
      return await readExactly(fd, start, length, buffer)
    } catch (error) {
      // Nobody saw a borrowed buffer yet: back to the pool.
      if (borrowed) giveBack(buffer)
      throw error
    } finally {
      closeSync(fd)
    }
  }

  /**
   * For a multipart response (serve()): one descriptor, checked as open() checks it, from which
   * every part is read in turn.
   */
  async [openReader] (options?: OpenOptions): Promise<DescriptorReader> {
    const { fd, stats } = await this.#openChecked(options?.stat)
    return new DescriptorReader(fd, stats)
  }

  // The descriptor calls that cannot block on the disk (fstat and close of an open, read-only
  // descriptor) are made synchronously: each thread-pool round trip costs more CPU than the call
  // itself, and at 4 KiB the request is CPU-bound (bench/: 6 → 4 round trips per small file).
  //
  // `planned`: the stat() result the response was planned with (serve() passes it). One instance
  // may serve concurrent requests (a PathFile made once at startup): the bytes must then be those
  // of the file this request's stat() described, not of whatever a later stat() saw.
  async #openChecked (planned: FileStat | undefined): Promise<Held> {
    const seen = PathFileStat.of(planned, this) ?? this.#last
    // The descriptor stat() opened and checked in this same turn: nothing to check again.
    const held = this.#ahead.take()
    if (held !== undefined) {
      if (seen === undefined || sameFile(held.stats, seen.stats)) return held
      closeSync(held.fd)
    }
    if (seen === undefined) {
      await this.stat()
      return await this.#openChecked(undefined)
    }
    // A new descriptor: the file must still be the one stat'ed (rewritten in place meanwhile → new
    // size or mtime; replaced → new inode). Where /proc tells, the path itself is opened again and
    // the descriptor's own location checked, as for a read announced to stat() (a symlink swapped
    // in since would lead out of the root; the real path /proc gave stat() may name a file since
    // unlinked, "… (deleted)", and a replaced file must be E_CHANGED, not a missing one). Without
    // /proc, the real path stat() resolved. O_NONBLOCK: a FIFO renamed over the file must not hold
    // a thread-pool thread waiting for a writer (sameFile() refuses it just below).
    const root = this.#realRoot
    const checked = root !== undefined && fdPaths === true
    let fd: number
    try {
      fd = await openOf(checked ? this.path ?? seen.real : seen.real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
    } catch (error) {
      // As stat() reports them: a file gone or unreadable is a DownloadError (E_NOT_FOUND,
      // E_FORBIDDEN), and the fs message's path has its control characters escaped.
      this.#forget()
      throw fromFsError(error, 'PathFile')
    }
    try {
      const real = checked ? fdPath(fd) : undefined
      if (root !== undefined && real !== undefined && !insideKnownRoot(real, root)) await confineAgain(real, root)
      const stats = fstatSync(fd)
      // A cached stat() that no longer describes the file is forgotten: the response planned
      // again (serve(): E_CHANGED) looks at the file itself.
      if (!sameFile(stats, seen.stats)) throw new DownloadError('E_CHANGED', 'PathFile: the file changed between stat() and open()')
      this.#remember(stats, real ?? seen.real)
      return { fd, stats, real: real ?? seen.real }
    } catch (error) {
      closeSync(fd)
      this.#forget()
      throw error
    }
  }
}

// Callback fs rather than fs/promises: FileHandle objects and their promises cost measurably more
// per call on the small-file path (bench/).
function realpathOf (path: string): Promise<string> {
  return new Promise((resolve, reject) => { realpath.native(path, (error, real) => { if (error === null) resolve(real); else reject(error) }) })
}

function statOf (path: string): Promise<Stats> {
  return new Promise((resolve, reject) => { stat(path, (error, stats) => { if (error === null) resolve(stats); else reject(error) }) })
}

function openOf (path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => { open(path, flags, (error, fd) => { if (error === null) resolve(fd); else reject(error) }) })
}

interface Held { fd: number, stats: Stats, real: string }

/** The same file, unchanged: same inode, size and mtime. */
function sameFile (a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs
}

/**
 * What PathFile.stat() returns: a plain FileStat to everyone else, which also remembers (privately)
 * what it describes, so that an open() or read() given it checks the file against that.
 */
class PathFileStat implements FileStat {
  readonly size: number
  readonly lastModified: Date | undefined
  readonly etag: string
  readonly #owner: PathFile
  readonly #stats: Stats
  readonly #real: string

  constructor (owner: PathFile, stats: Stats, real: string) {
    this.size = stats.size
    this.lastModified = stats.mtimeMs >= 1000 ? new Date(Math.floor(stats.mtimeMs / 1000) * 1000) : undefined
    this.etag = statEtag(stats.mtimeMs, stats.size, Date.now())
    this.#owner = owner
    this.#stats = stats
    this.#real = real
  }

  /** The file's stats, as stat() found them. */
  get stats (): Stats {
    return this.#stats
  }

  /** The real path stat() checked. */
  get real (): string {
    return this.#real
  }

  /** `stat` when it is a result of `owner`'s own stat(), else undefined. */
  static of (stat: FileStat | undefined, owner: PathFile): PathFileStat | undefined {
    return stat !== undefined && #owner in stat && (stat as PathFileStat).#owner === owner ? stat as PathFileStat : undefined
  }
}

/** Linux's O_PATH (the asm-generic value, which every architecture Node supports on Linux uses); Node does not export it. */
const O_PATH = process.platform === 'linux' ? 0o10000000 : undefined

/** A path ending in a separator, or in a separator and `.` (a backslash is a file name character on POSIX). */
const TRAILING_SLASH = sep === '/' ? /\/\.?$/ : /[/\\]\.?$/

/** The `chunkSize` hint when it is a sane read size, else the default. */
function chunkSizeOf (hint: number | undefined): number {
  return isChunkSize(hint) ? hint : FILE_CHUNK_SIZE
}

/**
 * Whether /proc/self/fd names open descriptors (Linux): `undefined` until first tried, `false`
 * where it does not, and then every file takes the realpath route.
 */
let fdPaths: boolean | undefined = process.platform === 'linux' ? undefined : false

/** The path of the file open on `fd`, as the kernel resolved it (symlinks included), where /proc tells. */
function fdPath (fd: number): string | undefined {
  try {
    const path = readlinkSync(`/proc/self/fd/${fd}`)
    fdPaths = true
    return path
  } catch {
    if (fdPaths === undefined) fdPaths = false
    return undefined
  }
}

/**
 * Whether `real` is inside the root's real path as already resolved: the synchronous check of
 * every confined request. False also before the root was first resolved; confineAgain() decides.
 */
function insideKnownRoot (real: string, root: string): boolean {
  const known = realRootsResolved.get(root)
  return known !== undefined && isInside(real, known)
}

/**
 * For a real path not known to be inside the root (see insideKnownRoot()): resolves the root if it
 * never was, and otherwise again, since its own symlinks may have moved since (a `current →
 * releases/N` deploy switched to another release); refuses `real` (a 404) unless it is inside the
 * root as it resolves now, which is kept for the next requests. Only a first request and a refusal
 * cost a realpath.
 */
async function confineAgain (real: string, root: string): Promise<void> {
  if (!realRootsResolved.has(root) && isInside(real, await realRoot(root))) return
  let now: string | undefined
  try {
    now = await realpathOf(root)
  } catch {}
  if (now !== undefined && now !== realRootsResolved.get(root)) {
    debug('PathFile: the root %s now resolves to %s', root, now)
    if (realRoots.has(root)) realRoots.set(root, Promise.resolve(now))
    if (realRootsResolved.has(root)) realRootsResolved.set(root, now)
    if (isInside(real, now)) return
  }
  throw notFound('PathFile: a symlink resolves outside the root')
}

/** resolve(root), kept for absolute roots (whose resolution does not depend on the working directory): a few per app. */
function resolvedRoot (root: string): string {
  let dir = resolvedRoots.get(root)
  if (dir === undefined) {
    dir = resolve(root)
    if (isAbsolute(root) && resolvedRoots.size < 64) resolvedRoots.set(root, dir)
  }
  return dir
}
const resolvedRoots = new Map<string, string>()

/**
 * Whether `path` is `dir` or below it. The same as `path.startsWith(dir + sep)` (or `dir` when it
 * ends with a separator), without building that string per call: `new PathFile()`, which every
 * local download makes, took 330 instead of 370 ns (docs/benchmarks.md, item 58).
 */
function isInside (path: string, dir: string): boolean {
  if (path === dir) return true
  if (dir.endsWith(sep)) return path.startsWith(dir)
  return path.length > dir.length && path.charCodeAt(dir.length) === SEP_CODE && path.startsWith(dir)
}
const SEP_CODE = sep.charCodeAt(0)

const realRoots = new Map<string, Promise<string>>()
const realRootsResolved = new Map<string, string>()

/** The root's own symlinks are the administrator's choice: resolved once, and again when a path seems to leave the root (confineAgain()). */
function realRoot (root: string): Promise<string> {
  let real = realRoots.get(root)
  if (real === undefined) {
    real = realpathOf(root)
    real.then((resolved) => { if (realRootsResolved.size < 1000) realRootsResolved.set(root, resolved) }, () => realRoots.delete(root))
    if (realRoots.size < 1000) realRoots.set(root, real)
  }
  return real
}

/**
 * How serve() reads the parts of a multipart response from `file` through one descriptor: a
 * PathFile whose open() and read() are its own. A subclass that overrides either (to transform
 * the bytes, say) is served as any source is: its read() per part for a body within bufferSize,
 * its open() per part above it.
 */
export function rangeReaderOf (file: DownloadFile): ((options: OpenOptions) => Promise<DescriptorReader>) | undefined {
  if (!readsItself(file)) return undefined
  // Not an async wrapper: no second promise per response (as read()).
  return (options) => file[openReader](options)
}

/** A PathFile whose open() and read() are PathFile's own (no subclass transforms its bytes). */
function readsItself (file: DownloadFile): file is PathFile {
  return file instanceof PathFile && file.open === PathFile.prototype.open && file.read === PathFile.prototype.read
}

/**
 * How serve() reads a single range of `file` into a buffer it lends to the response (taken back once
 * written: file-stream.ts, lendTo()): a PathFile whose open() and read() are its own, as for
 * rangeReaderOf(). Any other source's read() gives buffers of its own.
 */
export function lendingReaderOf (file: DownloadFile): ((range: ByteRange, options: OpenOptions) => Promise<Buffer>) | undefined {
  if (!readsItself(file)) return undefined
  return (range, options) => file[readBorrowed](range, options)
}
