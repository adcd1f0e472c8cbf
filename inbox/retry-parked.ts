import type { JsonValue } from '../src/json.js'
import { errorFields, type Logger } from '../worker/operations/logger.js'
import { bounded, inboxTransaction, type TransactionClient } from './handle-record.js'
import type { InboxMetrics } from './metrics.js'
import { parseRecord } from './record.js'
import type { InboxStore, ParkedRow, RawSql } from './store.js'
import type { InboxEvent } from './types.js'

export interface RetryParkedResult {
  /** Parked records now handled. */
  handled: number
  /** Keys (null: records without a key) still held, each by the record that failed again. */
  stillParked: { key: string | null; eventId: string; error: string }[]
}

interface RetryDeps {
  prisma: TransactionClient
  handlers: Record<string, ((event: InboxEvent<JsonValue>, tx: unknown) => Promise<unknown>) | undefined>
  store: InboxStore
  metrics: InboxMetrics
  logger: Logger
  transactionTimeoutMs: number
}

/**
 * Runs parked records again (failed ones, and those waiting behind them), key by key in the order
 * they arrived; a key stops at its first record that fails again, which stays parked with its
 * error, so its order holds. One attempt per record: call it again (after a fix) to go on.
 * Poison records are not retried: they carry no event (delete their rows when seen to).
 */
export async function retryParked(deps: RetryDeps, only?: { key?: string | null }): Promise<RetryParkedResult> {
  const { store, logger } = deps
  const result: RetryParkedResult = { handled: 0, stillParked: [] }
  const keys = only && 'key' in only ? [only.key ?? null] : await store.heldKeys(deps.prisma)
  for (const key of keys) {
    // Records without a key do not wait on each other: each is tried, whatever the others do.
    const tried: string[] = []
    for (;;) {
      let row: ParkedRow | undefined
      try {
        row = await deps.prisma.$transaction(async (tx: RawSql) => {
          if (key !== null) await store.lockKey(tx, key)
          const next = await store.nextHeld(tx, key, tried)
          if (!next) return undefined
          const event = parkedEvent(next)
          const handler = deps.handlers[event.type]
          // A type whose handler was removed since: released without effect, as live records are.
          if (handler) await bounded(handler(event, tx), deps.transactionTimeoutMs)
          await store.markHandled(tx, next.event_id)
          return next
        }, inboxTransaction(deps.transactionTimeoutMs))
      } catch (error) {
        const failed = await store.nextHeld(deps.prisma, key, tried)
        if (!failed) throw error
        const why = error instanceof Error ? error.message : String(error)
        await store.markAttempt(deps.prisma, failed.event_id, why)
        logger.warn({ key, id: failed.event_id, ...errorFields(error) }, 'parked record failed again; it stays parked')
        if (key === null) {
          tried.push(failed.event_id)
          result.stillParked.push({ key, eventId: failed.event_id, error: why })
          continue
        }
        result.stillParked.push({ key, eventId: failed.event_id, error: why })
        break
      }
      if (!row) break
      result.handled++
      deps.metrics.handled.inc()
      logger.info({ key, id: row.event_id }, 'parked record handled')
    }
  }
  return result
}

/** A parked row back as the event its handler receives. */
function parkedEvent(row: ParkedRow): InboxEvent<JsonValue> {
  const { '@timestamp': timestamp, ...headers } = row.headers ?? {}
  const parsed = parseRecord({
    topic: row.topic,
    partition: row.partition,
    offset: row.offset,
    key: row.key,
    value: row.value,
    headers,
    timestamp: Number(timestamp ?? 0),
  })
  if ('poison' in parsed) throw new Error(`parked record ${row.event_id} is not an event: ${parsed.poison}`)
  return parsed.event
}
