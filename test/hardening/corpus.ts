import { readFileSync } from 'node:fs'

/** One attack string from test/fixtures/traversal/payloads.json, before placeholders are filled. */
export interface Payload {
  category: string
  payload: string
}

type Entry = string | { repeat: string, times: number, then: string }

interface CorpusFile {
  payloads: Record<string, Entry[]>
  combine: { dots: string[], separators: string[], depths: number[], targets: string[] }
}

const file = JSON.parse(readFileSync(new URL('../fixtures/traversal/payloads.json', import.meta.url), 'utf8')) as CorpusFile

/** Every payload of the corpus: the listed ones, the long ones expanded, and every (dots × separator × depth) walk. */
export function loadCorpus (): Payload[] {
  const result: Payload[] = []
  for (const [category, entries] of Object.entries(file.payloads)) {
    for (const entry of entries) {
      result.push({ category, payload: typeof entry === 'string' ? entry : entry.repeat.repeat(entry.times) + entry.then })
    }
  }
  const { dots, separators, depths, targets } = file.combine
  for (const dot of dots) {
    for (const sep of separators) {
      for (const depth of depths) {
        for (const target of targets) result.push({ category: 'combined', payload: (dot + sep).repeat(depth) + target })
      }
    }
  }
  return result
}

export interface Places {
  /** Absolute path of a decoy outside the root. */
  secret: string
  root: string
}

/** Fills {SECRET}, {ROOT}, {ROOTNAME}. */
export function fill (payload: string, places: Places): string {
  const rootName = places.root.slice(places.root.lastIndexOf('/') + 1)
  return payload.replaceAll('{SECRET}', places.secret).replaceAll('{ROOTNAME}', rootName).replaceAll('{ROOT}', places.root)
}

/** decodeURIComponent that gives undefined instead of throwing on a bad escape or invalid UTF-8. */
export function tryDecode (value: string): string | undefined {
  try {
    return decodeURIComponent(value)
  } catch {
    return undefined
  }
}

/**
 * The forms an application may hand to the library: the string as the client sent it (a raw
 * `ctx.path`), decoded once (router params, `decodeURIComponent(ctx.path)`), decoded twice (a
 * careless double decode). Duplicates removed.
 */
export function variants (payload: string): string[] {
  const once = tryDecode(payload)
  const twice = once === undefined ? undefined : tryDecode(once)
  return [...new Set([payload, once, twice].filter((v): v is string => v !== undefined))]
}

/** A short, printable label for a test title or failure message. */
export function label (value: string): string {
  const json = JSON.stringify(value)
  return json.length > 80 ? `${json.slice(0, 60)}…(${value.length} chars)` : json
}
