import { describe, expect, test } from 'vitest'
import { recordBytes, toDeadLetter, toKafkaRecord, undecodableRecord } from '../../worker/delivery/records.js'

const row = {
  id: '0190a0a0-0000-7000-8000-000000000001',
  aggregateType: 'order',
  aggregateId: 'o-1',
  type: 'order.created',
  payload: '{"total": 12}',
  headers: { tenant: 'acme' },
  topic: null,
  createdAt: 0,
}

describe('dead-letter records always fit under the limit', () => {
  test('a record too large for its value keeps its headers and key, without the value', () => {
    const big = toKafkaRecord({ ...row, payload: `"${'x'.repeat(5000)}"` }, '{aggregateType}')
    const dead = toDeadLetter(big, 'too large', '{topic}.dlq', 2000)
    expect(dead).toMatchObject({ topic: 'order.dlq', key: 'o-1', value: null })
    expect(dead.headers).toMatchObject({ tenant: 'acme', id: row.id, error: 'too large', truncated: 'value' })
    expect(recordBytes(dead)).toBeLessThanOrEqual(2000)
  })

  test('a dead letter is stamped with the time it is written, the event time kept in originalTimestamp', () => {
    // A dead-letter topic may refuse old timestamps as its topic did (a broker-wide limit).
    const before = Date.now()
    const dead = toDeadLetter(
      toKafkaRecord({ ...row, createdAt: 1_000 }, '{aggregateType}'),
      'refused',
      '{topic}.dlq',
      2000,
    )
    expect(Number(dead.timestamp)).toBeGreaterThanOrEqual(before)
    expect(dead.headers.originalTimestamp).toBe('1000')
  })

  test('oversize headers: only the reserved headers stay, plus error, and a header says so', () => {
    const record = toKafkaRecord({ ...row, headers: { huge: 'h'.repeat(30_000) } }, '{aggregateType}')
    const dead = toDeadLetter(record, 'message too large', '{topic}.dlq', 20_000)
    expect(dead.headers).toEqual({
      id: row.id,
      type: row.type,
      aggregateType: row.aggregateType,
      aggregateId: row.aggregateId,
      error: 'message too large',
      originalTopic: 'order',
      originalTimestamp: '0',
      truncated: 'value,headers',
    })
    expect(recordBytes(dead)).toBeLessThanOrEqual(20_000)
  })

  test('an oversize key is cut to 1 KiB, and so are the reserved values', () => {
    const key = 'k'.repeat(50_000)
    const record = toKafkaRecord({ ...row, aggregateId: key }, '{aggregateType}')
    const dead = toDeadLetter(record, 'message too large', '{topic}.dlq', 20_000)
    expect(dead.key).toBe('k'.repeat(1024))
    expect(dead.headers.aggregateId).toBe('k'.repeat(1024))
    expect(dead.headers.truncated).toBe('value,headers,key')
    expect(dead.headers.id).toBe(row.id)
    expect(recordBytes(dead)).toBeLessThanOrEqual(20_000)
  })

  test('a record that fits is dead-lettered whole, with no truncated header', () => {
    const dead = toDeadLetter(toKafkaRecord(row, '{aggregateType}'), 'invalid topic', '{topic}.dlq', 1_000_000)
    expect(dead.value).toBe(row.payload)
    expect(dead.headers.truncated).toBeUndefined()
  })
})

describe('an undecodable row becomes a record of its raw columns', () => {
  test('raw text of every column as the value, its id and key kept, routed like its event', () => {
    const columns = {
      id: row.id,
      aggregatetype: 'order',
      aggregateid: 'o-1',
      type: 'order.created',
      payload: '{}',
      headers: 'not json',
      topic: null,
      created_at: '2026-01-01 00:00:00+00',
    }
    const record = undecodableRecord(columns, 'app.{aggregateType}')
    expect(record).toMatchObject({ topic: 'app.order', key: 'o-1', headers: { id: row.id } })
    expect(JSON.parse(record.value as string)).toEqual(columns)
  })
})
