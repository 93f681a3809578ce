#!/usr/bin/env node
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { request as httpRequest, validateHeaderName, validateHeaderValue } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { Transform } from 'node:stream'
import { isPassiveType } from './content-type.ts'
import { redactUrl } from './debug.ts'
import { looksPresigned } from './offload-rule.ts'
import { decoderFor, isDecodable } from './plan.ts'
import { renderServerConfig, serverNames } from './server-config.ts'
import type { ConfigRule, ServerName } from './server-config.ts'
import { DEFAULT_TRUSTED_CERTIFICATE } from './server-config/nginx.ts'

/** The CA bundle of Red Hat-like systems: the example a warning about the Debian one gives (and the other way round). */
const OTHER_TRUSTED_CERTIFICATE = '/etc/pki/tls/certs/ca-bundle.crt'

// setTimeout() takes at most 2^31-1 ms; a longer one fires at once.
const maxTimeout = Math.floor((2 ** 31 - 1) / 1000)

const usage = `Usage:
  koa-downloads config <nginx|apache|lighttpd|caddy> --rules <module>
                       [--upstream HOST:PORT] [--listen HOST:PORT --prefix DIR]
                       [--trusted-certificate PATH]
      Print the server configuration that executes the app's offload rules.
      <module> exports the rules: a "rules" export, or a default export that is a rule, an
      array of rules or an object with "rules". Without --listen/--prefix: a snippet to paste into your
      server block; with --listen, --upstream and --prefix: a complete, runnable configuration.
      nginx verifies the certificates of https origins against --trusted-certificate
      (default /etc/ssl/certs/ca-certificates.crt; "off": no verification, e.g. for an origin
      addressed by IP, which nginx cannot verify).

  koa-downloads check <url> [--sha256 HEX | --file PATH] [--rules <module>] [--offload-header NAME]...
                      [--header "Name: value"]... [--timeout SECONDS]
      GET <url> through the live proxy and fail (exit 1) when an offload response reached the
      client (an offload header, a Location on a 200, or an empty body where the file is not
      empty), when the status is not 200 (redirects are not followed), when the response is cut
      short, or when the bytes differ from the expected sha256 or file. It cannot tell bytes the
      proxy sent from bytes the app streamed because no rule covered the file: to see that a
      rule matches, check the app itself, bypassing the proxy; that check fails, naming the
      offload header.
      The offload headers are X-Accel-Redirect, X-Sendfile, X-Lighttpd-Send-File, X-Sendfile2,
      the headers of the rules in --rules <module> (a caddy({ header }) rule's own) and each
      --offload-header. An empty 200 also fails when a header of it looks like one (a value
      starting with "/", other than Content-Location, or any X-Accel-* header). A 200 without
      Content-Disposition fails too: every download has one, so the proxy dropped the app's headers;
      so does one without X-Content-Type-Options: nosniff (nginx drops it unless the location adds
      it back; not asked of a presigned storage URL), and an inline one of a type that can run
      script (HTML, SVG, XML, none) without Content-Security-Policy: sandbox, which the app sends
      with it (check an uploaded page, not one of the app's own served with sandbox: false).
      With --rules and --file, the file is also requested at the internal URL of the nginx rule
      that covers it, which must be refused: a location without "internal" fails; with --rules,
      an nginx({ remote: true }) location is asked for a host listening nowhere, which must be
      refused (404) rather than tried (an open proxy).
      --header may be repeated and may set Host (a virtual host reached by its address).
      --timeout bounds the whole request: default 30, at most ${maxTimeout} seconds.

Exit codes: 0 success, 1 failed check or configuration error, 2 usage error (a --file that
cannot be read or is not a regular file too: no request is made).
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
  let parsed: ReturnType<typeof parseArgs> & { tokens: Array<{ kind: string, name?: string, value?: string | undefined }> }
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true, tokens: true }) as typeof parsed
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  // parseArgs keeps the last of an option given twice with different values (`--rules a.ts --rules
  // b.ts`): a mistake, never a choice to make silently.
  const seen = new Map<string, string | undefined>()
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || token.name === undefined) continue
    const option = options?.[token.name]
    if (option?.type !== 'string' || option.multiple === true) continue
    if (seen.has(token.name) && seen.get(token.name) !== token.value) {
      throw new UsageError(`--${token.name} is given twice, ${JSON.stringify(seen.get(token.name))} and ${JSON.stringify(token.value)}`)
    }
    seen.set(token.name, token.value)
  }
  // A module path that is empty (`--rules "$UNSET"`) would import the working directory.
  if (parsed.values.rules === '') throw new UsageError('--rules needs the path of a module, got an empty one')
  return parsed
}

