import test from 'ava'
import { ReadAhead } from '../source/read-ahead.ts'

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
