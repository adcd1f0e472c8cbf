import { expect, test } from 'vitest'
import { type PublicationFacts, publicationProblem } from '../../worker/slot/checks.js'

const names = { publication: 'prisma_outbox', table: 'outbox' }
const fine: PublicationFacts = {
  tableOid: '16400',
  publicationExists: true,
  publishesInserts: true,
  allTables: false,
  membershipOid: '16410',
  filtered: false,
  partitionsByOwnName: false,
}

test('one rule for start-up, the watch and status: each way inserts can miss the stream is named with its fix', () => {
  expect(publicationProblem(fine, names)).toBeUndefined()
  expect(publicationProblem({ ...fine, membershipOid: null, allTables: true }, names)).toBeUndefined()
  const cases: [Partial<PublicationFacts>, string, RegExp][] = [
    [{ publicationExists: false }, 'OUTBOX_NO_PUBLICATION', /does not exist: apply the outbox migration/],
    [{ tableOid: null, membershipOid: null }, 'OUTBOX_NO_TABLE', /table public\.outbox does not exist/],
    [{ publishesInserts: false }, 'OUTBOX_PUBLICATION_TABLE', /SET \(publish = 'insert'\)/],
    [{ membershipOid: null }, 'OUTBOX_PUBLICATION_TABLE', /ADD TABLE "public"\."outbox"/],
    [{ filtered: true }, 'OUTBOX_PUBLICATION_TABLE', /filters the outbox table's rows or columns: .*SET TABLE/],
    [{ partitionsByOwnName: true }, 'OUTBOX_PUBLICATION_TABLE', /is partitioned.*publish_via_partition_root = true/],
  ]
  for (const [facts, code, message] of cases) {
    const problem = publicationProblem({ ...fine, ...facts }, names)
    expect(problem?.code).toBe(code)
    expect(problem?.message).toMatch(message)
  }
})
