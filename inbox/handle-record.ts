import type { JsonValue } from '../src/json.js'
import { errorFields, type Logger } from '../worker/operations/logger.js'
import { waitBeforeRetry } from '../worker/retry-policy.js'
import { outageSign } from './database-down.js'
import type { InboxMetrics } from './metrics.js'
import { type InboxRecord, parseRecord, poisonId, recordFields } from './record.js'
import type { InboxStore, RawSql } from './store.js'
import type { InboxEvent } from './types.js'

export type Outcome = 'handled' | 'duplicate' | 'ignored' | 'waiting' | 'parked' | 'poison' | 'stopped'

type AnyHandler = (event: InboxEvent<JsonValue>, tx: unknown) => Promise<unknown>

export interface TransactionClient extends RawSql {
  $transaction<R>(
    fn: (tx: never) => Promise<R>,
    options?: { timeout?: number; maxWait?: number; isolationLevel?: 'ReadCommitted' },
  ): Promise<R>
}

export interface RecordHandlerDeps {
  prisma: TransactionClient
  handlers: Record<string, AnyHandler | undefined>
  store: InboxStore
  metrics: InboxMetrics
  logger: Logger
  onFailure: 'block-key' | 'continue'
  attempts: number
  retryInitialMs: number
  retryMaxMs: number
  transactionTimeoutMs: number
  /** Called while a record waits (backoff, database outage), so the group does not drop us. */
  keepAlive: () => void
}

/**
 * The transaction options of every inbox transaction. Read committed whatever the app's default:
 * the checks made after waiting on a key's lock must see what was committed during the wait.
 */
export function inboxTransaction(timeoutMs: number) {
  return { timeout: timeoutMs, maxWait: timeoutMs, isolationLevel: 'ReadCommitted' as const }
}

/**
 * A handler's promise, bounded by the transaction's timeout: Prisma rolls the transaction back on
 * the server when it expires, but awaits the callback regardless, so a handler that never settles
 * would hold its partition (and kafkajs's next fetch) forever. Rejecting here ends the attempt;
 * the handler's later queries fail on the closed transaction.
 */
