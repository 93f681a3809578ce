import { once } from 'node:events'
import { createServer, connect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { PassThrough, Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import test from 'ava'
import { expireAfterPoll, guardStream } from '../source/guarded-stream.ts'

async function drain (stream: Readable): Promise<{ bytes: Buffer, error: unknown }> {
  const chunks: Buffer[] = []
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    return { bytes: Buffer.concat(chunks), error: undefined }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error }
  }
}

test('guardStream: a source that delivers exactly the expected bytes ends normally', async (t) => {
  const { bytes, error } = await drain(guardStream(Readable.from([Buffer.from('abc'), Buffer.from('def')]), { expected: 6, what: 'x' }))
  t.is(error, undefined)
  t.is(bytes.toString(), 'abcdef')
})

test('guardStream: a source that ends short is an E_UPSTREAM error, never a clean end', async (t) => {
  const { error } = await drain(guardStream(Readable.from([Buffer.from('abc')]), { expected: 6, what: 'x' }))
  t.is((error as { code?: string }).code, 'E_UPSTREAM')
  t.regex((error as Error).message, /ended after 3 of 6 bytes/)
})

test('guardStream: a source that sends more than expected is an error', async (t) => {
  const { error } = await drain(guardStream(Readable.from([Buffer.from('abcdefg')]), { expected: 6, what: 'x' }))
  t.regex((error as Error).message, /more than 6 bytes/)
})

test('guardStream: the byte that completes the expected length waits for the source\'s end, so a longer source fails before the consumer has them all', async (t) => {
  const source = new PassThrough()
  const guarded = guardStream(source, { expected: 6, what: 'x' })
  const received: Buffer[] = []
  guarded.on('data', (chunk: Buffer) => { received.push(chunk) })
  const failed = new Promise<Error>((resolve) => { guarded.once('error', resolve) })
  source.write('abc')
  source.write('def')
  await sleep(20)
  t.is(Buffer.concat(received).toString(), 'abcde', 'all but the last byte, while the source has not ended')
  source.write('g')
  t.regex((await failed).message, /^x: the source sent more than 6 bytes$/)
  t.is(Buffer.concat(received).toString(), 'abcde')
  t.true(source.destroyed)
})

test('guardStream: the held byte follows at the end, also when it came alone or in a string chunk', async (t) => {
  for (const chunks of [['abcde', 'f'], ['abcdef'], ['a', 'b', 'c', 'd', 'e', 'f']]) {
    const source = new PassThrough()
    const guarded = guardStream(source, { expected: 6, what: 'x' })
    const drained = drain(guarded)
    for (const chunk of chunks) source.write(chunk)
    await sleep(5)
    source.end()
    const { bytes, error } = await drained
    t.is(error, undefined)
    t.is(bytes.toString(), 'abcdef', chunks.join('|'))
  }
  const strings = guardStream(Readable.from(['ab', 'cé'], { objectMode: false }), { expected: 5, what: 'x' })
  const { bytes, error } = await drain(strings)
  t.is(error, undefined)
  t.is(bytes.toString(), 'abcé')
})

test('guardStream: a digest is fed every byte as it arrives, and one that does not match fails the stream before the held byte goes on (with a length) or before the end (without)', async (t) => {
  const sum = (bytes: Buffer[]): number => Buffer.concat(bytes).reduce((total, byte) => total + byte, 0)
  const check = (expectedSum: number): { fed: Buffer[], digest: { update: (bytes: Buffer) => void, mismatch: () => string | undefined } } => {
    const fed: Buffer[] = []
    return { fed, digest: { update: (bytes) => { fed.push(bytes) }, mismatch: () => sum(fed) === expectedSum ? undefined : `sum ${sum(fed)}, not ${expectedSum}` } }
  }
  const source = (): Readable => Readable.from([Buffer.from('abc'), 'de', Buffer.from('f')])
  const right = check(sum([Buffer.from('abcdef')]))
  const good = await drain(guardStream(source(), { expected: 6, what: 'x', digest: right.digest }))
  t.is(good.error, undefined)
  t.is(good.bytes.toString(), 'abcdef')
  t.is(Buffer.concat(right.fed).toString(), 'abcdef')
  for (const expected of [6, undefined]) {
    const bad = await drain(guardStream(source(), { expected, what: 'x', digest: check(1).digest }))
    t.is((bad.error as { code?: string }).code, 'E_UPSTREAM')
    t.is((bad.error as Error).message, `x: sum ${sum([Buffer.from('abcdef')])}, not 1`)
    // With a length, the last byte is never passed on; without one, the stream errors instead of ending.
    if (expected !== undefined) t.true(bad.bytes.length < expected)
  }
})

test('guardStream: a source destroyed without ending is an error', async (t) => {
  const source = new PassThrough()
  const guarded = guardStream(source, { what: 'x' })
  source.write('abc')
  setImmediate(() => source.destroy())
  const { error } = await drain(guarded)
  t.is((error as { code?: string }).code, 'E_UPSTREAM')
})

test('guardStream: a silent source while the consumer waits → E_TIMEOUT, and the source is destroyed', async (t) => {
  const source = new PassThrough()
  const guarded = guardStream(source, { idleTimeout: 50, what: 'x' })
  source.write('abc')
  const { error, bytes } = await drain(guarded)
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  t.is(bytes.toString(), 'abc')
  t.true(source.destroyed)
})

