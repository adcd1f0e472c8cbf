import { trace } from '@opentelemetry/api'
import { Prisma } from '@prisma/client/extension'
import { v7 as uuidv7 } from 'uuid'
import { OutboxValidationError } from './errors.js'
import { type CheckedEvent, type OutboxEvent, type OutboxRow, toOutboxRow } from './event.js'
import type { JsonSafe } from './json.js'
import { mapPrismaPromise, type PrismaPromiseLike, rejectedPrismaPromise } from './prisma-promise.js'
import { missingTableError, noOutboxModelError } from './setup-errors.js'
import { emitStatements, type OutboxMode } from './sql.js'

export interface OutboxOptions {
  /**
   * The outbox table, optionally schema-qualified (`events.outbox`). Must match the `@@map` of your
   * Outbox model and the worker's `OUTBOX_TABLE`. Default: `outbox`.
   */
  table?: string
  /**
   * Largest event accepted, in bytes (payload, key, headers). Default: 1 MiB, Kafka's default
   * message size limit; raise both together.
   */
  maxEventBytes?: number
  /**
   * Add a W3C `traceparent` header from the active OpenTelemetry span, when there is one and the
   * event has none. Default: true.
   */
  traceContext?: boolean
  /**
   * `table`: events are rows of the outbox table. `message`: events are transactional logical
   * decoding messages (`pg_logical_emit_message`), written to the WAL only: no table rows, no
   * index, nothing to delete later, but nothing to query or republish from either (docs/extension.md,
   * "Message mode"). The worker delivers both without configuration. Default: `table`.
   */
  mode?: OutboxMode
}

export const DEFAULT_OUTBOX_OPTIONS: Required<OutboxOptions> = {
  table: 'outbox',
  maxEventBytes: 1024 * 1024,
  traceContext: true,
  mode: 'table',
}

/** The client methods emit needs; structural, so no generated client is imported. */
interface RawClient {
  $executeRawUnsafe(query: string, ...values: unknown[]): PrismaPromiseLike<number>
}

/**
 * The Prisma client extension: adds `emit(event)` and `emitMany(events)` to the `outbox` model.
 *
 * Both write through the client they are called on (`getExtensionContext(this).$parent`), so
 * inside `$transaction(async (tx) => ...)` they are part of `tx`'s transaction. Closing over an
 * outer client instead would silently write outside the transaction.
 */
export function outbox(options: OutboxOptions = {}) {
  const config = resolveOptions(options)
  const statements = emitStatements(config.table, config.mode)

  // The callback form runs at $extends, where a client without the Outbox model can be refused.
  return Prisma.defineExtension((client) => {
    if ((client as unknown as Record<string, unknown>).outbox === undefined) throw noOutboxModelError()
    return client.$extends({
      name: 'prisma-outbox',
      model: {
        outbox: {
          /** Writes one event in the current transaction; resolves to its id (a UUIDv7). */
          emit<P>(event: OutboxEvent<P> & { payload: JsonSafe<P> }): PrismaPromiseLike<string> {
            let row: OutboxRow
            try {
              row = prepare(event, config, '')
            } catch (error) {
              return rejectedPrismaPromise(error)
            }
            const client = Prisma.getExtensionContext(this).$parent as unknown as RawClient
            const { sql, params } = statements.one(row)
            return mapPrismaPromise(
              client.$executeRawUnsafe(sql, ...params),
              () => row.id,
              (error) => missingTableError(error, config.table),
            )
          },
          /** Writes all events in one statement, in order; resolves to their ids in the same order. */
          emitMany<E extends OutboxEvent<unknown>>(events: readonly CheckedEvent<E>[]): PrismaPromiseLike<string[]> {
            let rows: OutboxRow[]
            try {
              if (!Array.isArray(events)) {
                throw new OutboxValidationError('events', 'is not an array', 'pass an array of events')
              }
              rows = events.map((event, index) => prepare(event, config, `events[${index}]`))
            } catch (error) {
              return rejectedPrismaPromise(error)
            }
            const client = Prisma.getExtensionContext(this).$parent as unknown as RawClient
            const { sql, params } = statements.many(rows)
            return mapPrismaPromise(
              client.$executeRawUnsafe(sql, ...params),
              () => rows.map((r) => r.id),
              (error) => missingTableError(error, config.table),
            )
          },
        },
      },
    })
  })
}

function prepare(event: OutboxEvent<unknown>, config: Required<OutboxOptions>, field: string): OutboxRow {
  const withTrace = config.traceContext ? withTraceparent(event) : event
  return toOutboxRow(withTrace, uuidv7(), config.maxEventBytes, field)
}

/** The active span's context as a `traceparent` header, unless the event already carries one. */
function withTraceparent(event: OutboxEvent<unknown>): OutboxEvent<unknown> {
  const span = trace.getActiveSpan()
  if (!span || event?.headers?.traceparent !== undefined) return event
  const { traceId, spanId, traceFlags } = span.spanContext()
  const traceparent = `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`
  return { ...event, headers: { ...event.headers, traceparent } }
}

function resolveOptions(options: OutboxOptions): Required<OutboxOptions> {
  const config = { ...DEFAULT_OUTBOX_OPTIONS, ...stripUndefined(options) }
  if (typeof config.table !== 'string' || !/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/.test(config.table)) {
    throw new OutboxValidationError(
      'options.table',
      `is ${JSON.stringify(config.table)}`,
      'pass a table name like "outbox" or "schema.outbox"',
    )
  }
  if (!Number.isSafeInteger(config.maxEventBytes) || config.maxEventBytes <= 0) {
    throw new OutboxValidationError(
      'options.maxEventBytes',
      `is ${config.maxEventBytes}`,
      'pass a positive whole number of bytes',
    )
  }
  if (config.mode !== 'table' && config.mode !== 'message') {
    throw new OutboxValidationError('options.mode', `is ${JSON.stringify(config.mode)}`, 'pass "table" or "message"')
  }
  return config
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