async function configCommand (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    rules: { type: 'string' }, listen: { type: 'string' }, upstream: { type: 'string' }, prefix: { type: 'string' }, 'trusted-certificate': { type: 'string' }
  })
  if (values.help === true) { process.stdout.write(usage); return 0 }
  const [server, extra] = positionals
  if (server === undefined || !(serverNames as readonly string[]).includes(server) || extra !== undefined) {
    const given = server === undefined ? 'none was given' : extra !== undefined ? `${JSON.stringify(positionals.join(' '))} names more than one` : `${JSON.stringify(server)} is not one of them`
    throw new UsageError(`config needs one server: ${serverNames.join(', ')} (${given})`)
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
  const given = values['trusted-certificate']
  if (typeof given === 'string' && server !== 'nginx') throw new UsageError('--trusted-certificate is for nginx (the other servers verify https origins with the system\'s trust store, or proxy to none)')
  const trustedCertificate = typeof given === 'string' ? (given === 'off' ? false : resolve(given)) : undefined
  const text = renderServerConfig(server as ServerName, rules, { full, upstream, trustedCertificate })
  // nginx does not start without the bundle it is told to read: say so now, not at its next reload.
  if (trustedCertificate !== false && text.includes('proxy_ssl_trusted_certificate ')) {
    const path = trustedCertificate ?? DEFAULT_TRUSTED_CERTIFICATE
    try {
      accessSync(path, constants.R_OK)
    } catch {
      process.stderr.write(`koa-downloads: warning: nginx will not start without ${path}, the CA bundle that verifies https origins (not readable here): ` +
        `if this is not the machine nginx runs on, check it there; otherwise give --trusted-certificate <bundle> (e.g. ${path === OTHER_TRUSTED_CERTIFICATE ? DEFAULT_TRUSTED_CERTIFICATE : OTHER_TRUSTED_CERTIFICATE}), or --trusted-certificate off\n`)
    }
  }
  process.stdout.write(text)
  return 0
}

async function loadRules (module: string): Promise<ConfigRule[]> {
  let loaded: { rules?: unknown, default?: unknown }
  try {
    loaded = await import(pathToFileURL(resolve(module)).href) as typeof loaded
  } catch (error) {
    // A syntax error's message ("Unexpected end of input") says nothing of where it came from.
    throw new Error(`cannot load --rules ${module}: ${describe(error)}`)
  }
  const exported = loaded.rules ?? loaded.default
  // As downloads({ rules }) takes them: an array, or one rule on its own.
  const listOf = (value: unknown): unknown[] | undefined => Array.isArray(value)
    ? value
    : typeof (value as { backend?: unknown } | null | undefined)?.backend === 'string' ? [value] : undefined
  const rules = listOf(exported) ?? listOf((exported as { rules?: unknown } | null | undefined)?.rules)
  if (rules === undefined) {
    throw new TypeError(`${module} must export "rules" (or a default export): an offload rule or an array of them, or an object with "rules"`)
  }
  return rules as ConfigRule[]
}

// Headers that only a proxy should ever see: one reaching the client means nothing intercepted it.
// A caddy({ header }) rule names its own: check learns it from --rules or --offload-header.
const offloadHeaders = ['x-accel-redirect', 'x-sendfile', 'x-lighttpd-send-file', 'x-sendfile2']
const emptySha256 = createHash('sha256').digest('hex')

interface Expected { sha256: string, size?: number, from: string }

/** What `check` was asked to do: the request, the headers that give an offload away, what the bytes must be. */
interface CheckPlan {
  url: URL
  /** The Host given with --header, if any. */
  host: string | undefined
  /** The other request headers (a repeated name: repeated lines). */
  headers: Record<string, string[]>
  offloadNames: Set<string>
  rules: ConfigRule[] | undefined
  expected: Expected | undefined
  /** --file as given. */
  file: string | undefined
  /** Seconds. */
  timeout: number
}

