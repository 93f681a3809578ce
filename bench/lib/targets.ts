import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../test/helpers/free-port.ts'
import type { Fixtures } from './fixtures.ts'
import { libraryEnv } from './library.ts'
import { nginxConfig } from './nginx-config.ts'
import { startNginx, startNode } from './processes.ts'
import type { Child } from './processes.ts'

export type TargetId = 'kd' | 'kd-before' | 'kd-cache' | 'kd-storage-before' | 'kd-offload-before' | 'kd-follow' | 'kd-offload-follow' | 'kd-offload-refuse' | 'koa-floor' | 'kd-storage' | 'raw-storage' | 'koa-raw' | 'koa-send' | 'fastify-send' | 'send-http' | 'nginx' | 'kd-offload' | 'xaccel-hand' | 'kd-via-nginx'

/** The targets measured through the bench's nginx (its `via(...)` URLs below): nginx static, the offloads, the proxy in front of Node. */
export function servedByNginx (id: TargetId): boolean {
  return id === 'nginx' || id === 'xaccel-hand' || id === 'kd-via-nginx' || id.startsWith('kd-offload')
}

export interface Target {
  id: TargetId
  label: string
  /** the URL of `/files/<name>` on this target */
  url (name: string): string
  /** the Node process whose peak RSS is reported (none for nginx static) */
  node: Child | undefined
}

export const targetLabels: Record<TargetId, string> = {
  kd: 'koa-downloads (Node streams)',
  'kd-before': 'koa-downloads, --before tree',
  'kd-follow': 'koa-downloads, followSymlinks: true',
  'kd-cache': 'koa-downloads, statCache (maxAge 1 s)',
  'kd-offload-follow': 'kd + nginx offload, followSymlinks: true',
  'kd-offload-refuse': 'kd + nginx offload, proxyRefusesSymlinks',
  'koa-floor': 'Koa from memory, no file I/O (ceiling)',
  'kd-storage': 'koa-downloads (StorageFile / HttpFile)',
  'kd-storage-before': 'koa-downloads storage/remote, --before tree',
  'kd-offload-before': 'kd + nginx offload, --before tree',
  'raw-storage': 'Koa + GetObject / http.get pipe (baseline)',
  'koa-raw': 'Koa + fs.createReadStream (baseline)',
  'koa-send': 'Koa + koa-send',
  'fastify-send': 'Koa + @fastify/send',
  'send-http': 'node:http + send',
  nginx: 'nginx static (sendfile)',
  'kd-offload': 'koa-downloads + nginx offload',
  'xaccel-hand': 'nginx + hand-written X-Accel-Redirect',
  'kd-via-nginx': 'nginx in front, koa-downloads streams'
}

/** The Node peers (the "best Node peer" of the targets). */
export const nodePeers: readonly TargetId[] = ['koa-send', 'fastify-send', 'send-http']

const serverDir = fileURLToPath(new URL('../servers/', import.meta.url))

export { freePort }

/**
 * Starts every server; `nodeArgs` (e.g. --cpu-prof) go to the koa-downloads processes only.
 * `before`: another checkout of the project (e.g. `git archive HEAD~1`) whose library, built into its
 * dist/, runs in this checkout's streaming server as the extra target `kd-before` (and in its offload
 * server, behind the same nginx, as `kd-offload-before`), for before/after
 * figures of a core change in one run (the same server script: only the library differs).
 */
