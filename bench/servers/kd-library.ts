// The koa-downloads servers load the library as users run it: the compiled JavaScript in dist/
// (the package's exports), not the TypeScript sources. Node's type stripper keeps its memory for
// the life of the process (about 20 MiB more RSS for the library's sources), which would count
// against koa-downloads' peak RSS and against no peer. KD_DIST: the dist/ of another checkout (the
// runner's --before tree); the runner builds both before it starts any server.
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const dist = process.env.KD_DIST ?? fileURLToPath(new URL('../../dist/', import.meta.url))

function load<T> (path: string): Promise<T> {
  return import(pathToFileURL(join(dist, path)).href) as Promise<T>
}

export const library = await load<typeof import('../../source/index.ts')>('source/index.js')

export async function adapters (): Promise<[typeof import('../../adapters/flydrive/index.ts'), typeof import('../../adapters/http/index.ts')]> {
  return await Promise.all([load<typeof import('../../adapters/flydrive/index.ts')>('adapters/flydrive/index.js'), load<typeof import('../../adapters/http/index.ts')>('adapters/http/index.js')])
}
