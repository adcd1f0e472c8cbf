import { describe, expect, test } from 'vitest'
import { halves, MAX_REQUEST_BYTES, RequestBudget, requestLength } from '../../worker/delivery/batching.js'
import { chunkRecords, sized } from '../../worker/delivery/exactly-once/refused.js'
import { type KafkaRecord, recordBytes } from '../../worker/delivery/records.js'
import { DEFAULTS } from '../../worker/operations/config.js'

describe('what one Kafka request may hold (both delivery modes)', () => {
  const limits = { batchSize: 3, maxMessageBytes: 100 }

  test('at most --batch-size records', () => {
    const budget = new RequestBudget(limits)
    expect([1, 2, 3, 4].map(() => budget.add('t', 1))).toEqual([true, true, true, false])
  })

  test('at most --max-message-bytes for one topic, other topics counted apart', () => {
    const budget = new RequestBudget({ ...limits, batchSize: 10 })
    expect(budget.add('a', 60)).toBe(true)
    expect(budget.add('b', 60)).toBe(true)
    expect(budget.add('a', 41)).toBe(false)
    expect(budget.add('a', 40)).toBe(true)
  })

  test('at most MAX_REQUEST_BYTES in all; a first record larger than every limit still goes (alone)', () => {
    const big = new RequestBudget({ batchSize: 10, maxMessageBytes: MAX_REQUEST_BYTES })
    expect(big.add('a', MAX_REQUEST_BYTES - 1)).toBe(true)
    expect(big.add('b', 2)).toBe(false)
    const alone = new RequestBudget(limits)
    expect(alone.add('a', 1000)).toBe(true)
    expect(alone.add('a', 1)).toBe(false)
  })

  test('a refused batch is searched in halves, the first (larger) half first', () => {
    expect(halves([1, 2, 3, 4, 5])).toEqual([
      [1, 2, 3],
      [4, 5],
    ])
  })

  test('a request is cut from any start; exactly-once cuts a transaction into requests the same way, in order', () => {
    const sizes = [
      { topic: 'a', bytes: 60 },
      { topic: 'a', bytes: 60 },
      { topic: 'b', bytes: 60 },
      { topic: 'a', bytes: 10 },
    ]
    expect(requestLength(sizes, 0, limits, (s) => s)).toBe(1)
    expect(requestLength(sizes, 1, limits, (s) => s)).toBe(3)
    expect(requestLength(sizes, 4, limits, (s) => s)).toBe(0)
    const records: KafkaRecord[] = ['x'.repeat(400), 'y'.repeat(400), 'z', 'w'].map((value, i) => ({
      topic: 'a',
      key: String(i),
      value,
      headers: {},
      timestamp: '0',
    }))
    const chunks = chunkRecords(records.map(sized), {
      ...DEFAULTS,
      databaseUrl: '',
      kafkaBrokers: [],
      batchSize: 3,
      maxMessageBytes: 2 * recordBytes(records[0] as KafkaRecord) - 1,
    })
    expect(chunks.flat()).toEqual(records)
    expect(chunks.map((c) => c.map((r) => r.key))).toEqual([['0'], ['1', '2', '3']])
  })

  test('exactly-once cuts requests by the size each record was given on arrival, not by measuring it again', () => {
    const record = (key: string): KafkaRecord => ({ topic: 'a', key, value: 'v', headers: {}, timestamp: '0' })
    const config = { ...DEFAULTS, databaseUrl: '', kafkaBrokers: [], batchSize: 10, maxMessageBytes: 1000 }
    const given = [
      { record: record('0'), bytes: 600 },
      { record: record('1'), bytes: 600 },
      { record: record('2'), bytes: 10 },
    ]
    expect(chunkRecords(given, config).map((c) => c.map((r) => r.key))).toEqual([['0'], ['1', '2']])
  })
})
