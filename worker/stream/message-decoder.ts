import type { Pgoutput } from 'pg-logical-replication'
import { OutboxError } from '../../src/errors.js'
import { decodeMessage, messagePrefix } from '../../src/message-format.js'
import type { OutboxRecord } from './outbox-record.js'

/**
 * Events written in message mode (`outbox({ mode: 'message' })`): the logical decoding messages
 * pgoutput sends when the stream is started with `messages 'true'`, turned into the same
 * OutboxRecord an inserted row becomes, so everything after the decoder treats both alike.
 *
 * pgoutput sends every message written in the database to every slot, whatever the publication:
 * only those whose prefix names this worker's outbox table are events of ours.
 */
export class OutboxMessageDecoder {
  readonly prefix: string

  constructor(table: string) {
    this.prefix = messagePrefix(table)
  }

  /**
   * The record a message carries; undefined for anyone else's message, and for a
   * non-transactional one, which belongs to no transaction (it is decoded at once, even if its
   * writer rolls back) and which the extension never writes. Throws OutboxMessageDecodeError
   * for a message of ours that cannot be read.
   */
  decode(message: Pgoutput.MessageMessage): OutboxRecord | undefined {
    if (message.prefix !== this.prefix || !message.transactional) return undefined
    let decoded: ReturnType<typeof decodeMessage>
    try {
      decoded = decodeMessage(message.content)
    } catch (error) {
      throw new OutboxMessageDecodeError(message, (error as Error).message)
    }
    const { id, aggregateType, aggregateId, type, headers, topic, createdAtMicros, payload } = decoded
    return {
      id,
      aggregateType,
      aggregateId,
      type,
      payload,
      headers: headers ?? {},
      topic,
      createdAt: Number(createdAtMicros / 1000n),
    }
  }
}

/**
 * A message with our prefix that this worker cannot read: written by a newer extension (the
 * problem says to upgrade the worker) or by something else using our prefix.
 */
export class OutboxMessageDecodeError extends OutboxError {
  readonly lsn: string | null

  constructor(message: Pgoutput.MessageMessage, problem: string) {
    super(
      `cannot read the outbox message at ${message.messageLsn ?? '?'} (prefix ${message.prefix}): ${problem}; ` +
        'only prisma-outbox should write messages with this prefix',
      { code: 'OUTBOX_UNREADABLE_MESSAGE' },
    )
    this.lsn = message.messageLsn
  }
}
