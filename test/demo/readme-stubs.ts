// What the README's examples leave to the user ("your permission check", "your rows"), as the
// README test provides it. See test/demo/readme.test.ts.

/** `file`: the path below /srv/reports (README); `key`: the object in storage (docs/adapters.md). */
export interface Report { file: string, key: string, title: string }

/** Report 42 belongs to everyone; any other id is unknown (the route then answers 404). */
export async function findReport (id: string | undefined, _user: unknown): Promise<Report | undefined> {
  return id === '42' ? { file: 'q1.pdf', key: 'reports/q1.pdf', title: 'Q1 — résumé' } : undefined
}

export async function * generateCsvRows (): AsyncGenerator<string> {
  yield 'id,total\n'
  for (let id = 1; id <= 3; id++) yield `${id},${id * 10}\n`
}

export const csvText = 'id,total\n1,10\n2,20\n3,30\n'
