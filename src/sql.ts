import type { OutboxRow } from './event.js'

/** Quotes one SQL identifier; every identifier this package puts into SQL goes through here. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** `outbox` or `schema.outbox` → a quoted, possibly schema-qualified, table name. */
export function quoteTable(table: string): string {
  return table.split('.').map(quoteIdent).join('.')
}

const COLUMNS = '("id", "aggregatetype", "aggregateid", "type", "payload", "headers", "topic")'

/** One event: seven parameters, no arrays. */
export function insertOneSql(table: string): string {
  return `INSERT INTO ${quoteTable(table)} ${COLUMNS} VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb, $7)`
}

/**
 * Many events in one statement whatever their number: seven array parameters unnested in order,
 * so the rows are inserted (and reach the WAL, and Kafka) in the order given.
 */
export function insertManySql(table: string): string {
  return (
    `INSERT INTO ${quoteTable(table)} ${COLUMNS} ` +
    'SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::text[])'
  )
}

export function insertOneParams(row: OutboxRow): unknown[] {
  return [row.id, row.aggregateType, row.aggregateId, row.type, row.payloadJson, row.headersJson, row.topic]
}

export function insertManyParams(rows: OutboxRow[]): unknown[] {
  return [
    rows.map((r) => r.id),
    rows.map((r) => r.aggregateType),
    rows.map((r) => r.aggregateId),
    rows.map((r) => r.type),
    rows.map((r) => r.payloadJson),
    rows.map((r) => r.headersJson),
    rows.map((r) => r.topic),
  ]
}