export async function bounded<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the handler did not finish within transactionTimeoutMs (${timeoutMs} ms)`)),
      timeoutMs,
    )
  })
  try {
    return await Promise.race([work, expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Ends a transaction without effect, carrying why (rolled back by throwing out of it). */
class Rollback {
  constructor(readonly outcome: 'duplicate' | 'waiting') {}
}

/**
 * Takes one record to its end: handled, skipped as a duplicate, ignored (no handler), parked
 * (failed, poison, or waiting behind its key), or `stopped` when `signal` aborts first (then
 * nothing was committed and the offset must not move). Only then may the caller move the offset.
 */
export function recordHandler(deps: RecordHandlerDeps) {
  const { store, metrics, logger } = deps

  /** One attempt: the inbox row and the handler's writes in one transaction. */
  async function attempt(event: InboxEvent<JsonValue>, record: InboxRecord, handler: AnyHandler): Promise<Outcome> {
    const stopTimer = metrics.handlerSeconds.startTimer()
    try {
      return await deps.prisma.$transaction(async (tx: RawSql) => {
        const keyed = deps.onFailure === 'block-key' && record.key !== null
        const { claimed, held } = keyed
          ? await store.claimAndCheck(tx, event.id, event.type, record as InboxRecord & { key: string })
          : { claimed: await store.claim(tx, event.id, event.type, record), held: false }
        if (!claimed) throw new Rollback('duplicate')
        if (held && record.key !== null) {
          // Checked again under the key's lock: a retryParked may be releasing the key right now.
          await store.lockKey(tx, record.key)
          if (await store.keyHeld(tx, record.key, event.id)) {
            await store.markWaiting(tx, event.id, record)
            return 'waiting'
          }
        }
        await bounded(handler(event, tx), deps.transactionTimeoutMs)
        return 'handled'
      }, inboxTransaction(deps.transactionTimeoutMs))
    } catch (error) {
      if (error instanceof Rollback) return error.outcome
      throw error
    } finally {
      stopTimer()
    }
  }

  /** Waits out a database outage: the `outage`th wait in a row for this record (retry-policy.ts). */
  async function databaseWait(error: unknown, record: InboxRecord, signal: AbortSignal, outage: number) {
    metrics.databaseWaits.inc()
    logger.warn({ ...recordFields(record), ...errorFields(error) }, 'database unavailable; retrying the record')
    deps.keepAlive()
    await waitBeforeRetry(deps, outage, signal)
  }

  /** Whether the database answers at all: tells a handler's own failure from an outage. */
  async function databaseAnswers(): Promise<boolean> {
    try {
      await deps.prisma.$queryRawUnsafe('SELECT 1')
      return true
    } catch {
      return false
    }
  }

  async function park(
    record: InboxRecord,
    id: string,
    status: 'failed' | 'poison',
    type: string | null,
    why: string,
    tries: number,
    signal: AbortSignal,
  ): Promise<Outcome> {
    for (let outage = 0; ; outage++) {
      if (signal.aborted) return 'stopped'
      try {
        // Not inserted: another consumer of the group (a rebalance) ended this record first.
        if (!(await store.park(deps.prisma, id, status, type, record, why, tries))) return 'duplicate'
        metrics.parked.inc({ reason: status })
        return status === 'poison' ? 'poison' : 'parked'
      } catch (error) {
        await databaseWait(error, record, signal, outage)
      }
    }
  }

  return async function handle(record: InboxRecord, signal: AbortSignal): Promise<Outcome> {
    const parsed = parseRecord(record)
    if ('poison' in parsed) {
      logger.error({ ...recordFields(record), reason: parsed.poison }, `poison record parked: ${parsed.poison}`)
      return park(record, poisonId(record), 'poison', record.headers.type ?? null, parsed.poison, 0, signal)
    }
    const { event } = parsed
    const handler = deps.handlers[event.type]
    if (!handler) {
      metrics.ignored.inc()
      logger.debug({ ...recordFields(record), type: event.type }, 'no handler for this type; record acknowledged')
      return 'ignored'
    }
    /** Failed attempts of the handler: every failure but a database outage counts. */
    let used = 0
    /** Waits for the database so far; they use up no attempt. */
    let outages = 0
    // A stop cuts a wait between attempts short, never an attempt: an attempt cut short would
    // leave its transaction running, unowned, behind a stopped consumer.
    for (;;) {
      if (signal.aborted) return 'stopped'
      let outcome: Outcome
      try {
        outcome = await attempt(event, record, handler)
      } catch (error) {
        if (signal.aborted) return 'stopped'
        // A connection error may be the handler's own (an HTTP call to a service that is down):
        // an outage only if the database itself does not answer.
        const sign = outageSign(error)
        if (sign === 'database' || (sign === 'socket' && !(await databaseAnswers()))) {
          await databaseWait(error, record, signal, outages++)
          continue
        }
        used++
        deps.keepAlive()
        if (used < deps.attempts) {
          metrics.retried.inc()
          logger.warn(
            { ...recordFields(record), id: event.id, type: event.type, attempt: used, ...errorFields(error) },
            'handler failed; retrying',
          )
          await waitBeforeRetry(deps, used - 1, signal)
          continue
        }
        // Parking needs the database: while it does not answer, wait, then try once more.
        if (!(await databaseAnswers())) {
          await databaseWait(error, record, signal, outages++)
          continue
        }
        logger.error(
          { ...recordFields(record), id: event.id, type: event.type, attempts: used, ...errorFields(error) },
          `handler failed ${used} times; record parked${deps.onFailure === 'block-key' && record.key !== null ? ', its key waits' : ''}`,
        )
        const why = error instanceof Error ? error.message : String(error)
        return park(record, event.id, 'failed', event.type, why, used, signal)
      }
      if (outcome === 'handled') metrics.handled.inc()
      else if (outcome === 'duplicate') metrics.duplicates.inc()
      else if (outcome === 'waiting') {
        metrics.parked.inc({ reason: 'waiting' })
        logger.warn(
          { ...recordFields(record), id: event.id, type: event.type },
          'record parked: its key waits behind a failed record',
        )
      }
      return outcome
    }
  }
}

export type RecordHandler = ReturnType<typeof recordHandler>
