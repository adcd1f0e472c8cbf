import type { JsonValue } from '../src/json.js'
import { errorFields, redactingLogger, silentLogger } from '../worker/operations/logger.js'
import { recordHandler, type TransactionClient } from './handle-record.js'
import { kafkajsConsumer } from './kafkajs-consumer.js'
import { createInboxMetrics, type InboxMetrics } from './metrics.js'
import { type InboxOptions, resolveInboxOptions } from './options.js'
import { type RetryParkedResult, retryParked } from './retry-parked.js'
import { inboxStore } from './store.js'
import type { EventMap, InboxEvent, TransactionOf, UntypedEvents } from './types.js'

/** How often retention deletes old handled rows. */
const RETENTION_EVERY_MS = 3600_000

export interface Inbox {
  /** Joins the group and starts handling; resolves once the consumer runs. Idempotent. */
  start(): Promise<void>
  /** Finishes the record in hand, commits offsets, leaves the group. Idempotent. */
  stop(): Promise<void>
  /** For a readiness probe: the consumer is in its group and the database answers. */
  ready(): Promise<boolean>
  /** Runs parked records again, key by key in order (docs/consuming.md, "Parked records"). */
  retryParked(only?: { key?: string | null }): Promise<RetryParkedResult>
  /** Deletes handled rows older than `retainHandledMs` now (also done hourly while running). */
  purgeHandled(): Promise<number>
  metrics: InboxMetrics
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * A Kafka consumer that applies each outbox event once: every record's handler runs in one
 * `prisma.$transaction` with the insert of the event's id into the inbox table, and the record's
 * offset moves only after that transaction. `M` maps event types to payload types, the map the
 * emitting side uses (`EventOf<M, K>`), so handlers receive typed payloads.
 */
export function createInbox<M extends EventMap = UntypedEvents, C extends object = object>(
  options: InboxOptions<M, C, TransactionOf<C>>,
): Inbox {
  const config = resolveInboxOptions(options)
  const logger = redactingLogger(config.logger ?? silentLogger).child({ component: 'inbox', consumer: config.name })
  const prisma = config.prisma as unknown as TransactionClient
  const handlers = config.handlers as unknown as Record<
    string,
    (event: InboxEvent<JsonValue>, tx: unknown) => Promise<unknown>
  >
  const metrics = createInboxMetrics()
  const store = inboxStore(config.table, config.name)

  const consumer = kafkajsConsumer({
    kafka: config.kafka,
    group: config.group,
    topics: config.topics,
    fromBeginning: config.fromBeginning,
    partitionsConcurrently: config.partitionsConcurrently,
    sessionTimeoutMs: config.sessionTimeoutMs,
    metrics,
    logger,
    handle: (record, signal) => handle(record, signal),
  })
  const handle = recordHandler({
    prisma,
    handlers,
    store,
    metrics,
    logger,
    onFailure: config.onFailure,
    attempts: config.attempts,
    retryInitialMs: config.retryInitialMs,
    retryMaxMs: config.retryMaxMs,
    transactionTimeoutMs: config.transactionTimeoutMs,
    keepAlive: () => consumer.keepAlive(),
  })

  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  let retention: NodeJS.Timeout | undefined

  const purgeHandled = async () => (config.retainHandledMs > 0 ? store.purgeHandled(prisma, config.retainHandledMs) : 0)

  const inbox: Inbox = {
    start() {
      starting ??= (async () => {
        await consumer.start()
        logger.info({ group: config.group, topics: config.topics.map(String) }, 'inbox started')
        if (config.retainHandledMs > 0) {
          retention = setInterval(() => {
            purgeHandled().then(
              (deleted) => deleted > 0 && logger.info({ deleted }, 'retention: old handled rows deleted'),
              (error) => logger.warn(errorFields(error), 'retention failed; trying again in an hour'),
            )
          }, RETENTION_EVERY_MS)
          retention.unref()
        }
      })()
      return starting
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(retention)
        await starting?.catch(() => {})
        await consumer.stop()
        logger.info({}, 'inbox stopped')
      })()
      return stopping
    },
    async ready() {
      if (!consumer.joined()) return false
      try {
        await prisma.$queryRawUnsafe('SELECT 1')
        return true
      } catch {
        return false
      }
    },
    retryParked: (only) =>
      retryParked(
        { prisma, handlers, store, metrics, logger, transactionTimeoutMs: config.transactionTimeoutMs },
        only,
      ),
    purgeHandled,
    metrics,
    [Symbol.asyncDispose]: () => inbox.stop(),
  }
  return inbox
}
