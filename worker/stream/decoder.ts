import type { Pgoutput } from 'pg-logical-replication'
import { splitTable } from '../../src/sql.js'
import { OutboxMessageDecoder } from './message-decoder.js'
import type { OutboxRecord } from './outbox-record.js'

/** A row of the outbox table that cannot be turned into an event (schema drift, raw SQL). */
export interface UndecodableRow {
  /** Every column as the text PostgreSQL sent (null for SQL NULL). */
  columns: Record<string, string | null>
  reason: string
}

export interface DecoderSink {
  begin(commitTime: number): void
  record(record: OutboxRecord): void
  /** Poison: it must reach the dead-letter topic (or stop the worker), never be skipped. */
  undecodable(row: UndecodableRow): void
  commit(endLsn: string): void
  /** The outbox table was renamed or moved: its rows no longer reach this worker. */
  tableLeft(reason: string): void
  /** The outbox table came back under a new relation id: it was re-created (rows may be missing). */
  tableReplaced(): void
}

/**
 * The commit time as ms since the Unix epoch. pgoutput sends microseconds since 2000-01-01;
 * pg-logical-replication's parser has already shifted them to the Unix epoch.
 */
export function commitTimeMs(unixMicros: bigint | number): number {
  return Number(BigInt(unixMicros) / 1000n)
}

type Parser = (text: string) => unknown

/** What the decoder keeps of an outbox relation message. */
export interface RelationShape {
  parsers: Map<string, Parser>
  /** The payload column is json or jsonb, so PostgreSQL has already checked it is JSON. */
  payloadIsJson: boolean
}

export const JSON_TYPE_OIDS = new Set([114, 3802])

/**
 * Turns pgoutput messages into begin / record / commit calls for the outbox table only.
 * The table is recognised by its relation message (schema and name), then by relation id, so a
 * table of the same name in another schema, or any other table in the publication, is ignored.
 *
 * Column values are decoded here, not by the library: the library's parsers run inside its socket
 * handler, where a value that does not parse (a column whose type changed) would throw out of
 * reach. Here a row that does not decode becomes an UndecodableRow with its raw text.
 */
export class OutboxDecoder {
  private readonly schema: string
  private readonly table: string
  /** Outbox relation ids, with what decoding their rows needs. */
  private readonly outboxRelations = new Map<number, RelationShape>()
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
      case 'insert': {
        const shape = this.outboxRelations.get(message.relation.relationOid)
        if (shape) this.onInsert(message.new as Record<string, string | null>, shape)
        return
      }
      case 'commit':
        this.sink.commit(message.commitEndLsn as string)
        return
      case 'message':
        this.onMessage(message)
        return
      default:
        // update, delete, truncate, type, origin: not events.
        return
    }
  }

  /**
   * Message mode's events (message-decoder.ts); anyone else's messages are skipped. One of
   * ours that cannot be read (a newer format, or someone else using our prefix) is poison like an
   * undecodable row: dead-lettered with its content, so it can be replayed by a newer worker.
   */
  private onMessage(message: Pgoutput.MessageMessage): void {
    let record: OutboxRecord | undefined
    try {
      record = this.messages.decode(message)
    } catch (error) {
      const content = Buffer.from(message.content).toString('utf8')
      this.sink.undecodable({
        columns: { prefix: message.prefix, lsn: message.messageLsn ?? null, content },
        reason: `undecodable message: ${(error as Error).message}`,
      })
      return
    }
    if (record) this.sink.record(record)
  }

  private onRelation(relation: Pgoutput.MessageRelation): void {
    const isOutbox = relation.schema === this.schema && relation.name === this.table
    if (!isOutbox) {
      if (this.outboxRelations.delete(relation.relationOid)) {
        this.sink.tableLeft(
          `the outbox table ${this.schema}.${this.table} is now ${relation.schema}.${relation.name} (renamed or moved): rename it back, or restart the worker with OUTBOX_TABLE (--table) naming it, after adding it to the publication`,
        )
      }
      return
    }
    if (this.outboxRelations.size > 0 && !this.outboxRelations.has(relation.relationOid)) this.sink.tableReplaced()
    const shape: RelationShape = { parsers: new Map(), payloadIsJson: false }
    for (const column of relation.columns) {
      shape.parsers.set(column.name, column.parser as Parser)
      if (column.name === 'payload') shape.payloadIsJson = JSON_TYPE_OIDS.has(column.typeOid)
      // The library caches this relation object and decodes the following inserts with it.
      column.parser = (raw: unknown) => raw
    }
    this.outboxRelations.set(relation.relationOid, shape)
  }

  private onInsert(row: Record<string, string | null>, shape: RelationShape): void {
    let record: OutboxRecord
    try {
      record = toRecord(row, shape)
    } catch (error) {
      const columns: Record<string, string | null> = {}
      for (const [name, value] of Object.entries(row)) columns[name] = value === undefined ? null : value
      this.sink.undecodable({ columns, reason: `undecodable row: ${(error as Error).message}` })
      return
    }
    this.sink.record(record)
  }
}

export function toRecord(row: Record<string, string | null>, shape: RelationShape): OutboxRecord {
  const required = (name: string): string => {
    const value = row[name]
    if (typeof value !== 'string') throw new Error(`column ${name} is ${value === null ? 'NULL' : 'missing'}`)
    return value
  }
  const createdAt = shape.parsers.get('created_at')?.(required('created_at'))
  const time = createdAt instanceof Date ? createdAt.getTime() : Date.parse(String(createdAt))
  if (Number.isNaN(time)) throw new Error(`created_at "${row.created_at}" is not a timestamp`)
  const payload = required('payload')
  // The payload is the Kafka value byte for byte. A json/jsonb column is JSON already; a column
  // whose type was changed (schema drift) must be checked, or consumers get what is not JSON.
  if (!shape.payloadIsJson) JSON.parse(payload)
  return {
    id: required('id'),
    aggregateType: required('aggregatetype'),
    aggregateId: required('aggregateid'),
    type: required('type'),
    payload,
    headers: parseHeaders(row.headers ?? null),
    topic: typeof row.topic === 'string' ? row.topic : null,
    createdAt: time,
  }
}

/** Header values are strings; rows written with raw SQL may hold other JSON values, sent as their JSON text. */
function parseHeaders(raw: string | null): Record<string, string> {
  if (raw === null) return {}
  const parsed: unknown = JSON.parse(raw)
  if (parsed === null) return {}
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('headers is not a JSON object')
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(parsed))
    headers[name] = typeof value === 'string' ? value : JSON.stringify(value)
  return headers
}
