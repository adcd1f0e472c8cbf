import { setTimeout as sleep } from 'node:timers/promises'
import pRetry, { AbortError } from 'p-retry'
import type { JsonValue } from '../src/json.js'
import { errorFields, type Logger } from '../worker/operations/logger.js'
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

/** A handler's (or its transaction's) failure, counted as one attempt. */
class HandlerFailed extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause })
  }
}

/** A database that does not answer: the record waits for it without using up an attempt. */
class DatabaseDown extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause })
  }
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

  /** Waits out a database outage, however long, unless stopped. */
  async function databaseWait(error: unknown, record: InboxRecord, signal: AbortSignal, waitMs: number) {
    metrics.databaseWaits.inc()
    logger.warn({ ...recordFields(record), ...errorFields(error) }, 'database unavailable; retrying the record')
    deps.keepAlive()
    await sleep(waitMs, undefined, { signal }).catch(() => {})
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
    let waitMs = deps.retryInitialMs
    for (;;) {
      if (signal.aborted) return 'stopped'
      try {
        // Not inserted: another consumer of the group (a rebalance) ended this record first.
        if (!(await store.park(deps.prisma, id, status, type, record, why, tries))) return 'duplicate'
        metrics.parked.inc({ reason: status })
        return status === 'poison' ? 'poison' : 'parked'
      } catch (error) {
        await databaseWait(error, record, signal, waitMs)
        waitMs = Math.min(waitMs * 2, deps.retryMaxMs)
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
    let used = 0
    let waitMs = deps.retryInitialMs
    // Every failure but an outage counts as an attempt; wrapped, since p-retry would not retry a
    // TypeError (a handler's bug, which may still pass on a later try after a deploy of data).
    // A stop cuts a wait between attempts short, never an attempt: p-retry given the stop signal
    // would reject at once and leave the transaction running, unowned, behind a stopped consumer.
    const betweenAttempts = new AbortController()
    let attempting = false
    const onStop = () => {
      if (!attempting) betweenAttempts.abort()
    }
    signal.addEventListener('abort', onStop, { once: true })
    const counted = async (): Promise<Outcome> => {
      attempting = true
      try {
        return await attempt(event, record, handler)
      } catch (error) {
        if (signal.aborted) throw new AbortError(error instanceof Error ? error : String(error))
        // A connection error may be the handler's own (an HTTP call to a service that is down):
        // an outage only if the database itself does not answer.
        const sign = outageSign(error)
        if (sign === 'database' || (sign === 'socket' && !(await databaseAnswers()))) throw new DatabaseDown(error)
        used++
        throw new HandlerFailed(error)
      } finally {
        attempting = false
      }
    }
    try {
      return await attemptsUntilEnd()
    } finally {
      signal.removeEventListener('abort', onStop)
    }

    async function attemptsUntilEnd(): Promise<Outcome> {
      for (;;) {
        if (signal.aborted) return 'stopped'
        try {
          const outcome = await pRetry(counted, {
            retries: Math.max(0, deps.attempts - used - 1),
            minTimeout: deps.retryInitialMs,
            maxTimeout: deps.retryMaxMs,
            factor: 2,
            signal: betweenAttempts.signal,
            // A database outage does not use up the handler's attempts: it goes to the loop below.
            shouldRetry: (error) => !(error instanceof DatabaseDown),
            onFailedAttempt: (error) => {
              if (error instanceof DatabaseDown) return
              deps.keepAlive()
              if (error.retriesLeft > 0) {
                metrics.retried.inc()
                logger.warn(
                  {
                    ...recordFields(record),
                    id: event.id,
                    type: event.type,
                    attempt: used,
                    ...errorFields(error.cause),
                  },
                  'handler failed; retrying',
                )
              }
            },
          })
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
        } catch (error) {
          if (signal.aborted || error instanceof AbortError) return 'stopped'
          if (error instanceof DatabaseDown || !(await databaseAnswers())) {
            await databaseWait(error, record, signal, waitMs)
            waitMs = Math.min(waitMs * 2, deps.retryMaxMs)
            continue
          }
          const cause = error instanceof HandlerFailed ? error.cause : error
          const why = cause instanceof Error ? cause.message : String(cause)
          logger.error(
            { ...recordFields(record), id: event.id, type: event.type, attempts: used, ...errorFields(cause) },
            `handler failed ${used} times; record parked${deps.onFailure === 'block-key' && record.key !== null ? ', its key waits' : ''}`,
          )
          return park(record, event.id, 'failed', event.type, why, used, signal)
        }
      }
    }
  }
}

export type RecordHandler = ReturnType<typeof recordHandler>
