// A process out of file descriptors (EMFILE) answers 503 for every source, as docs/reliability.md
// says: a temporary state of this app, which may succeed later — not a 502, which tells the client,
// a monitor or a proxy's `proxy_next_upstream` that the storage or the origin failed. The app runs in
// its own process under `ulimit -n 256` and fills its own descriptor table; one kept-alive client
// connection (the descriptor it already has) asks for each source, then the app frees its
// descriptors and the same requests get the file.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { startOrigin } from './helpers/origin.ts'
import { startS3 } from './helpers/s3.ts'

const appScript = fileURLToPath(new URL('fixtures/apps/no-descriptors.ts', import.meta.url))

interface Answer { status: number, body: Buffer, reused: boolean }

function get (agent: Agent, url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), reused: req.reusedSocket }) })
      res.once('error', reject)
    })
    req.once('error', reject)
    req.setTimeout(20_000, () => { req.destroy(new Error(`${url}: no answer in 20 s`)) })
    req.end()
  })
}

test('out of file descriptors: 503 for a local file, a flydrive fs disk, a remote URL and S3, by address and by host name (never a 502), with the status text only; the same requests get the file once descriptors are free', async (t) => {
  const bytes = Buffer.from('the file, whole\n'.repeat(1000))
  const dir = await mkdtemp(join(tmpdir(), 'kd-emfile-'))
  await writeFile(join(dir, 'a.bin'), bytes)
  const origin = await startOrigin()
  origin.put('/a.bin', { bytes })
  const s3 = await startS3()
  await s3.put('a.bin', bytes)
  let child: ChildProcess | undefined
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(async () => {
    agent.destroy()
    child?.kill('SIGKILL')
    await Promise.all([origin.stop(), s3.stop(), rm(dir, { recursive: true, force: true })])
  })
  child = spawn('sh', ['-c', 'ulimit -n 256 && exec "$0" "$@"', process.execPath, appScript, origin.url, s3.endpoint, s3.bucket, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [line] = await Promise.race([
    once(child.stdout!, 'data') as Promise<[Buffer]>,
    once(child, 'exit').then(() => { throw new Error(`the app exited: ${stderr}`) })
  ])
  const base = `http://127.0.0.1:${Number(line.toString().trim())}`
  // by address, and by host name (localhost): then the name lookup is what fails, as ENOTFOUND
  const sources = ['/path', '/fs', '/http', '/s3', '/http-name', '/s3-name']

  // First out of descriptors (before any download: the S3 client and HttpFile keep their sockets
  // alive, and one kept from an earlier download would need no new descriptor).
  const filled = await get(agent, `${base}/fill`)
  t.regex(filled.body.toString(), /^EMFILE after \d+$/)
  for (const path of sources) {
    const answer = await get(agent, base + path)
    t.true(answer.reused, `${path}: the same connection`)
    t.is(answer.status, 503, `${path}: ${answer.status} ${answer.body.toString()}`)
    t.is(answer.body.toString(), 'Service Unavailable', path)
  }
  t.regex((await get(agent, `${base}/release`)).body.toString(), /^released \d+$/)
  for (const path of sources) {
    const answer = await get(agent, base + path)
    t.is(answer.status, 200, path)
    t.true(answer.body.equals(bytes), path)
  }
  t.is(stderr, '')
})