async function checkCommand (args: string[]): Promise<number> {
  const plan = await checkPlan(args)
  if (plan === undefined) return 0
  const deadline = AbortSignal.timeout(Math.ceil(plan.timeout * 1000))
  const fetched = await fetchChecked(plan, deadline)
  const problems = [...fetched.problems, ...responseProblems(plan, fetched)]
  const probes = await probeLocations(plan, deadline)
  problems.push(...probes.problems)
  return report(plan, fetched, problems, probes.refused)
}

/** The command line of `check`, validated: undefined once --help is printed. */
async function checkPlan (args: string[]): Promise<CheckPlan | undefined> {
  const { values, positionals } = parse(args, {
    sha256: { type: 'string' },
    file: { type: 'string' },
    header: { type: 'string', multiple: true },
    timeout: { type: 'string' },
    rules: { type: 'string' },
    'offload-header': { type: 'string', multiple: true }
  })
  if (values.help === true) { process.stdout.write(usage); return undefined }
  const [target, extra] = positionals
  if (target === undefined || extra !== undefined) throw new UsageError('check needs one http(s) URL')
  let url: URL
  try {
    url = new URL(target)
  } catch {
    throw new UsageError(`check needs one http(s) URL, ${JSON.stringify(target)} is not a valid URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`check needs one http(s) URL, not ${url.protocol}`)
  if (values.sha256 !== undefined && values.file !== undefined) throw new UsageError('give --sha256 or --file, not both')
  if (typeof values.sha256 === 'string' && !/^[0-9a-fA-F]{64}$/.test(values.sha256)) throw new UsageError('--sha256 must be 64 hex digits')
  const timeout = values.timeout === undefined ? 30 : /^\d+(\.\d+)?$/.test(values.timeout as string) ? Number(values.timeout) : NaN
  if (!(timeout > 0 && timeout <= maxTimeout)) throw new UsageError(`--timeout must be a number of seconds, more than 0 and at most ${maxTimeout}`)
  // node:http rather than fetch(), which refuses to set Host: checking a virtual host by its
  // address needs it. Repeated names become repeated lines, as given.
  const headers: Record<string, string[]> = { accept: ['*/*'], 'user-agent': ['koa-downloads check'] }
  const given = new Set<string>()
  for (const line of (values.header ?? []) as string[]) {
    const colon = line.indexOf(':')
    // The value is not echoed: it may be a credential (Authorization, a session cookie) in a CI log.
    if (colon < 1) throw new UsageError(`--header must be "Name: value", got a line with no name before a ":" (${line.length} characters, not shown)`)
    const name = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    try {
      validateHeaderName(name)
      validateHeaderValue(name, value)
    } catch {
      throw new UsageError(`--header ${JSON.stringify(name)}: not a valid header name and value (the value is not shown)`)
    }
    const key = name.toLowerCase()
    if (!given.has(key)) headers[key] = []
    given.add(key)
    headers[key]!.push(value)
  }
  const { host, ...others } = headers
  if (host !== undefined && host.length > 1) throw new UsageError('--header "Host: …" may be given once')
  const offloadNames = new Set(offloadHeaders)
  for (const name of (values['offload-header'] ?? []) as string[]) {
    try {
      validateHeaderName(name)
    } catch {
      throw new UsageError(`--offload-header ${JSON.stringify(name)}: not a valid header name`)
    }
    offloadNames.add(name.toLowerCase())
  }
  // The app's own rules name the headers it sends: a caddy({ header }) rule's is any name at all.
  // Location has checks of its own (a redirect, or a 200 carrying it).
  let rules: ConfigRule[] | undefined
  if (typeof values.rules === 'string') {
    rules = await loadRules(values.rules)
    // As config refuses them (renderServerConfig), not as a TypeError of this loop's own.
    if (rules.some((rule) => rule === null || typeof rule !== 'object' || typeof rule.backend !== 'string')) {
      throw new TypeError(`${values.rules}: every rule must be an offload rule (nginx(), apache(), …)`)
    }
    for (const rule of rules) {
      const name = (rule as { header?: unknown }).header
      if (typeof name === 'string' && name.toLowerCase() !== 'location') offloadNames.add(name.toLowerCase())
    }
  }

  let expected: Expected | undefined
  if (typeof values.sha256 === 'string') expected = { sha256: values.sha256.toLowerCase(), from: '--sha256' }
  if (typeof values.file === 'string') {
    // Read before any request: a file that cannot be read is a mistake in the command, not a
    // failed check (exit 1 would say the deployment is wrong).
    try {
      expected = { ...await hashFile(values.file), from: values.file }
    } catch (error) {
      const code = (error as { code?: unknown }).code
      const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory, not a file' : code === 'ENOTREG' || code === 'ENXIO' ? 'not a regular file (a FIFO, socket or device has no fixed bytes to compare)' : describe(error)
      throw new UsageError(`--file ${values.file}: ${reason}`)
    }
  }
  return { url, host: host?.[0], headers: others, offloadNames, rules, expected, file: typeof values.file === 'string' ? values.file : undefined, timeout }
}

/** The response `check` got, hashed as received and as a browser saves it (decoded). */
interface Fetched {
  response: IncomingMessage
  status: number
  /** The bytes compared: decoded when the body had a coding check could decode. */
  size: number
  digest: string
  rawSize: number
  rawDigest: string
  coding: { name: string, decoder: Transform | undefined } | undefined
  /** Why the body ended before its end, when the connection closed in the middle of it. */
  cut: string | undefined
  /** The cut, or a body check could not decode. */
  problems: string[]
}

/** GET of the checked URL within the deadline; a response cut short is a problem, no response at all an error. */
async function fetchChecked (plan: CheckPlan, deadline: AbortSignal): Promise<Fetched> {
  const { url, host, headers: others, timeout } = plan
  const hash = createHash('sha256')
  let size = 0
  let response: IncomingMessage | undefined
  // A proxy may compress the download (a browser's Accept-Encoding given with --header, or none at
  // all, which allows any coding: RFC 9110 §12.5.3). A browser saves the decoded bytes, so those
  // are the ones compared.
  let coding: { name: string, decoder: Transform | undefined } | undefined
  const decodedHash = createHash('sha256')
  let decodedSize = 0
  let undecodable: string | undefined
  // Why the body ended before its end, when the connection closed in the middle of it.
  let cut: string | undefined
  try {
    // agent: false — one connection, closed after the response, so nothing keeps the process alive.
    const sent = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers: host === undefined ? others : { ...others, host }, agent: false, signal: deadline })
    sent.end()
    response = (await once(sent, 'response') as [IncomingMessage])[0]
    coding = contentCoding(response.headers['content-encoding'])
    const decoder = coding?.decoder
    const decodedEnd = decoder === undefined ? undefined : new Promise<void>((resolve) => {
      decoder.on('data', (chunk: Buffer) => { decodedHash.update(chunk); decodedSize += chunk.length })
      decoder.once('end', resolve)
      decoder.once('error', (error: Error) => { undecodable = error.message; resolve() })
    })
    for await (const chunk of response as AsyncIterable<Buffer>) {
      hash.update(chunk)
      size += chunk.length
      if (undecodable === undefined) decoder?.write(chunk)
    }
    decoder?.end()
    // The decoding too stays within --timeout (a small body can decode to gigabytes).
    if (decodedEnd !== undefined) await Promise.race([decodedEnd, abortedBy(deadline)])
  } catch (error) {
    coding?.decoder?.destroy()
    // Before the response the request fails with an AbortError; in the body, the response with "aborted".
    if (deadline.aborted || (error as Error | null)?.name === 'AbortError') {
      // What had arrived tells a stalled proxy from a large file on a slow link (raise --timeout).
      const length = response?.headers['content-length']
      const progress = response === undefined
        ? 'no response headers arrived'
        : `status ${response.statusCode ?? 0} arrived, then ${size} bytes${length === undefined ? '' : ` of the ${length} its Content-Length announced`}` +
          (response.complete && coding !== undefined ? `, still being decoded (${coding.name}: ${decodedSize} bytes so far)` : '')
      throw new Error(`no complete response within ${timeout} s (--timeout): ${progress}`)
    }
    if (response === undefined) throw error
    // A download cut short is a failed check like any other: say what arrived and what was announced.
    const length = response.headers['content-length']
    cut = length === undefined
      ? `the response was cut short: the connection closed after ${size} bytes, before the end of its chunked body`
      : `the response was cut short: the connection closed after ${size} bytes of the ${length} its Content-Length announced`
  }
  const problems: string[] = cut === undefined ? [] : [cut]
  const rawDigest = hash.digest('hex')
  const rawSize = size
  let digest = rawDigest
  if (coding !== undefined && cut === undefined) {
    if (coding.decoder === undefined) {
      problems.push(`the body has Content-Encoding: ${coding.name}, which check cannot decode to compare it`)
    } else if (undecodable !== undefined) {
      problems.push(`the body does not decode as its Content-Encoding: ${coding.name} (${undecodable})`)
    } else {
      digest = decodedHash.digest('hex')
      size = decodedSize
    }
  }
  return { response, status: response.statusCode ?? 0, size, digest, rawSize, rawDigest, coding, cut, problems }
}

/** What the response's status and headers say of the proxy: an offload passed through, headers dropped, bytes not the file's. */
function responseProblems (plan: CheckPlan, fetched: Fetched): string[] {
  const { url, offloadNames, expected } = plan
  const { response, status, size, digest, cut } = fetched
  const problems: string[] = []
  const header = (name: string): string | undefined => headerOf(response, name)
  // Node keeps the first Content-Type of several and joins several Content-Dispositions; browsers
  // refuse a download with two different dispositions (Chromium: ERR_RESPONSE_HEADERS_MULTIPLE_
  // CONTENT_DISPOSITION) and read the last of two types (text/html after the app's text/plain).
  for (const name of ['content-type', 'content-disposition']) {
    const fields = new Set<string>()
    for (let i = 0; i + 1 < response.rawHeaders.length; i += 2) {
      if ((response.rawHeaders[i] as string).toLowerCase() === name) fields.add(response.rawHeaders[i + 1] as string)
    }
    if (fields.size > 1) problems.push(`the response has ${fields.size} different ${name === 'content-type' ? 'Content-Type' : 'Content-Disposition'} fields (${[...fields].map((v) => JSON.stringify(v)).join(', ')}): a browser reads another one than the app sent, or refuses the download (does the proxy add its own? nginx: proxy_hide_header it in the location that adds it)`)
  }
  const location = header('location')
  if (status >= 300 && status < 400 && location !== undefined) {
    problems.push(`status ${status}, a redirect to ${redactUrl(location)}, expected 200: check does not follow redirects (a login page? give --header "Cookie: …"; otherwise check the URL it redirects to)`)
  } else if (status !== 200) {
    problems.push(`status ${status}, expected 200`)
  }
  for (const name of offloadNames) {
    const value = header(name)
    if (value !== undefined) problems.push(`the offload header ${name}: ${redactUrl(value)} reached the client: the proxy did not intercept it (is the app reached directly, or does the proxy config not cover this path? see koa-downloads config)`)
  }
  // Every offload response is an empty 200, and a header named by no list still gives one away: a
  // path (a caddy({ header }) rule's value, when neither --rules nor --offload-header named it)
  // or an nginx control header, which nginx itself never passes on. An empty file served by the
  // proxy has neither, so an empty file no longer hides a leak behind matching bytes.
  if (cut === undefined && status === 200 && size === 0) {
    for (const name of Object.keys(response.headers)) {
      const value = header(name)
      if (offloadNames.has(name) || name === 'content-location' || value === undefined) continue
      const why = name.startsWith('x-accel-') ? 'an nginx control header' : value.startsWith('/') ? 'a path' : undefined
      if (why !== undefined) {
        problems.push(`the empty response carries ${name}: ${redactUrl(value)} (${why}), which looks like an offload header that reached the client: the proxy did not intercept it (name a rule's own header with --rules or --offload-header)`)
      }
    }
  }
  if (status === 200 && location !== undefined) problems.push(`a 200 with Location: ${redactUrl(location)} reached the client: the server did not perform the internal redirect`)
  // koa-downloads gives every download a Content-Disposition (attachment or inline, streamed or
  // offloaded), and every generated proxy config keeps it (nginx, Apache and lighttpd pass the app's,
  // Caddy copies it with copy_response_headers). A 200 without one lost the app's headers on the way
  // (its Cache-Control and Content-Security-Policy with it): an uploaded page meant to be saved is
  // then shown, and runs script, in the site's origin.
  const disposition = header('content-disposition')
  if (cut === undefined && status === 200 && disposition === undefined) {
    problems.push('no Content-Disposition reached the client, and koa-downloads sends one with every download: the proxy dropped the app\'s headers (Caddy: a handle_response block without copy_response_headers; generate it again with koa-downloads config caddy), or this URL is not a download of koa-downloads')
  }
  // koa-downloads sends `X-Content-Type-Options: nosniff` with every download. nginx drops it on an
  // X-Accel-Redirect unless the internal location adds it back (the generated ones do): without it
  // a page of the site that names an uploaded .txt or .bin in a <script src> runs it as a script.
  // Browsers read the first value of the field (Fetch: "determine nosniff").
  // A presigned storage URL (where a presignedRedirect() sends the browser) is the storage's own
  // response, in the storage's origin, not the site's: the rule is for what the site serves.
  const presigned = looksPresigned(url.href)
  if (cut === undefined && status === 200 && disposition !== undefined && !presigned && !/^\s*nosniff\s*(?:,|$)/i.test(header('x-content-type-options') ?? '')) {
    problems.push('no X-Content-Type-Options: nosniff reached the client, and koa-downloads sends it with every download: the proxy dropped it, and a browser may then run an uploaded text or binary file as a script of the site (nginx drops it on every X-Accel-Redirect: add_header X-Content-Type-Options nosniff always; in the internal location, as koa-downloads config writes it)')
  }
  // Shown inline, a type that can run script (HTML, SVG, XML, none at all: sniffed) gets
  // `Content-Security-Policy: sandbox` from koa-downloads, streamed or offloaded. A proxy that keeps
  // Content-Disposition but not the policy (a Caddy block copying only some headers) lets an
  // uploaded page run script in the site's origin. Only `sandbox: false` leaves it out on purpose:
  // the app's own pages, which are not what check is for.
  const type = header('content-type')
  if (cut === undefined && status === 200 && disposition !== undefined && /^\s*inline\s*(?:;|$)/i.test(disposition) &&
    !isPassiveType(type ?? '') && !hasSandbox(header('content-security-policy'))) {
    problems.push(`an inline download of type ${type ?? '(none)'} reached the client without Content-Security-Policy: sandbox, which koa-downloads sends with every inline file of a type that can run script: the proxy dropped the app's policy, and an uploaded page would run script in the site's origin (Caddy: copy_response_headers must list Content-Security-Policy; generate it again with koa-downloads config caddy). Only an app route with sandbox: false leaves it out on purpose`)
  }
  // An empty body is what an offload response passed through looks like, unless the file is empty.
  const emptyExpected = expected !== undefined && expected.sha256 === emptySha256
  if (cut === undefined && status === 200 && size === 0 && !emptyExpected) {
    problems.push(`the body is empty: the proxy passed the offload response through instead of sending the file${expected === undefined ? ' (for a file that is really empty, give --file or --sha256)' : ''}`)
  }
  if (cut === undefined && expected !== undefined && (size > 0 || emptyExpected)) {
    if (expected.size !== undefined && expected.size !== size) problems.push(`got ${size} bytes, ${expected.from} has ${expected.size}`)
    if (expected.sha256 !== digest) problems.push(`sha256 ${digest} of the ${size} bytes received differs from ${expected.sha256} (${expected.from})`)
  }
  return problems
}

