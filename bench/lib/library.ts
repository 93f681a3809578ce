import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** This checkout (the runner's own). */
export const projectDir = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Compiles the library of the checkout `dir` into `dir/dist` (`tsc -p tsconfig.build.json`, this
 * checkout's TypeScript), which the koa-downloads servers load (bench/servers/kd-library.ts; the
 * `--before` tree's through KD_DIST). A failed build stops the run: stale JavaScript would be
 * measured.
 */
export async function buildLibrary (dir: string): Promise<void> {
  const tsc = join(projectDir, 'node_modules/typescript/bin/tsc')
  const child = spawn(process.execPath, [tsc, '-p', join(dir, 'tsconfig.build.json')], { stdio: ['ignore', 'inherit', 'inherit'] })
  const [code] = await once(child, 'exit') as [number | null]
  if (code !== 0) throw new Error(`building the library in ${dir} failed (tsc exit ${code})`)
}

/** The environment that makes a koa-downloads server load the library built in checkout `dir`. */
export function libraryEnv (dir: string): { KD_DIST: string } {
  return { KD_DIST: join(dir, 'dist') }
}
