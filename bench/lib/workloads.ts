import { KiB, MiB } from './fixtures.ts'
import type { TargetId } from './targets.ts'

export type Metric = 'req/s' | 'MiB/s'

export interface Workload {
  id: string
  label: string
  /** the path below /files/ */
  name: string
  connections: number
  metric: Metric
  /** multiplies the mode's seconds per run (big files need longer runs to average out) */
  weight: number
  targets: TargetId[]
  /** what a correct answer is; a target that answers otherwise is reported as unsupported */
  expect: { status: number, length: number }
  range?: { size: number, fileSize: number } | undefined
  /** send the validators of a first response back (If-None-Match, else If-Modified-Since) */
  revalidate?: boolean | undefined
  /** targets measured even when their answer differs from `expect` (the baseline), with a note */
  measureAnyway?: TargetId[] | undefined
  /** the ratios' reference @default 'koa-raw' */
  baseline?: TargetId | undefined
  /** report the bytes the storage sent per request (through the counting proxy in front of s3rver) */
  countStorageBytes?: boolean | undefined
}

const all: TargetId[] = ['kd', 'koa-raw', 'koa-send', 'fastify-send', 'send-http', 'nginx', 'kd-offload', 'xaccel-hand', 'kd-via-nginx']
const withoutKoaSend = all.filter((id) => id !== 'koa-send')
const LARGE = 256 * MiB

export function streamingWorkloads (full: boolean): Workload[] {
  return [
    { id: '4k', label: '4 KiB file, 32 connections', name: 'small.bin', connections: 32, metric: 'req/s', weight: 1, targets: [...all, 'kd-offload-follow', 'kd-offload-refuse', 'koa-floor'], expect: { status: 200, length: 4 * KiB } },
    { id: '1m', label: '1 MiB file, 16 connections', name: 'medium.bin', connections: 16, metric: 'req/s', weight: 1, targets: all, expect: { status: 200, length: MiB } },
    { id: '256m', label: '256 MiB file, 4 connections', name: 'large.bin', connections: 4, metric: 'MiB/s', weight: 2, targets: all, expect: { status: 200, length: LARGE } },
    {
      id: 'ranges', label: 'random 64 KiB ranges of the 256 MiB file, 16 connections', name: 'large.bin', connections: 16, metric: 'req/s', weight: 1,
      // koa-send has no Range support: it would send 256 MiB per request
      targets: full ? withoutKoaSend : withoutKoaSend.filter((id) => id !== 'kd-via-nginx'),
      expect: { status: 206, length: 64 * KiB },
      range: { size: 64 * KiB, fileSize: LARGE }
    },
    {
      id: '304', label: '304 revalidation of the 4 KiB file, 32 connections', name: 'small.bin', connections: 32, metric: 'req/s', weight: 1,
      targets: ['kd', 'kd-follow', 'kd-cache', 'koa-raw', 'koa-send', 'fastify-send', 'send-http', 'nginx', 'kd-offload', 'koa-floor'],
      expect: { status: 304, length: 0 },
      revalidate: true,
      measureAnyway: ['koa-raw']
    }
  ]
}

/** Objects on the local S3 server (StorageFile) and files behind an HTTP origin (HttpFile), against the minimal Koa handler piping the same source. */
export function remoteWorkloads (): Workload[] {
  const targets: TargetId[] = ['kd-storage', 'raw-storage']
  const baseline: TargetId = 'raw-storage'
  return [
    { id: 's3-1m', baseline, label: 'S3 object of 1 MiB (s3rver), 16 connections', name: 's3/medium.bin', connections: 16, metric: 'req/s', weight: 1, targets, expect: { status: 200, length: MiB } },
    {
      id: 's3-ranges', baseline, label: 'random 64 KiB ranges of a 256 MiB S3 object, 16 connections', name: 's3/large.bin', connections: 16, metric: 'req/s', weight: 1, targets,
      expect: { status: 206, length: 64 * KiB }, range: { size: 64 * KiB, fileSize: LARGE }, countStorageBytes: true
    },
    { id: 'remote-1m', baseline, label: 'remote URL of 1 MiB (HttpFile, nginx origin), 16 connections', name: 'remote/medium.bin', connections: 16, metric: 'req/s', weight: 1, targets, expect: { status: 200, length: MiB } },
    {
      id: 'remote-ranges', baseline, label: 'random 64 KiB ranges of a 256 MiB remote URL, 16 connections', name: 'remote/large.bin', connections: 16, metric: 'req/s', weight: 1, targets,
      expect: { status: 206, length: 64 * KiB }, range: { size: 64 * KiB, fileSize: LARGE }
    }
  ]
}
