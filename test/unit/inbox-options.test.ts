import { describe, expect, test } from 'vitest'
import { outageSign } from '../../inbox/database-down.js'
import { createInbox, DEFAULT_INBOX_OPTIONS, InboxConfigError } from '../../inbox/index.js'
import { parseRecord } from '../../inbox/record.js'

const prisma = { $transaction: async () => {}, $queryRawUnsafe: async () => [], $executeRawUnsafe: async () => 0 }
const valid = {
  prisma,
  kafka: { brokers: ['localhost:9092'] },
  topics: ['orders'],
  group: 'billing',
  name: 'billing',
  handlers: { 'order.created': async () => {} },
}

describe('createInbox options', () => {
  test('defaults fill what is not given', () => {
    expect(DEFAULT_INBOX_OPTIONS).toMatchObject({ onFailure: 'block-key', attempts: 5, partitionsConcurrently: 4 })
    expect(() => createInbox(valid as never)).not.toThrow()
  })

  test.each([
    [{ prisma: {} }, /prisma is not a PrismaClient/],
    [{ kafka: { brokers: [] } }, /kafka.brokers is \[\]; pass \["host:port"/],
    [{ topics: [] }, /topics is empty/],
    [{ topics: ['bad topic'] }, /topics entry "bad topic"/],
    [{ group: '' }, /group is missing or empty/],
    [{ handlers: { 'order.created': 'nope' } }, /handlers\['order.created'\] is not a function/],
    [{ onFailure: 'skip' }, /onFailure is "skip"; pass "block-key" or "continue"/],
    [{ attempts: 0 }, /attempts is 0; pass a positive whole number/],
    [{ table: 'in box' }, /table is "in box"/],
  ])('%o is refused, naming the option and the fix', (change, message) => {
    expect(() => createInbox({ ...valid, ...change } as never)).toThrow(InboxConfigError)
    expect(() => createInbox({ ...valid, ...change } as never)).toThrow(message)
  })
})

describe('records', () => {
  const record = { topic: 't', partition: 0, offset: '5', key: 'k', timestamp: 1 }
  test('an outbox record becomes the event its handler receives', () => {
    const parsed = parseRecord({
      ...record,
      value: '{"a":1}',
      headers: { id: 'e1', type: 'x', aggregateType: 'order' },
    })
    expect(parsed).toEqual({
      event: expect.objectContaining({ id: 'e1', type: 'x', aggregateId: 'k', payload: { a: 1 }, offset: '5' }),
    })
  })
  test.each([
    [{ value: '{}', headers: {} }, /no "id" header/],
    [{ value: '{}', headers: { id: 'e' } }, /no "type" header/],
    [{ value: null, headers: { id: 'e', type: 'x' } }, /tombstone/],
    [{ value: 'hello', headers: { id: 'e', type: 'x' } }, /not JSON \(starts "hello"\)/],
  ])('poison: %o', (fields, why) => {
    const parsed = parseRecord({ ...record, ...fields })
    expect('poison' in parsed && parsed.poison).toMatch(why)
  })
})

test('database outages are told from handler failures by code and kind, through causes', () => {
  expect(outageSign(Object.assign(new Error('x'), { code: 'P1001' }))).toBe('database')
  expect(outageSign(new Error('wrapped', { cause: { kind: 'ConnectionClosed' } }))).toBe('database')
  expect(outageSign(new Error('wrapped', { cause: { kind: 'postgres', code: '57P01' } }))).toBe('database')
  expect(outageSign(new Error('wrapped', { cause: { code: '08006' } }))).toBe('database')
  // The same walk as the worker's Kafka classifications: retry wrappers and AggregateErrors too.
  expect(outageSign(Object.assign(new Error('retries exhausted'), { originalError: { code: 'P1017' } }))).toBe(
    'database',
  )
  expect(outageSign(new AggregateError([new Error('x'), Object.assign(new Error('y'), { code: '57P03' })]))).toBe(
    'database',
  )
  // A socket's code alone may be a handler's own call: the runner then asks the database.
  expect(outageSign(new Error('fetch failed', { cause: { code: 'ECONNREFUSED' } }))).toBe('socket')
  expect(outageSign(new Error('customer missing'))).toBeUndefined()
  expect(outageSign(new Error('unique', { cause: { kind: 'UniqueConstraintViolation' } }))).toBeUndefined()
})
