/**
 * `outbox-worker tail <topic>`: its arguments, and how a record is printed.
 */
import { describe, expect, test } from 'vitest'
import { parseCommandLine } from '../../worker/operations/args.js'
import { formatDuration } from '../../worker/operations/options-doc.js'
import { formatRecord } from '../../worker/operations/tail.js'

describe('arguments', () => {
  test('tail takes one topic and its switches', () => {
    expect(parseCommandLine(['tail', 'orders', '--from-beginning', '--json'])).toEqual({
      command: 'tail',
      topic: 'orders',
      values: { 'from-beginning': true, json: true },
    })
  })
  test('without a topic, or with two, it says how to call it', () => {
    expect(() => parseCommandLine(['tail'])).toThrow(
      'tail needs a topic: outbox-worker tail <topic> [--from-beginning] [--json]',
    )
    expect(() => parseCommandLine(['tail', 'a', 'b'])).toThrow('unexpected argument "b" (see outbox-worker --help)')
  })
  test('no other command takes an argument', () => {
    expect(() => parseCommandLine(['status', 'orders'])).toThrow('unexpected argument "orders"')
  })
})

describe('a record as printed', () => {
  const record = {
    topic: 'order',
    partition: 2,
    offset: '7',
    timestamp: '2026-12-05T07:20:24.270Z',
    key: '42',
    headers: { id: 'e-1', type: 'order.created', aggregateType: 'order', aggregateId: '42', tenant: 'acme' },
    value: '{"id": 42, "total": "12.50"}',
  }
  test("readable: where it is, key, type, id, the event's own headers, then the value as sent", () => {
    expect(formatRecord(record, false)).toBe(
      'order/2@7  2026-12-05T07:20:24.270Z  key=42  type=order.created  id=e-1  headers={"tenant":"acme"}\n  {"id": 42, "total": "12.50"}',
    )
  })
  test('--json: one object a line, the value parsed when it is JSON', () => {
    expect(JSON.parse(formatRecord(record, true))).toEqual({ ...record, value: { id: 42, total: '12.50' } })
    expect(JSON.parse(formatRecord({ ...record, value: 'not json' }, true)).value).toBe('not json')
    expect(formatRecord({ ...record, value: null }, false)).toMatch(/\n {2}\(no value\)$/)
  })
})

test('durations in --help and the docs read as they are written', () => {
  expect([500, 5_000, 60_000, 120_000, 3_600_000, 604_800_000].map(formatDuration)).toEqual([
    '500ms',
    '5s',
    '60s',
    '2m',
    '60m',
    '7d',
  ])
})