test('guardStream: time a slow consumer spends not reading (buffer full) does not count as idle', async (t) => {
  const source = new PassThrough()
  const chunk = Buffer.alloc(1024 * 1024, 1)
  const guarded = guardStream(source, { idleTimeout: 50, expected: 2 * chunk.length + 3, what: 'x' })
  guarded.on('error', () => {})
  source.write(chunk)
  source.write(chunk)
  const consumer = stallingConsumer(guarded, chunk.length)
  await sleep(150)
  t.is(consumer.received(), chunk.length)
  t.false(guarded.destroyed, 'the consumer did not read for 3× the idle timeout, but it was full: not idle')
  source.end('end')
  const finished = new Promise((resolve) => guarded.once('end', resolve))
  consumer.release()
  await finished
  t.is(consumer.received(), 2 * chunk.length + 3)
})

/**
 * Pipes `stream` into a consumer that takes `first` bytes and then stops reading (a congested
 * socket: backpressure) until release() is called.
 */
function stallingConsumer (stream: Readable, first: number): { received: () => number, release: () => void } {
  let received = 0
  let release: () => void = () => {}
  stream.pipe(new Writable({
    highWaterMark: 1,
    write (data: Buffer, _encoding, callback) {
      received += data.length
      if (received === first) release = callback
      else callback()
    }
  }))
  return { received: () => received, release: () => { release() } }
}

test('guardStream: a source that goes silent after backpressure was relieved still times out', async (t) => {
  const source = new PassThrough()
  const chunk = Buffer.alloc(1024 * 1024, 1)
  const guarded = guardStream(source, { idleTimeout: 50, expected: 3 * chunk.length, what: 'x' })
  const failed = new Promise<Error>((resolve) => guarded.once('error', resolve))
  source.write(chunk)
  source.write(chunk)
  const consumer = stallingConsumer(guarded, chunk.length)
  await sleep(120) // held by backpressure: not idle
  t.false(guarded.destroyed)
  consumer.release() // the consumer reads on; the source has sent 2 of 3 MiB and now says nothing
  const keepAlive = setTimeout(() => {}, 2000) // the guard's timer is unref'd: keep the test process up
  const error = await failed
  clearTimeout(keepAlive)
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  t.is(consumer.received(), 2 * chunk.length)
  t.true(source.destroyed)
})

test('guardStream: an event loop blocked for longer than the idle timeout is not a silent source: bytes that arrived meanwhile are read before the verdict', async (t) => {
  // A real socket: the bytes reach the kernel while this thread is busy, as an upstream's do while
  // a request handler (or a GC pause, or a CPU-starved machine) holds the loop. The timer expires
  // during the block and runs at the end of that turn, before the loop next polls the socket.
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const source = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(source, 'connect')
  const [upstream] = await accepted
  const guarded = guardStream(source, { idleTimeout: 100, expected: 6, what: 'x' })
  const result = drain(guarded)
  await sleep(30) // the consumer waits: the guard's timer runs
  await new Promise<void>((resolve) => {
    setImmediate(() => {
      upstream.write('abc') // into the kernel at once; this thread reads it at its next poll
      const until = Date.now() + 300
      while (Date.now() < until) {} // the hold-up: 3× the idle timeout
      resolve()
      // The turn ends by running the timers that expired meanwhile, the guard's among them; its
      // next poll for I/O comes after that.
    })
  })
  setTimeout(() => { upstream.end('def') }, 30)
  const { bytes, error } = await result
  t.is(error, undefined)
  t.is(bytes.toString(), 'abcdef')
})

test('guardStream: destroying the guarded stream (client abort) destroys the source', (t) => {
  const source = new PassThrough()
  const guarded = guardStream(source, { what: 'x' })
  guarded.destroy()
  t.true(source.destroyed)
})

test('expireAfterPoll: expires once its delay has passed (here after the loop was held up past it); a cancel before stops it (the poll itself is pinned by the held-up-loop tests of S3, GCS and HttpFile)', async t => {
  const expired: string[] = []
  const cancelLater = expireAfterPoll(5, () => { expired.push('kept') })
  const cancelNow = expireAfterPoll(5, () => { expired.push('cancelled') })
  cancelNow()
  // A loop held up past the delay: the timer has expired, the callback waits for the next poll.
  const until = Date.now() + 20
  while (Date.now() < until) { /* hold the event loop */ }
  await new Promise<void>((resolve) => { setTimeout(resolve, 0) })
  await new Promise<void>((resolve) => { setImmediate(resolve) })
  t.deepEqual(expired, ['kept'])
  cancelLater()
})

test('guardStream: endTimeout cuts a source that sent all its bytes but never ends (the held byte would keep the client one short for good); one that ends in time passes whole', async (t) => {
  const stuck = new PassThrough()
  stuck.write(Buffer.from('abcdef'))
  const started = Date.now()
  const { bytes, error } = await drain(guardStream(stuck, { expected: 6, what: 'x', endTimeout: 100 }))
  t.is((error as { code?: string }).code, 'E_TIMEOUT')
  t.regex((error as Error).message, /all 6 bytes came, but the source did not end within 100 ms/)
  t.is(bytes.toString(), 'abcde', 'the last byte never went out')
  t.true(Date.now() - started >= 90)
  t.true(stuck.destroyed, 'the source is released')

  const late = new PassThrough()
  late.write(Buffer.from('abcdef'))
  setTimeout(() => { late.end() }, 30)
  const whole = await drain(guardStream(late, { expected: 6, what: 'x', endTimeout: 500 }))
  t.is(whole.error, undefined)
  t.is(whole.bytes.toString(), 'abcdef')
})
