/**
 * The fault suite's checker compares every record Kafka holds with the event it carries: a record
 * that differs in topic, key, value or headers, or that carries no id, is reported, whatever the
 * faults were.
 */
import { describe, expect, test } from 'vitest'
import { check, type ExpectedRecord, History } from '../faults/history.js'
import type { ReceivedMessage } from '../helpers/kafka.js'

const ID = '01900000-0000-7000-8000-000000000001'

function history(expected: Partial<ExpectedRecord> = {}): History {
  const h = new History()
  h.expect(ID, {
    topic: 't.order',
    key: '7',
    payloadJson: '{"version":1,"orderId":7}',
    value: '{"orderId": 7, "version": 1}',
    headers: { tenant: 'a' },
    type: 'order.bumped',
    aggregateType: 'order',
    ...expected,
  })
  h.commit(ID, '7', 1, expected.deadLetterTopic ? 'dlq' : 'main')
  return h
}

function record(overrides: Partial<ReceivedMessage> = {}, headers: Record<string, string> = {}): ReceivedMessage {
  return {
    topic: 't.order',
    partition: 0,
    key: '7',
    value: '{"orderId": 7, "version": 1}',
    headers: { tenant: 'a', id: ID, type: 'order.bumped', aggregateType: 'order', aggregateId: '7', ...headers },
    timestamp: 0,
    offset: '0',
    receivedAt: 0,
    ...overrides,
  }
}

const isDlq = (topic: string) => topic.endsWith('.dlq')

describe('the fault checker', () => {
  test('accepts the record the event must become', () => {
    const verdict = check(history(), [record()], isDlq)
    expect(verdict.mismatches).toEqual([])
    expect(verdict.lost).toBe(0)
  })

  test.each([
    ['a wrong value', record({ value: '{"orderId": 7, "version": 2}' }), /value/],
    [
      'the value not byte for byte (JSON.stringify, not jsonb)',
      record({ value: '{"version":1,"orderId":7}' }),
      /value/,
    ],
    ['a wrong key', record({ key: '8' }), /key 8/],
    ['a wrong topic', record({ topic: 't.invoice' }), /topic, expected t\.order/],
    ['a header changed', record({}, { tenant: 'b' }), /headers/],
    ['a header missing', record({ headers: { id: ID, type: 'order.bumped', aggregateType: 'order' } }), /headers/],
    ['a header added', record({}, { extra: 'x' }), /headers/],
  ])('reports %s', (_, received, reason) => {
    const verdict = check(history(), [received], isDlq)
    expect(verdict.mismatched).toBe(1)
    expect(verdict.mismatches[0]).toMatch(reason)
  })

  test('reports a record without an id instead of skipping it', () => {
    const { id: _, ...headers } = record().headers
    const verdict = check(history(), [record(), record({ headers })], isDlq)
    expect(verdict.mismatched).toBe(1)
    expect(verdict.mismatches[0]).toMatch(/without an id/)
  })

  test('reports an id no writer emitted', () => {
    const verdict = check(history(), [record(), record({}, { id: 'someone-else' })], isDlq)
    expect(verdict.mismatches).toEqual([expect.stringMatching(/an id no writer emitted/)])
  })

  test('a poison event must reach its own dead-letter topic, not another one', () => {
    const poison = history({ deadLetterTopic: 't.order.dlq' })
    const dead = { error: 'message too large', originalTopic: 't.order', originalTimestamp: '1' }
    expect(check(poison, [record({ topic: 't.order.dlq' }, dead)], isDlq).mismatches).toEqual([])
    const elsewhere = check(poison, [record({ topic: 't_bad.dlq' }, dead)], isDlq)
    expect(elsewhere.mismatches).toEqual([expect.stringMatching(/dead-letter topic t\.order\.dlq/)])
    const onMain = check(poison, [record()], isDlq)
    expect(onMain.mismatched).toBe(1)
    expect(onMain.misrouted).toBe(1)
  })

  test('a dead letter keeps the value unless its truncated header says it was dropped', () => {
    const poison = history({ deadLetterTopic: 't.order.dlq' })
    const dead = { error: 'message too large', originalTopic: 't.order' }
    expect(check(poison, [record({ topic: 't.order.dlq', value: null }, dead)], isDlq).mismatched).toBe(1)
    const dropped = record({ topic: 't.order.dlq', value: null }, { ...dead, truncated: 'value' })
    expect(check(poison, [dropped], isDlq).mismatches).toEqual([])
  })
})
