import type { Pgoutput } from 'pg-logical-replication'
import { expect, test } from 'vitest'
import { messagePrefix } from '../../src/message-format.js'
import { OutboxDecoder, type UndecodableRow } from '../../worker/stream/decoder.js'

function sink() {
  const seen = { records: 0, undecodable: [] as UndecodableRow[] }
  return {
    seen,
    sink: {
      begin: () => {},
      record: () => {
        seen.records++
      },
      undecodable: (row: UndecodableRow) => seen.undecodable.push(row),
      commit: () => {},
      tableLeft: () => {},
      tableReplaced: () => {},
    },
  }
}

test('a message with our prefix that cannot be read is poison with its content, not a stream error', () => {
  const { seen, sink: s } = sink()
  const decoder = new OutboxDecoder('outbox', s)
  const message = {
    tag: 'message',
    transactional: true,
    messageLsn: '0/16B3748',
    prefix: messagePrefix('outbox'),
    content: Buffer.from('not our format'),
  } as unknown as Pgoutput.Message
  expect(() => decoder.handle(message)).not.toThrow()
  expect(seen.records).toBe(0)
  expect(seen.undecodable).toHaveLength(1)
  expect(seen.undecodable[0]?.columns).toMatchObject({ content: 'not our format', lsn: '0/16B3748' })
  expect(seen.undecodable[0]?.reason).toMatch(/undecodable message/)
})

test("someone else's messages are skipped", () => {
  const { seen, sink: s } = sink()
  new OutboxDecoder('outbox', s).handle({
    tag: 'message',
    transactional: true,
    messageLsn: '0/1',
    prefix: 'other-app',
    content: Buffer.from('whatever'),
  } as unknown as Pgoutput.Message)
  expect(seen).toEqual({ records: 0, undecodable: [] })
})