/** A response header's value, several fields joined with ", ". */
function headerOf (response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * The probes of the proxy's internal locations, as an anonymous client: problems when one serves
 * what it should refuse, and the refusals seen (or what could not be probed) for the report.
 */
async function probeLocations (plan: CheckPlan, deadline: AbortSignal): Promise<{ problems: string[], refused: string[] }> {
  const { url, host, headers: others, rules, expected, file, timeout } = plan
  const problems: string[] = []
  // An nginx rule's location must be `internal`: without it any client fetches the protected files
  // by their internal URL, past the app's permission check, while the download itself works and
  // nothing above can tell. With --rules and --file, check asks for that file there, as a client
  // could (without the check's credentials): only a refusal proves the location internal.
  const refused: string[] = []
  const internalUrl = rules === undefined || file === undefined ? undefined : internalUrlOf(rules, resolve(file), url)
  // nginx({ remote: true }): its location must be internal too, or it is an open proxy to any host.
  // A request for a host that listens nowhere (port 9, discard) shows it: nginx refuses an
  // internal location with 404, and tries the host (502) when it is not internal.
  const remote = rules?.find((rule) => rule.backend === 'nginx' && rule.remote === true && typeof rule.destinationUrl === 'string')
  // Both probes go as an anonymous client: without the session (--header Cookie / Authorization)
  // of the check, with its Host.
  const { cookie: _cookie, authorization: _authorization, ...anonymous } = others
  const probe = async (target: URL): Promise<{ status: number, sha256: string }> => {
    try {
      return await fetchDigest(target, host === undefined ? anonymous : { ...anonymous, host }, deadline)
    } catch (error) {
      if (deadline.aborted || (error as Error | null)?.name === 'AbortError') throw new Error(`no complete response within ${timeout} s (--timeout)`)
      throw error
    }
  }
  if (remote !== undefined) {
    const destination = remote.destinationUrl!.endsWith('/') ? remote.destinationUrl! : remote.destinationUrl + '/'
    const probeUrl = new URL(destination + 'http/127.0.0.1:9/koa-downloads-check', url.origin)
    const { status: probed } = await probe(probeUrl)
    if (probed !== 404) {
      problems.push(`an anonymous request for ${probeUrl.pathname} got ${probed}, not the 404 of an internal location: the proxy's location for nginx({ remote: true }) is not internal, an open proxy to any host (nginx: add "internal;" to it, as koa-downloads config writes it)`)
    } else {
      refused.push(`  - an anonymous request for ${probeUrl.pathname} is refused (404)`)
    }
  }
  if (rules !== undefined) {
    // What the probes cannot cover is said, not left out: --rules was given to have them.
    if (file !== undefined && internalUrl === undefined && rules.some((rule) => rule.backend === 'nginx' && typeof rule.sourceDir === 'string')) {
      refused.push(`  - not probed: ${file} is not below the sourceDir of an nginx rule that covers it first, as written there (give --file by that path), so no internal location was asked for`)
    }
    for (const rule of rules) {
      if (rule.backend === 'nginx' && typeof rule.sourceDir !== 'string' && rule.remote !== true && typeof rule.destinationUrl === 'string') {
        refused.push(`  - not probed: the location ${rule.destinationUrl} of an nginx sourceUrl rule (an open one serves the origin to anyone: make sure it has "internal;", as koa-downloads config writes it)`)
      }
    }
  }
  if (internalUrl !== undefined) {
    const probed = await probe(internalUrl)
    if (probed.status >= 200 && probed.status < 300) {
      problems.push(`an anonymous request for the internal URL ${redactUrl(internalUrl.href)} got ${probed.status}${probed.sha256 === expected?.sha256 ? ' with the file\'s bytes' : ''}: the proxy's location for it is not internal, so any client fetches the protected files past the app's permission check (nginx: add "internal;" to the location, as koa-downloads config writes it)`)
    } else {
      refused.push(`  - an anonymous request for the internal URL ${internalUrl.pathname} is refused (${probed.status})`)
    }
  }
  return { problems, refused }
}

/** Prints the outcome: exit code 1 with the problems, or 0 with what was verified and what was not. */
function report (plan: CheckPlan, fetched: Fetched, problems: string[], refused: string[]): number {
  const { url, offloadNames, expected } = plan
  const { response, status, size, digest, rawSize, rawDigest, coding } = fetched
  const type = headerOf(response, 'content-type')
  const disposition = headerOf(response, 'content-disposition')
  // The URL without its credentials or query (a token, a signature): the output goes to CI logs.
  const summary = `${redactUrl(url.href)}: ${status}, ${size} bytes, sha256 ${digest}` +
    (coding === undefined || digest === rawDigest ? '' : ` (decoded from ${rawSize} bytes of Content-Encoding: ${coding.name}, as a browser saves it)`)
  if (problems.length > 0) {
    process.stderr.write(`koa-downloads check FAILED ${summary}\n${problems.map((p) => `  - ${p}\n`).join('')}`)
    return 1
  }
  process.stdout.write([
    `koa-downloads check OK ${summary}`,
    `  - no offload header reached the client (${[...offloadNames].join(', ')}, Location)`,
    expected === undefined ? '  - bytes not compared (give --sha256 or --file)' : `  - bytes match ${expected.from}`,
    `  - Content-Type: ${type ?? '(none)'}`,
    `  - Content-Disposition: ${disposition ?? '(none)'}`,
    ...refused,
    // A file no rule covers is streamed by the app and reaches the client exactly like one the
    // proxy sent (nginx answers both with its own Server and Date): no header tells them apart.
    '  - not proven: that the proxy, not the app, sent the bytes (a file no rule covers is streamed and looks the same);',
    '    check the app itself, bypassing the proxy: it fails naming the offload header when a rule matches',
    ''
  ].join('\n'))
  return 0
}
/** Whether a Content-Security-Policy value (policies joined by commas) has a `sandbox` directive. */
function hasSandbox (value: string | undefined): boolean {
  // `sandbox allow-scripts allow-same-origin` lets the page run script in the site's origin: no sandbox.
  return value !== undefined && value.split(/[,;]/).some((directive) => /^\s*sandbox(?:\s|$)/i.test(directive) && !(/\ballow-scripts\b/i.test(directive) && /\ballow-same-origin\b/i.test(directive)))
}

/**
 * The URL at which the proxy would serve `file` for the first rule that covers it (the app's
 * choice), when that is an nginx rule: its internal location, on the checked URL's origin.
 */
function internalUrlOf (rules: readonly ConfigRule[], file: string, base: URL): URL | undefined {
  for (const rule of rules) {
    if (typeof rule.sourceDir !== 'string') continue
    const rel = relative(rule.sourceDir, file)
    if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) continue
    if (rule.backend !== 'nginx' || typeof rule.destinationUrl !== 'string') return undefined
    const destination = rule.destinationUrl.endsWith('/') ? rule.destinationUrl : rule.destinationUrl + '/'
    return new URL(destination + rel.split(sep).map(encodeURIComponent).join('/'), base.origin)
  }
  return undefined
}

