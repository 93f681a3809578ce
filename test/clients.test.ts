// Command-line download clients save a download under the name the app gives it, as a browser does
// (test/demo/browser.test.ts): curl -OJ and wget --content-disposition read only the `filename`
// fallback or read it first, so that is what they get. curl 7.88 ends the name at a `"` even when
// it is escaped (`\"`) and then saved `He said "hi".txt` under the URL's last segment.
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { download } from '../source/download.ts'
import { VirtualFile } from '../source/virtual-file.ts'
import { downloadApp } from './helpers/koa.ts'
import { listen } from './helpers/listen.ts'

function run (command: string, args: string[], cwd: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: 'ignore' })
    child.once('error', reject)
    child.once('close', resolve)
  })
}

const names: Array<[name: string, curl: string, wget: string]> = [
  // curl takes the ASCII fallback (no filename*); wget takes filename* when it is there
  ['He said "hi".txt', 'He said _hi_.txt', 'He said "hi".txt'],
  ['my \'résumé\' 100%.txt', 'my \'resume\' 100_.txt', 'my \'résumé\' 100%.txt'],
  ['plain name.txt', 'plain name.txt', 'plain name.txt']
]

test('curl -OJ and wget --content-disposition save a download under its name (a double quote is `_` in the fallback curl reads), never under the URL', async (t) => {
  const body = Buffer.from('the bytes\n')
  const url = await listen(t, downloadApp((ctx) => {
    ctx.body = download(new VirtualFile(body, { name: 'ignored.bin' }), { filename: decodeURIComponent(ctx.path.slice(1)) })
  }))
  for (const [name, curlName, wgetName] of names) {
    for (const [client, args, expected] of [
      ['curl', ['-sS', '-f', '-O', '-J', `${url}/${encodeURIComponent(name)}`], curlName],
      ['wget', ['-q', '--content-disposition', `${url}/${encodeURIComponent(name)}`], wgetName]
    ] as const) {
      const dir = await mkdtemp(join(tmpdir(), 'kd-clients-'))
      try {
        t.is(await run(client, [...args], dir), 0, `${client} ${name}`)
        t.deepEqual(await readdir(dir), [expected], `${client} ${name}`)
        t.deepEqual(await readFile(join(dir, expected)), body)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }
  }
})
