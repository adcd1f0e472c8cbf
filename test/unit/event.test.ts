import { describe, expect, test } from 'vitest'
import { toOutboxRow } from '../../src/event.js'
import { OutboxValidationError } from '../../src/index.js'

const id = '01900000-0000-7000-8000-000000000000'
const base = { aggregateType: 'order', aggregateId: 'o1', type: 'order.created', payload: { a: 1 } }

describe('serializing an event', () => {
  test('keeps the payload as compact JSON and converts numeric aggregate ids to text', () => {
    const row = toOutboxRow({ ...base, aggregateId: 42, payload: { when: new Date(0), n: [1, null] } }, id, 1024)
    expect(row).toEqual({
      id,
      aggregateType: 'order',
      aggregateId: '42',
      type: 'order.created',
      payloadJson: '{"when":"1970-01-01T00:00:00.000Z","n":[1,null]}',
      headersJson: null,
      topic: null,
    })
  })

  test('accepts BigInt aggregate ids and objects with toJSON (Prisma Decimal serializes itself)', () => {
    const decimalLike = { toJSON: () => '12.50' }
    const row = toOutboxRow({ ...base, aggregateId: 9007199254740993n, payload: { total: decimalLike } }, id, 1024)
    expect(row.aggregateId).toBe('9007199254740993')
    expect(row.payloadJson).toBe('{"total":"12.50"}')
  })

  test('a shared (non-cyclic) sub-object is fine', () => {
    const shared = { x: 1 }
    expect(toOutboxRow({ ...base, payload: { a: shared, b: shared } }, id, 1024).payloadJson).toBe(
      '{"a":{"x":1},"b":{"x":1}}',
    )
  })

  test('an unsafe numeric aggregate id is refused', () => {
    expect(() => toOutboxRow({ ...base, aggregateId: 2 ** 53 }, id, 1024)).toThrow(OutboxValidationError)
  })

  test('the size limit counts multi-byte characters as bytes', () => {
    const payload = 'é'.repeat(600) // 1,200 bytes, 600 characters
    expect(() => toOutboxRow({ ...base, payload }, id, 1000)).toThrow(/over the 1000-byte maximum/)
  })

  test('a NUL character is refused before SQL: PostgreSQL text and jsonb cannot store it', () => {
    expect(() => toOutboxRow({ ...base, aggregateId: 'o\u0000' }, id, 1024)).toThrow(/aggregateId contains a NUL/)
    expect(() => toOutboxRow({ ...base, headers: { h: 'a\u0000b' } }, id, 1024)).toThrow(/headers\.h contains a NUL/)
    expect(() => toOutboxRow({ ...base, payload: { list: ['ok', 'x\u0000'] } }, id, 1024)).toThrow(
      /payload\.list\[1\] contains a NUL/,
    )
    expect(() => toOutboxRow({ ...base, payload: { 'k\u0000': 1 } }, id, 1024)).toThrow(/payload has a key with a NUL/)
  })
})
