import type { Stats } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { FileStat } from './types.ts'

export interface StatCacheOptions {
  /**
   * How long, in milliseconds, what a PathFile's stat() found answers the requests that send no
   * byte of the file (a 304, a 412, a HEAD): up to this long after a change, they describe the
   * file as it was. @default 1000
   */
  maxAge?: number | undefined
  /** How many files it remembers at most; the one looked at longest ago makes room for a new one. @default 10000 */
  maxEntries?: number | undefined
}

/** One file as a PathFile's stat() found it: its stats, its real path (checked inside the root), and until when they stand (on the monotonic clock). */
export interface StatCacheEntry { readonly stats: Stats, readonly real: string, readonly until: number }

/** Internal: PathFile's access to the entries (not part of the public API). */
export const cacheLookup = Symbol('cacheLookup')
export const cacheStore = Symbol('cacheStore')
export const cacheForget = Symbol('cacheForget')

/**
 * Internal (offload(), serve()): a DownloadFile whose stat() may answer from a StatCache. PathFile
 * implements it; a subclass inherits it whatever its own stat() does with its options (the
 * documented wrappers copy the result, some call `super.stat()` with none).
 */
export interface StatCacheUser {
  /** Makes the next stat() of this file look at the file itself, whatever the cache holds. */
  [skipCacheOnce] (): void
  /** Whether the last stat() of this file was answered from the cache. */
  readonly [answeredFromCache]: boolean
}
export const skipCacheOnce = Symbol('skipCacheOnce')
export const answeredFromCache = Symbol('answeredFromCache')

/** The stat() of `file` as a look at the file itself, never from a StatCache. */
export async function statUncached<T> (file: { stat (options?: T): Promise<FileStat> }, options?: T): Promise<FileStat> {
  if (skipCacheOnce in file) (file as unknown as StatCacheUser)[skipCacheOnce]()
  return await file.stat(options)
}

/** Whether the last stat() of `file` came from a StatCache. */
export function statWasCached (file: object): boolean {
  return answeredFromCache in file && (file as StatCacheUser)[answeredFromCache]
}

/**
 * What PathFile's stat() found, remembered for `maxAge` ms and shared by every PathFile given it
 * (`new PathFile(path, { root, statCache })`), as nginx's `open_file_cache` does for its own
 * files. Within that time a revalidation (304), a failed precondition (412) or a HEAD of the same
 * file makes no file system call at all: no thread-pool round trip, no confinement check.
 *
 * A response that sends bytes opens the file and checks the descriptor as ever (inside the root,
 * still the file the validators describe), and a file found changed or gone then is forgotten and
 * the response planned again from the file itself. So what the cache trades is the freshness of
 * the metadata alone: for up to `maxAge` after a file is rewritten, replaced, removed or moved out
 * of the root, a HEAD may show its old length and validators, a client holding the old ETag may
 * get a 304 (as from any cache in front of the app), and a route's own `stat()` may find the file
 * still there. An offload never takes its confinement check or its validators from it (the proxy
 * reads the file itself, and answers If-Range with those validators), and a 416 is only ever
 * judged on the file's current size. Every response that opens the file renews the entry
 * with what the descriptor shows. Opt-in, for files that change rarely relative to how often they
 * are revalidated.
 */
export class StatCache {
  readonly maxAge: number
  readonly maxEntries: number
  readonly #entries = new Map<string, StatCacheEntry>()

  constructor (options: StatCacheOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('StatCache: options must be an object')
    for (const key of Object.keys(options)) {
      if (key !== 'maxAge' && key !== 'maxEntries') throw new TypeError(`StatCache: unknown option "${key}" (allowed: maxAge, maxEntries)`)
    }
    const { maxAge = 1000, maxEntries = 10_000 } = options
    if (!Number.isSafeInteger(maxAge) || maxAge < 1 || maxAge > 2_147_483_647) throw new TypeError('StatCache: maxAge must be an integer from 1 to 2147483647 (ms)')
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new TypeError('StatCache: maxEntries must be a positive integer')
    this.maxAge = maxAge
    this.maxEntries = maxEntries
  }

  /** How many files it remembers now (expired entries included until they are looked up or pushed out). */
  get size (): number {
    return this.#entries.size
  }

  /** Forgets every file (after a deploy that replaced files in place, say). */
  clear (): void {
    this.#entries.clear()
  }

  [cacheLookup] (key: string): StatCacheEntry | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    // The monotonic clock: a wall clock set back (NTP) must not stretch an entry's life.
    if (performance.now() < entry.until) return entry
    this.#entries.delete(key)
    return undefined
  }

  [cacheStore] (key: string, stats: Stats, real: string): void {
    // Re-inserted, so that the Map's order stays the order of the last look at each file.
    this.#entries.delete(key)
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value as string)
    this.#entries.set(key, { stats, real, until: performance.now() + this.maxAge })
  }

  [cacheForget] (key: string): void {
    this.#entries.delete(key)
  }
}
