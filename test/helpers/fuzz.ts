import fc from 'fast-check'

// Property-based tests run with a fixed seed: a CI run is reproducible, and a red CI means that a
// change broke something, not that a new draw found an old defect (one did, in a clean-clone run:
// Apache's lenient If-Range dates). Exploring is a separate command, `npm run fuzz`:
// FUZZ_SEED=random draws a new seed for every property (fast-check prints it next to a
// counterexample, and FUZZ_SEED=<n> replays it) and FUZZ_SCALE multiplies the number of runs.
// Counterexamples found that way are added to the examples every run starts with.
// Loaded first in every test worker (the "require" of ava's configuration in package.json).

const DEFAULT_SEED = 1

/** The seed for fast-check: FUZZ_SEED, else `fixed` (the project's default unless a test needs its own), or undefined for FUZZ_SEED=random. */
export function fuzzSeed (fixed = DEFAULT_SEED): number | undefined {
  const setting = process.env.FUZZ_SEED
  if (setting === undefined || setting === '') return fixed
  if (setting === 'random') return undefined
  const seed = Number(setting)
  if (!Number.isSafeInteger(seed)) throw new TypeError(`FUZZ_SEED must be an integer or "random", not ${JSON.stringify(setting)}`)
  return seed
}

/** `n` (a number of runs, or a timeout) times FUZZ_SCALE (default 1), at least 1. */
export function fuzzScale (n: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? 1)
  if (!(scale > 0)) throw new TypeError(`FUZZ_SCALE must be a positive number, not ${JSON.stringify(process.env.FUZZ_SCALE)}`)
  return Math.max(1, Math.round(n * scale))
}

const seed = fuzzSeed()
if (seed !== undefined) fc.configureGlobal({ ...fc.readConfigureGlobal(), seed })
