import test from 'ava'
import { ReadAhead, readToStart, samePart } from '../source/read-ahead.ts'

const nextTurn = async (): Promise<void> => { await new Promise((resolve) => { setImmediate(resolve) }) }

test('ReadAhead: the read in the same turn takes the value, and nothing is released', async (t) => {
  const released: string[] = []
  const ahead = new ReadAhead<string>((value) => { released.push(value) })
  ahead.hold('fd 7')
  await Promise.resolve() // microtasks (awaits within the same turn) keep it held
  t.is(ahead.take(), 'fd 7')
  t.is(ahead.take(), undefined, 'handed over once')
  await nextTurn()
  t.deepEqual(released, [])
})

test('ReadAhead: what nobody takes is released once, at the end of the turn', async (t) => {
  const released: string[] = []
  const ahead = new ReadAhead<string>((value) => { released.push(value) })
  ahead.hold('fd 7')
  t.deepEqual(released, [])
  await nextTurn()
  t.deepEqual(released, ['fd 7'])
  t.is(ahead.take(), undefined)
  await nextTurn()
  t.deepEqual(released, ['fd 7'])
})

test('ReadAhead: holding again releases the previous value at once; drop() releases now', async (t) => {
  const released: string[] = []
  const ahead = new ReadAhead<string>((value) => { released.push(value) })
  ahead.hold('first')
  ahead.hold('second')
  t.deepEqual(released, ['first'])
  ahead.drop()
  t.deepEqual(released, ['first', 'second'])
  await nextTurn()
  t.deepEqual(released, ['first', 'second'], 'the end-of-turn release of either does not fire again')
})

test('ReadAhead: takeIf hands over a value that fits and releases one that does not, at once', async (t) => {
  const released: string[] = []
  const ahead = new ReadAhead<string>((value) => { released.push(value) })
  ahead.hold('bytes 0-9')
  t.is(ahead.takeIf((value) => value === 'bytes 0-9'), 'bytes 0-9')
  t.deepEqual(released, [])
  ahead.hold('bytes 0-9')
  t.is(ahead.takeIf((value) => value === 'bytes 10-19'), undefined)
  t.deepEqual(released, ['bytes 0-9'])
  t.is(ahead.takeIf(() => true), undefined, 'nothing left')
  await nextTurn()
  t.deepEqual(released, ['bytes 0-9'], 'released once')
})

test('readToStart and samePart: what a remote source may fetch in stat(), and whether it is the part asked for', (t) => {
  t.deepEqual(readToStart({ willRead: 'whole' }), { range: undefined })
  t.deepEqual(readToStart({ willRead: 'range', range: 'bytes=0-9' }), { range: 'bytes=0-9' })
  t.is(readToStart({ willRead: 'range' }), undefined, 'a range serve() did not forward (If-Range, several, odd syntax)')
  t.is(readToStart({}), undefined)
  t.is(readToStart(undefined), undefined)
  t.true(samePart(undefined, undefined))
  t.true(samePart({ start: 0, end: 9 }, { start: 0, end: 9 }))
  t.false(samePart({ start: 0, end: 9 }, { start: 0, end: 10 }))
  t.false(samePart(undefined, { start: 0, end: 9 }))
  t.false(samePart({ start: 0, end: 9 }, undefined))
})
