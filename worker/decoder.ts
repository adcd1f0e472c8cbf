import type { Pgoutput } from 'pg-logical-replication'
import { OutboxMessageDecoder } from './message-decoder.js'
import { splitTable } from './setup.js'

/** One outbox row as it came out of the WAL. */
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

export interface DecoderSink {
  begin(commitTime: number): void
  record(record: OutboxRecord): void
  commit(endLsn: string): void
}

/**
 * The commit time as ms since the Unix epoch. pgoutput sends microseconds since 2000-01-01;
 * pg-logical-replication's parser has already shifted them to the Unix epoch.
 */
export function commitTimeMs(unixMicros: bigint | number): number {
  return Number(BigInt(unixMicros) / 1000n)
}

/**
 * Turns pgoutput messages into begin / record / commit calls for the outbox table only.
 * The table is recognised by its relation message (schema and name), then by relation id, so a
 * table of the same name in another schema, or any other table in the publication, is ignored.
 */
export class OutboxDecoder {
  private readonly schema: string
  private readonly table: string
  private readonly outboxRelations = new Set<number>()
  private readonly messages: OutboxMessageDecoder

  constructor(
    table: string,
    private readonly sink: DecoderSink,
  ) {
    ;[this.schema, this.table] = splitTable(table)
    this.messages = new OutboxMessageDecoder(table)
  }

  handle(message: Pgoutput.Message): void {
    switch (message.tag) {
      case 'begin':
        this.sink.begin(commitTimeMs(message.commitTime as bigint))
        return
      case 'relation':
        this.onRelation(message)
        return
      case 'insert':
        if (this.outboxRelations.has(message.relation.relationOid)) this.sink.record(toRecord(message.new))
        return
      case 'commit':
        this.sink.commit(message.commitEndLsn as string)
        return
      case 'message': {
        // Message mode's events (worker/message-decoder.ts); anyone else's messages are skipped.
        const record = this.messages.decode(message)
        if (record) this.sink.record(record)
        return
      }
      default:
        // update, delete, truncate, type, origin: not events.
        return
    }
  }

  private onRelation(relation: Pgoutput.MessageRelation): void {
    if (relation.schema !== this.schema || relation.name !== this.table) {
      this.outboxRelations.delete(relation.relationOid)
      return
    }
    this.outboxRelations.add(relation.relationOid)
    // Keep JSON columns as the text PostgreSQL sent instead of parsing them: the payload goes to
    // Kafka byte for byte (no float rounding of big numbers, no key reordering). The parser
    // caches this relation object and decodes the following inserts with these column parsers.
    for (const column of relation.columns) {
      if (column.name === 'payload' || column.name === 'headers') column.parser = (raw: unknown) => raw
    }
  }
}

function toRecord(row: Record<string, unknown>): OutboxRecord {
  return {
    id: String(row.id),
    aggregateType: String(row.aggregatetype),
    aggregateId: String(row.aggregateid),
    type: String(row.type),
    payload: String(row.payload),
    headers: parseHeaders(row.headers),
    topic: typeof row.topic === 'string' ? row.topic : null,
    createdAt: row.created_at instanceof Date ? row.created_at.getTime() : Date.parse(String(row.created_at)),
  }
}

/** Header values are strings; rows written with raw SQL may hold other JSON values, sent as their JSON text. */
function parseHeaders(raw: unknown): Record<string, string> {
  if (raw === null || raw === undefined) return {}
  const parsed: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {}
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(parsed))
    headers[name] = typeof value === 'string' ? value : JSON.stringify(value)
  return headers
}
