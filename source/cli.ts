#!/usr/bin/env node
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { renderServerConfig, serverNames } from './server-config.ts'
import type { ConfigRule, ServerName } from './server-config.ts'

const usage = `Usage:
  koa-downloads config <nginx|apache|lighttpd|caddy> --rules <module>
                       [--upstream HOST:PORT] [--listen HOST:PORT --prefix DIR]
      Print the server configuration that executes the app's offload rules.
      <module> exports the rules: a "rules" export, or a default export that is an array of
      rules or an object with "rules". Without --listen/--prefix: a snippet to paste into your
      server block; with --listen, --upstream and --prefix: a complete, runnable configuration.

  koa-downloads check <url> [--sha256 HEX | --file PATH] [--header "Name: value"]... [--timeout SECONDS]
      GET <url> through the live proxy and fail (exit 1) when the proxy did not take over the
      transfer (an offload header, a Location on a 200 or an empty body reached the client), when
      the status is not 200, or when the bytes differ from the expected sha256 or file.

Exit codes: 0 success, 1 failed check or configuration error, 2 usage error.
`

class UsageError extends Error {}

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined) throw new UsageError('missing command')
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage)
    return 0
  }
  if (command === 'config') return await configCommand(rest)
  if (command === 'check') return await checkCommand(rest)
  throw new UsageError(`unknown command ${JSON.stringify(command)}`)
}

function parse (args: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>['options']): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

async function configCommand (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    rules: { type: 'string' }, listen: { type: 'string' }, upstream: { type: 'string' }, prefix: { type: 'string' }
  })
  if (values.help === true) { process.stdout.write(usage); return 0 }
  const [server, extra] = positionals
  if (server === undefined || !(serverNames as readonly string[]).includes(server) || extra !== undefined) {
    throw new UsageError(`config needs one server: ${serverNames.join(', ')}`)
  }
  if (typeof values.rules !== 'string') throw new UsageError('config needs --rules <module>')
  const listen = typeof values.listen === 'string' ? values.listen : undefined
  const upstream = typeof values.upstream === 'string' ? values.upstream : undefined
  const prefix = typeof values.prefix === 'string' ? values.prefix : undefined
  if ((listen !== undefined || prefix !== undefined) && (listen === undefined || upstream === undefined || prefix === undefined)) {
    throw new UsageError('a complete configuration needs --listen, --upstream and --prefix together')
  }
  const rules = await loadRules(values.rules)
  const full = listen !== undefined && upstream !== undefined && prefix !== undefined ? { listen, upstream, prefix: resolve(prefix) } : undefined
  process.stdout.write(renderServerConfig(server as ServerName, rules, { full, upstream }))
  return 0
}

async function loadRules (module: string): Promise<ConfigRule[]> {
  const loaded = await import(pathToFileURL(resolve(module)).href) as { rules?: unknown, default?: unknown }
  const exported = loaded.rules ?? loaded.default
  const rules = Array.isArray(exported) ? exported : (exported as { rules?: unknown } | undefined)?.rules
  if (!Array.isArray(rules)) {
    throw new TypeError(`${module} must export "rules" (or a default export): an array of offload rules, or an object with "rules"`)
  }
  return rules as ConfigRule[]
}

// Headers that only a proxy should ever see: one reaching the client means nothing intercepted it.
const offloadHeaders = ['x-accel-redirect', 'x-sendfile', 'x-lighttpd-send-file', 'x-sendfile2']

async function checkCommand (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    sha256: { type: 'string' }, file: { type: 'string' }, header: { type: 'string', multiple: true }, timeout: { type: 'string' }
  })
  if (values.help === true) { process.stdout.write(usage); return 0 }
  const [target, extra] = positionals
  if (target === undefined || extra !== undefined || !/^https?:\/\//.test(target)) throw new UsageError('check needs one http(s) URL')
  if (values.sha256 !== undefined && values.file !== undefined) throw new UsageError('give --sha256 or --file, not both')
  if (typeof values.sha256 === 'string' && !/^[0-9a-fA-F]{64}$/.test(values.sha256)) throw new UsageError('--sha256 must be 64 hex digits')
  const timeout = values.timeout === undefined ? 30 : Number(values.timeout)
  if (!(timeout > 0)) throw new UsageError('--timeout must be a positive number of seconds')
  const headers = new Headers()
  for (const line of (values.header ?? []) as string[]) {
    const colon = line.indexOf(':')
    if (colon < 1) throw new UsageError(`--header must be "Name: value", got ${JSON.stringify(line)}`)
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
  }

  let expected: { sha256: string, size?: number, from: string } | undefined
  if (typeof values.sha256 === 'string') expected = { sha256: values.sha256.toLowerCase(), from: '--sha256' }
  if (typeof values.file === 'string') expected = { ...await hashFile(values.file), from: values.file }

  const response = await fetch(target, { headers, redirect: 'manual', signal: AbortSignal.timeout(timeout * 1000) })
  const hash = createHash('sha256')
  let size = 0
  const reader = response.body?.getReader()
  while (reader !== undefined) {
    const { done, value } = await reader.read()
    if (done) break
    hash.update(value)
    size += value.byteLength
  }
  const digest = hash.digest('hex')
  const problems: string[] = []
  if (response.status !== 200) problems.push(`status ${response.status}, expected 200`)
  for (const name of offloadHeaders) {
    const value = response.headers.get(name)
    if (value !== null) problems.push(`the offload header ${name}: ${value} reached the client: the proxy did not intercept it (is the app reached directly, or does the proxy config not cover this path? see koa-downloads config)`)
  }
  const location = response.headers.get('location')
  if (response.status === 200 && location !== null) problems.push(`a 200 with Location: ${location} reached the client: the server did not perform the internal redirect`)
  if (size === 0) problems.push('the body is empty: the proxy passed the offload response through instead of sending the file')
  if (expected !== undefined && size > 0) {
    if (expected.size !== undefined && expected.size !== size) problems.push(`got ${size} bytes, ${expected.from} has ${expected.size}`)
    if (expected.sha256 !== digest) problems.push(`sha256 ${digest} of the ${size} bytes received differs from ${expected.sha256} (${expected.from})`)
  }
  const summary = `${target}: ${response.status}, ${size} bytes, sha256 ${digest}`
  if (problems.length > 0) {
    process.stderr.write(`koa-downloads check FAILED ${summary}\n${problems.map((p) => `  - ${p}\n`).join('')}`)
    return 1
  }
  process.stdout.write([
    `koa-downloads check OK ${summary}`,
    `  - no offload header reached the client (${offloadHeaders.join(', ')}, Location)`,
    expected === undefined ? '  - bytes not compared (give --sha256 or --file)' : `  - bytes match ${expected.from}`,
    `  - Content-Type: ${response.headers.get('content-type') ?? '(none)'}`,
    `  - Content-Disposition: ${response.headers.get('content-disposition') ?? '(none)'}`,
    ''
  ].join('\n'))
  return 0
}

async function hashFile (path: string): Promise<{ sha256: string, size: number }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk)
    size += chunk.length
  }
  return { sha256: hash.digest('hex'), size }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`koa-downloads: ${error.message}\n\n${usage}`)
    process.exitCode = 2
  } else {
    // fetch() hides the reason (ECONNREFUSED, a timeout) in `cause`
    const cause = (error as { cause?: unknown } | null)?.cause
    const reason = cause instanceof Error ? `: ${cause.message}` : ''
    process.stderr.write(`koa-downloads: ${error instanceof Error ? error.message : String(error)}${reason}\n`)
    process.exitCode = 1
  }
})
