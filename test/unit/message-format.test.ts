import { describe, expect, test } from 'vitest'
import { toOutboxRow } from '../../src/event.js'
import { decodeMessage, encodeMessageHead, messagePrefix } from '../../src/message-format.js'
import { OutboxMessageDecodeError, OutboxMessageDecoder } from '../../worker/stream/message-decoder.js'

const id = '01900000-0000-7000-8000-000000000000'
const event = {
  aggregateType: 'order',
  aggregateId: 'o-1\n"x"',
  type: 'order.created',
  payload: { a: 1 },
  headers: { tenant: 'acme\nline' },
  topic: 'orders.v1',
}

/** The content PostgreSQL builds: the head the app sends, created_at in µs, and jsonb's text. */
const content = (head: string, micros: string, payload: string) => Buffer.from(`${head}${micros}\n${payload}`)
const message = (bytes: Buffer, overrides: Record<string, unknown> = {}) => ({
  tag: 'message' as const,
  flags: 1,
  transactional: true,
  messageLsn: '0/16B3748',
  prefix: 'prisma-outbox:public.outbox',
  content: bytes,
  ...overrides,
})

describe('the message format', () => {
  test('carries every field of the table; the payload is taken byte for byte, whatever it contains', () => {
    const row = toOutboxRow(event, id, 1024)
    const payload = '{"a": 1, "text": "raw\nnewline and é"}'
    expect(decodeMessage(content(encodeMessageHead(row), '1763862797486123', payload))).toEqual({
      id,
      aggregateType: 'order',
      aggregateId: 'o-1\n"x"',
      type: 'order.created',
      headers: { tenant: 'acme\nline' },
      topic: 'orders.v1',
      createdAtMicros: 1763862797486123n,
      payload,
    })
  })

  test('absent headers and topic are null', () => {
    const row = toOutboxRow({ ...event, headers: undefined, topic: undefined }, id, 1024)
    expect(decodeMessage(content(encodeMessageHead(row), '0', 'null'))).toMatchObject({ headers: null, topic: null })
  })

  test('a version this worker does not know is refused, saying to upgrade the worker', () => {
    const head = encodeMessageHead(toOutboxRow(event, id, 1024)).replace(/^1/, '2')
    expect(() => decodeMessage(content(head, '0', '{}'))).toThrow(/format version "2".*upgrade the worker/)
  })

  test.each([
    ['too few lines', '1\n{}'],
    ['a header that is not JSON', '1\nnot json\n0\n{}'],
    [
      'a header without an id',
      '1\n{"aggregateType":"a","aggregateId":"b","type":"c","headers":null,"topic":null}\n0\n{}',
    ],
    [
      'a header value that is not a string',
      `1\n{"id":"i","aggregateType":"a","aggregateId":"b","type":"c","headers":{"n":1},"topic":null}\n0\n{}`,
    ],
    ['a created_at that is not a number', `1\n{"id":"i","aggregateType":"a","aggregateId":"b","type":"c"}\nnow\n{}`],
  ])('is refused with %s', (_name, text) => {
    expect(() => decodeMessage(Buffer.from(text))).toThrow()
  })

  test('the prefix names the schema-qualified outbox table, as the worker resolves OUTBOX_TABLE', () => {
    expect(messagePrefix('outbox')).toBe('prisma-outbox:public.outbox')
    expect(messagePrefix('events.outbox')).toBe('prisma-outbox:events.outbox')
  })
})

describe('the worker reading messages', () => {
  const decoder = new OutboxMessageDecoder('outbox')
  const ours = content(encodeMessageHead(toOutboxRow(event, id, 1024)), '1763862797486999', '{"a": 1}')

  test('turns one of ours into the record an inserted row becomes (created_at in ms, truncated)', () => {
    expect(decoder.decode(message(ours))).toEqual({
      id,
      aggregateType: 'order',
      aggregateId: 'o-1\n"x"',
      type: 'order.created',
      payload: '{"a": 1}',
      headers: { tenant: 'acme\nline' },
      topic: 'orders.v1',
      createdAt: 1763862797486,
    })
  })

  test("skips another outbox's messages, anyone else's, and non-transactional ones", () => {
    expect(decoder.decode(message(ours, { prefix: 'prisma-outbox:other.outbox' }))).toBeUndefined()
    expect(decoder.decode(message(ours, { prefix: 'wal2something' }))).toBeUndefined()
    expect(decoder.decode(message(ours, { transactional: false }))).toBeUndefined()
  })

  test('an unreadable message of ours is an error naming its LSN', () => {
    const error = (() => {
      try {
        decoder.decode(message(Buffer.from('garbage')))
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(OutboxMessageDecodeError)
    expect((error as OutboxMessageDecodeError).code).toBe('OUTBOX_UNREADABLE_MESSAGE')
    expect((error as Error).message).toContain('0/16B3748')
  })
})
