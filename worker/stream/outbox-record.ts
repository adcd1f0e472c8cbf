/** One outbox row (or outbox message, in message mode) as it came out of the WAL. */
export interface OutboxRecord {
  id: string
  aggregateType: string
  aggregateId: string
  type: string
  /** The payload column's text exactly as PostgreSQL sent it: the Kafka value, byte for byte. */
  payload: string
  headers: Record<string, string>
  topic: string | null
  /** created_at in ms since the epoch: the Kafka timestamp. */
  createdAt: number
}
