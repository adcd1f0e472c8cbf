import { describe, expect, test } from 'vitest'
import { toOutboxRow } from '../../src/event.js'
import { OutboxValidationError } from '../../src/index.js'
import { jsonbNumberText } from '../../src/json.js'
import { recordBytes, toKafkaRecord } from '../../worker/delivery/records.js'

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

  test('numbers are measured as jsonb prints them: every digit, no exponent', () => {
    expect(jsonbNumberText(1e21)).toBe(`1${'0'.repeat(21)}`)
    expect(jsonbNumberText(1.2345e25)).toBe(`12345${'0'.repeat(21)}`)
    expect(jsonbNumberText(1.5e-7)).toBe('0.00000015')
    expect(jsonbNumberText(-2.5e-10)).toBe('-0.00000000025')
    expect(jsonbNumberText(5e-324)).toBe(`0.${'0'.repeat(323)}5`)
    expect(jsonbNumberText(123.456)).toBe('123.456')
    expect(jsonbNumberText(-0)).toBe('0')
  })

  test('a 700 KB array of zeros is 1.05 MB as the worker sees it: emit refuses it under 1 MiB', () => {
    const payload = new Array(350_000).fill(0)
    expect(JSON.stringify(payload).length).toBe(700_001)
    expect(() => toOutboxRow({ ...base, payload }, id, 1024 * 1024)).toThrow(
      /^invalid outbox event: event is 1050\d{3} bytes as Kafka will receive it .*over the 1048576-byte maximum/,
    )
  })

  test("emit's measure is the worker's: the largest event emit accepts is exactly at the worker's limit", () => {
    const event = { ...base, payload: { zeros: new Array(1000).fill(0), big: 1e21 }, headers: { tenant: 'acme' } }
    // The record the worker builds from the stored row: the payload as jsonb prints it.
    const jsonb = `{"big": 1${'0'.repeat(21)}, "zeros": [${new Array(1000).fill('0').join(', ')}]}`
    const record = toKafkaRecord(
      {
        id,
        aggregateType: base.aggregateType,
        aggregateId: base.aggregateId,
        type: base.type,
        payload: jsonb,
        headers: { tenant: 'acme' },
        topic: null,
        createdAt: 0,
      },
      '{aggregateType}',
    )
    const workerBytes = recordBytes(record)
    expect(() => toOutboxRow(event, id, workerBytes)).not.toThrow()
    expect(() => toOutboxRow(event, id, workerBytes - 1)).toThrow(`is ${workerBytes} bytes`)
  })
})