async function fetchDigest (url: URL, headers: Record<string, string | string[]>, signal: AbortSignal): Promise<{ status: number, sha256: string }> {
  const sent = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers, agent: false, signal })
  sent.end()
  const response = (await once(sent, 'response') as [IncomingMessage])[0]
  const hash = createHash('sha256')
  for await (const chunk of response as AsyncIterable<Buffer>) hash.update(chunk)
  return { status: response.statusCode ?? 0, sha256: hash.digest('hex') }
}

/** The decoder for a response's Content-Encoding; undefined for none or identity. */
function contentCoding (value: string | undefined): { name: string, decoder: Transform | undefined } | undefined {
  const name = (value ?? '').trim().toLowerCase()
  if (name === '' || name === 'identity') return undefined
  return { name, decoder: isDecodable(name) ? decoderFor(name) : undefined }
}

async function hashFile (path: string): Promise<{ sha256: string, size: number }> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer, which --timeout (the request's) would
  // not bound. Only a regular file is read: a FIFO or a device has no fixed bytes to compare, and
  // /dev/zero would never end. (A Unix socket cannot be opened at all: ENXIO.)
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  try {
    const stats = await handle.stat()
    if (stats.isDirectory()) throw Object.assign(new Error('a directory'), { code: 'EISDIR' })
    if (!stats.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG' })
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
      hash.update(chunk)
      size += chunk.length
    }
    return { sha256: hash.digest('hex'), size }
  } finally {
    await handle.close()
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`koa-downloads: ${error.message}\n\n${usage}`)
    process.exitCode = 2
  } else {
    // Some errors keep the reason in `cause`
    const cause = (error as { cause?: unknown } | null)?.cause
    const reason = cause instanceof Error ? `: ${describe(cause)}` : ''
    process.stderr.write(`koa-downloads: ${describe(error)}${reason}\n`)
    process.exitCode = 1
  }
})

/**
 * What an error says, never nothing: Node's AggregateError for a name whose every address refused
 * (`localhost` as ::1 and 127.0.0.1) has an empty message, the reasons being in its `errors`. Such
 * an error is told by its code (or name) and each inner error's message.
 */
function describe (error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const inner = error instanceof AggregateError ? (error.errors as unknown[]).map(describe) : []
  if (inner.length === 0 && error.message !== '') return error.message
  const code = (error as { code?: unknown }).code
  const head = error.message !== '' ? error.message : typeof code === 'string' && code !== '' ? code : error.name
  return inner.length === 0 ? head : `${head}: ${inner.join('; ')}`
}

/** Rejects with an AbortError once `signal` aborts (at once if it has). */
async function abortedBy (signal: AbortSignal): Promise<never> {
  return await new Promise<never>((_resolve, reject) => {
    const fail = (): void => { reject(new DOMException('the --timeout passed', 'AbortError')) }
    if (signal.aborted) fail()
    else signal.addEventListener('abort', fail, { once: true })
  })
}