export async function startTargets (fixtures: Fixtures, storageEnv: Record<string, string> | undefined, nodeArgs: string[], before?: string): Promise<Map<TargetId, Target>> {
  const logDir = join(fixtures.dir, 'logs')
  mkdirSync(logDir, { recursive: true })
  const env = { BENCH_ROOT: fixtures.root }
  const start = (name: string, kd: boolean, script = name, extra: Record<string, string> = {}): Promise<Child> =>
    startNode(name, join(serverDir, `${script}.ts`), { ...env, ...extra }, logDir, kd ? nodeArgs : [])
  // kd-via-nginx has its own process (same script as kd), so that each one's peak RSS is its own
  const follow = { KD_FOLLOW_SYMLINKS: '1' }
  const [kd, raw, koaSend, fastify, sendHttp, kdOffload, xaccel, kdProxied, floor, kdFollow, kdOffloadFollow, kdOffloadRefuse, kdCache] = await Promise.all([
    start('kd-stream', true), start('koa-raw', false), start('koa-send', false), start('fastify-send', false),
    start('send-http', false), start('kd-offload', true), start('xaccel-hand', false), start('kd-proxied', true, 'kd-stream'),
    start('koa-floor', false), start('kd-follow', true, 'kd-stream', follow), start('kd-offload-follow', true, 'kd-offload', follow),
    start('kd-offload-refuse', true, 'kd-offload', { KD_PROXY_REFUSES_SYMLINKS: '1' }), start('kd-cache', true, 'kd-stream', { KD_STAT_CACHE: '1' })
  ])
  // The offload app with the other library, behind the same nginx (its own location, the same
  // internal one): before/after of the offload path.
  const kdOffloadBefore = before === undefined ? undefined : await start('kd-offload-before', true, 'kd-offload', libraryEnv(before))
  const prefix = join(fixtures.dir, 'nginx')
  mkdirSync(join(prefix, 'tmp'), { recursive: true })
  const listen = await freePort()
  const proxy = await startNginx(prefix, nginxConfig(prefix, fixtures.root, { listen, kdOffload: kdOffload.port, kdOffloadFollow: kdOffloadFollow.port, kdOffloadRefuse: kdOffloadRefuse.port, kdOffloadBefore: kdOffloadBefore?.port, kdStream: kdProxied.port, xaccel: xaccel.port }), listen)

  const direct = (child: Child) => (name: string) => `http://127.0.0.1:${child.port}/files/${name}`
  const via = (location: string) => (name: string) => `http://127.0.0.1:${proxy.port}/${location}/${name}`
  const list: Target[] = [
    { id: 'kd', label: targetLabels.kd, url: direct(kd), node: kd },
    { id: 'koa-raw', label: targetLabels['koa-raw'], url: direct(raw), node: raw },
    { id: 'koa-send', label: targetLabels['koa-send'], url: direct(koaSend), node: koaSend },
    { id: 'fastify-send', label: targetLabels['fastify-send'], url: direct(fastify), node: fastify },
    { id: 'send-http', label: targetLabels['send-http'], url: direct(sendHttp), node: sendHttp },
    { id: 'nginx', label: targetLabels.nginx, url: via('direct'), node: undefined },
    { id: 'kd-offload', label: targetLabels['kd-offload'], url: via('files'), node: kdOffload },
    { id: 'xaccel-hand', label: targetLabels['xaccel-hand'], url: via('xaccel'), node: xaccel },
    { id: 'kd-via-nginx', label: targetLabels['kd-via-nginx'], url: via('stream'), node: kdProxied },
    { id: 'koa-floor', label: targetLabels['koa-floor'], url: direct(floor), node: floor },
    { id: 'kd-follow', label: targetLabels['kd-follow'], url: direct(kdFollow), node: kdFollow },
    { id: 'kd-cache', label: targetLabels['kd-cache'], url: direct(kdCache), node: kdCache },
    { id: 'kd-offload-follow', label: targetLabels['kd-offload-follow'], url: via('files-follow'), node: kdOffloadFollow },
    { id: 'kd-offload-refuse', label: targetLabels['kd-offload-refuse'], url: via('files-refuse'), node: kdOffloadRefuse }
  ]
  if (storageEnv !== undefined) {
    // separate processes, so that the SDKs do not weigh on the local-file servers' memory
    const [kdStorage, rawStorage] = await Promise.all([start('kd-storage', true, 'kd-stream', storageEnv), start('raw-storage', false, 'koa-raw', storageEnv)])
    list.push({ id: 'kd-storage', label: targetLabels['kd-storage'], url: direct(kdStorage), node: kdStorage })
    list.push({ id: 'raw-storage', label: targetLabels['raw-storage'], url: direct(rawStorage), node: rawStorage })
  }
  if (before !== undefined) {
    const old = await startNode('kd-before', join(serverDir, 'kd-stream.ts'), { ...env, ...libraryEnv(before) }, logDir, nodeArgs)
    list.splice(1, 0, { id: 'kd-before', label: targetLabels['kd-before'], url: direct(old), node: old })
    if (kdOffloadBefore !== undefined) list.push({ id: 'kd-offload-before', label: targetLabels['kd-offload-before'], url: via('files-before'), node: kdOffloadBefore })
    // The storage workloads' before/after: the same storage server script with the other library.
    if (storageEnv !== undefined) {
      const oldStorage = await startNode('kd-storage-before', join(serverDir, 'kd-stream.ts'), { ...env, ...storageEnv, ...libraryEnv(before) }, logDir, nodeArgs)
      list.push({ id: 'kd-storage-before', label: targetLabels['kd-storage-before'], url: direct(oldStorage), node: oldStorage })
    }
  }
  return new Map(list.map((target) => [target.id, target]))
}
