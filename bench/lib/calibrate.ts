import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Fixtures } from './fixtures.ts'
import { nginxPreamble, useSendfile } from './nginx-config.ts'
import { startNginx } from './processes.ts'
import { freePort, targetLabels } from './targets.ts'
import { runWrk } from './wrk.ts'

/** What the calibration measured: nginx static on the 256 MiB file, MiB/s, with and without sendfile. */
export interface SendfileChoice {
  sendfile: boolean
  /** how it was chosen: measured here, or given with --sendfile= */
  how: 'measured' | 'given'
  onMiBPerSec?: number | undefined
  offMiBPerSec?: number | undefined
}

/**
 * nginx static is "the limit" of the offload targets, and every nginx the bench starts (the proxy,
 * the remote origin) serves files the same way, so it should serve them as fast as nginx can on the
 * machine at hand. sendfile is nginx's usual setting, and on the reference machine nginx static
 * reached the load generator's ceiling with it; on another VM (a 6.18 kernel under Firecracker),
 * sendfile to a loopback socket ran at 550–750 MiB/s and nginx's own read and write at 1.2–1.6
 * GiB/s, which capped nginx static and the offload (runs U–W) at the speed of Node streaming behind
 * nginx, whose bytes nginx copies either way. So both are measured here, interleaved (on, off, on,
 * off; 4 connections on the 256 MiB file, as the 256 MiB workload), and the faster is used for
 * every nginx of the run. The runner logs both figures and the JSON keeps them; `--sendfile=on|off`
 * skips the measurement.
 */
export async function chooseSendfile (fixtures: Fixtures, seconds: number, given: boolean | undefined): Promise<SendfileChoice> {
  if (given !== undefined) return apply({ sendfile: given, how: 'given' })
  const samples: Record<'on' | 'off', number[]> = { on: [], off: [] }
  for (let round = 0; round < 2; round++) {
    for (const on of [true, false]) samples[on ? 'on' : 'off'].push(await staticSpeed(fixtures, on, seconds))
  }
  const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length
  const onMiBPerSec = mean(samples.on)
  const offMiBPerSec = mean(samples.off)
  // sendfile, nginx's usual setting, unless its read and write are more than 5 % faster
  return apply({ sendfile: offMiBPerSec <= onMiBPerSec * 1.05, how: 'measured', onMiBPerSec, offMiBPerSec })
}

function apply (choice: SendfileChoice): SendfileChoice {
  useSendfile(choice.sendfile)
  targetLabels.nginx = `nginx static (sendfile ${choice.sendfile ? 'on' : 'off'})`
  return choice
}

async function staticSpeed (fixtures: Fixtures, on: boolean, seconds: number): Promise<number> {
  useSendfile(on)
  const prefix = join(fixtures.dir, `nginx-sendfile-${on ? 'on' : 'off'}`)
  mkdirSync(join(prefix, 'tmp'), { recursive: true })
  const port = await freePort()
  const config = [
    ...nginxPreamble(prefix),
    `  server { listen 127.0.0.1:${port}; location /direct/ { alias ${fixtures.root}/; } }`,
    '}',
    ''
  ].join('\n')
  const nginx = await startNginx(prefix, config, port)
  try {
    const url = `http://127.0.0.1:${port}/direct/large.bin`
    await runWrk({ url, connections: 4, seconds: 1 })
    const result = await runWrk({ url, connections: 4, seconds })
    // A refused or failing file (permissions, a wrong alias) would measure both settings near 0 and
    // quietly keep sendfile on: stop instead.
    if (result.errors > 0 || result.bytes === 0) throw new Error(`the sendfile measurement failed: nginx answered ${url} with ${result.errors} errors and ${result.bytes} bytes (see ${join(prefix, 'nginx.log')})`)
    return result.mibPerSec
  } finally {
    await nginx.stop()
  }
}
