import type { OutboxRow } from './event.js'
import { encodeMessageHead, messagePrefix } from './message-format.js'

/** Quotes one SQL identifier; every identifier this package puts into SQL goes through here. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** `outbox` or `schema.outbox` → a quoted, possibly schema-qualified, table name. */
export function quoteTable(table: string): string {
  return table.split('.').map(quoteIdent).join('.')
}

/**
 * `outbox` → `public`, `outbox`; `schema.outbox` → `schema`, `outbox`. The worker's table
 * (OUTBOX_TABLE): a bare name means public.outbox, as in the message prefix, never whichever
 * `outbox` the worker's search_path finds first.
 */
export function splitTable(table: string): [schema: string, table: string] {
  const parts = table.split('.')
  return parts.length === 2 ? [parts[0] as string, parts[1] as string] : ['public', parts[0] as string]
}

/** The worker's table quoted and always schema-qualified: `outbox` → `"public"."outbox"`. */
export function quoteQualifiedTable(table: string): string {
  return splitTable(table).map(quoteIdent).join('.')
}

/**
 * Leads every statement `emit` and `emitMany` send: how withOutbox (src/with-outbox.ts) tells them
 * from the app's own statements, to hold them until COMMIT.
 */
export const EMIT_SQL_MARKER = '/* prisma-outbox emit */'

/** A statement and its parameters. */
export interface Statement {
  sql: string
  params: unknown[]
}

/** How events are written: rows of the outbox table, or logical decoding messages. */
export type OutboxMode = 'table' | 'message'

/** The statements for one event and for many, in the given mode. */
export function emitStatements(table: string, mode: OutboxMode) {
  return mode === 'table' ? tableStatements(table) : messageStatements(table)
}

const COLUMNS = '("id", "aggregatetype", "aggregateid", "type", "payload", "headers", "topic")'

function tableStatements(table: string) {
  const target = `${EMIT_SQL_MARKER} INSERT INTO ${quoteTable(table)} ${COLUMNS}`
  // One event: seven parameters, no arrays.
  const one = `${target} VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb, $7)`
  // Many events in one statement whatever their number: seven array parameters unnested in
  // order, so the rows are inserted (and reach the WAL, and Kafka) in the order given.
  const many = `${target} SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::text[])`
  return {
    one: (row: OutboxRow): Statement => ({
      sql: one,
      params: [row.id, row.aggregateType, row.aggregateId, row.type, row.payloadJson, row.headersJson, row.topic],
    }),
    many: (rows: OutboxRow[]): Statement => ({
      sql: many,
      params: [
        rows.map((r) => r.id),
        rows.map((r) => r.aggregateType),
        rows.map((r) => r.aggregateId),
        rows.map((r) => r.type),
        rows.map((r) => r.payloadJson),
        rows.map((r) => r.headersJson),
        rows.map((r) => r.topic),
      ],
    }),
  }
}

/**
 * Transactional logical messages in the format of src/message-format.ts. PostgreSQL appends
 * created_at (the transaction's now(), as the column default does) and the payload as jsonb's
 * text, so consumers get the same bytes as in table mode and invalid JSON fails here, not later.
 */
function messageStatements(table: string) {
  const prefix = messagePrefix(table)
  const content = (head: string, payload: string) =>
    `concat(${head}, (extract(epoch FROM now()) * 1000000)::bigint, E'\\n', (${payload})::jsonb::text)`
  const one = `${EMIT_SQL_MARKER} SELECT pg_logical_emit_message(true, $1::text, ${content('$2::text', '$3::text')})`
  // One message per event, in array order: unnest in FROM yields its rows in order.
  const many =
    `${EMIT_SQL_MARKER} SELECT pg_logical_emit_message(true, $1::text, ${content('e.head', 'e.payload')}) ` +
    'FROM unnest($2::text[], $3::text[]) AS e(head, payload)'
  return {
    one: (row: OutboxRow): Statement => ({ sql: one, params: [prefix, encodeMessageHead(row), row.payloadJson] }),
    many: (rows: OutboxRow[]): Statement => ({
      sql: many,
      params: [prefix, rows.map(encodeMessageHead), rows.map((r) => r.payloadJson)],
    }),
  }
}
