/** PostgreSQL's epoch, 2000-01-01 00:00 UTC, in Unix milliseconds. */
const POSTGRES_EPOCH_MS = 946_684_800_000

/**
 * A Standby Status Update ('r'), the message that confirms the slot: `lsn` as written, flushed and
 * applied, the time it is sent, and whether the server should answer at once. The server keeps the
 * time as pg_stat_replication.reply_time, which a paused stream is judged by (PublicationWatch):
 * so it must be this clock's time in microseconds since PostgreSQL's epoch. pg-logical-replication's
 * acknowledge() writes it seven days ahead and in the wrong unit, which made every reply look fresh.
 */
export function standbyStatusUpdate(lsn: bigint, sentAtMs: number, requestReply: boolean): Buffer {
  const message = Buffer.alloc(34)
  message.write('r', 0, 'latin1')
  message.writeBigUInt64BE(lsn, 1)
  message.writeBigUInt64BE(lsn, 9)
  message.writeBigUInt64BE(lsn, 17)
  message.writeBigInt64BE(BigInt(Math.round(sentAtMs - POSTGRES_EPOCH_MS)) * 1000n, 25)
  message.writeUInt8(requestReply ? 1 : 0, 33)
  return message
}
