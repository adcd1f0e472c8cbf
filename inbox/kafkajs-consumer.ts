import { setMaxListeners } from 'node:events'
import { type Consumer, type EachBatchPayload, type IHeaders, Kafka, logLevel } from 'kafkajs'
import { errorFields, type Logger } from '../worker/operations/logger.js'
import { CONSUMER_RESTART, waitBeforeRetry } from '../worker/retry-policy.js'
import type { Outcome } from './handle-record.js'
import type { InboxMetrics } from './metrics.js'
import type { InboxRecord } from './record.js'

export interface ConsumerDeps {
  kafka: { brokers: string[]; clientId?: string; ssl?: boolean | object; sasl?: object }
  group: string
  topics: (string | RegExp)[]
  fromBeginning: boolean
  partitionsConcurrently: number
  sessionTimeoutMs: number
  handle: (record: InboxRecord, signal: AbortSignal) => Promise<Outcome>
  metrics: InboxMetrics
  logger: Logger
}

/** A consumer silent this long (no fetch, no record, no heartbeat) is taken for stopped and replaced. */
const SILENCE_MS = 60_000

/**
 * The inbox's Kafka side on kafkajs: one record at a time per partition, in offset order, up to
 * `partitionsConcurrently` partitions at once; a record's offset moves only after `handle` says it
 * reached its end. A kafkajs consumer can stop for good on an error it deems fatal, without a
 * sign to the app (tulios/kafkajs#1011), so a crashed or silent consumer is replaced by a new one
 * of the same group; replacing is always safe, as every record is deduplicated by the inbox.
 */
export function kafkajsConsumer(deps: ConsumerDeps) {
  const { metrics, logger } = deps
  const stopping = new AbortController()
  // Each record in hand listens for the stop, one per partition handled at once.
  setMaxListeners(0, stopping.signal)
  let consumer: Consumer | undefined
  let joined = false
  let lastActivity = Date.now()
  let heartbeat: (() => Promise<void>) | undefined
  let replacing: Promise<void> | undefined
  let watchdog: NodeJS.Timeout | undefined
  // Per partition, the offset after the last record that reached its end (committed or not), since
  // this consumer last joined its group: what stop() commits itself before leaving.
  const handled = new Map<string, { topic: string; partition: number; offset: string }>()
  // The eachBatch calls running now: stop() waits for their records in hand before it commits.
  const inHand = new Set<Promise<void>>()
  const heartbeatMs = Math.max(500, Math.floor(deps.sessionTimeoutMs / 6))

  const kafka = new Kafka({
    clientId: deps.kafka.clientId ?? `prisma-outbox-inbox-${deps.group}`,
    brokers: deps.kafka.brokers,
    ssl: deps.kafka.ssl as never,
    sasl: deps.kafka.sasl as never,
    connectionTimeout: 3000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ log }) => {
        const { message, ...extra } = log
        logger.debug(extra, `kafkajs: ${message}`)
      },
  })

  async function eachBatch(payload: EachBatchPayload) {
    const run = handleBatch(payload)
    inHand.add(run)
    try {
      await run
    } finally {
      inHand.delete(run)
    }
  }

  async function handleBatch({
    batch,
    resolveOffset,
    heartbeat: beat,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload) {
    heartbeat = beat
    const labels = { topic: batch.topic, partition: String(batch.partition) }
    for (const message of batch.messages) {
      // A revoked partition is left at once: its new owner starts from the committed offset.
      if (!isRunning() || isStale() || stopping.signal.aborted) break
      lastActivity = Date.now()
      // Heartbeats go on while a handler runs long (kafkajs sends one only when asked): without
      // them the group would drop this member mid-record and hand its partitions to another.
      const beating = setInterval(() => void beat().catch(() => {}), heartbeatMs)
      const outcome = await deps
        .handle(
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: message.offset,
            key: message.key?.toString('utf8') ?? null,
            value: message.value?.toString('utf8') ?? null,
            headers: textHeaders(message.headers),
            timestamp: Number(message.timestamp),
          },
          stopping.signal,
        )
        .finally(() => clearInterval(beating))
      if (outcome === 'stopped') break
      resolveOffset(message.offset)
      handled.set(`${batch.topic}|${batch.partition}`, {
        topic: batch.topic,
        partition: batch.partition,
        offset: (BigInt(message.offset) + 1n).toString(),
      })
      metrics.lag.set(labels, Math.max(0, Number(batch.highWatermark) - Number(message.offset) - 1))
      lastActivity = Date.now()
      await commitOffsetsIfNecessary()
      await beat()
    }
  }

  async function startOne(): Promise<void> {
    const fresh = kafka.consumer({
      groupId: deps.group,
      sessionTimeout: deps.sessionTimeoutMs,
      rebalanceTimeout: Math.max(deps.sessionTimeoutMs, 10_000),
      heartbeatInterval: heartbeatMs,
      maxWaitTimeInMs: 500,
      readUncommitted: false,
      // Retry whatever kafkajs gives up on: the group is rejoined, nothing is lost or repeated.
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2000, restartOnFailure: async () => true },
    })
    consumer = fresh
    handled.clear()
    fresh.on(fresh.events.GROUP_JOIN, ({ payload }) => {
      // A partition no longer ours is its new owner's to commit.
      const assigned = payload.memberAssignment as Record<string, number[]>
      for (const [key, { topic, partition }] of handled) {
        if (!assigned[topic]?.includes(partition)) handled.delete(key)
      }
      joined = true
      lastActivity = Date.now()
      metrics.lag.reset()
      logger.info({ group: deps.group, assignment: payload.memberAssignment }, 'joined the consumer group')
    })
    fresh.on(fresh.events.FETCH_START, () => {
      lastActivity = Date.now()
    })
    fresh.on(fresh.events.HEARTBEAT, () => {
      lastActivity = Date.now()
    })
    fresh.on(fresh.events.CRASH, ({ payload }) => {
      joined = false
      logger.warn({ ...errorFields(payload.error), restart: payload.restart }, 'Kafka consumer crashed')
      if (!payload.restart) replace('crashed without restarting')
    })
    await fresh.connect()
    await fresh.subscribe({ topics: deps.topics, fromBeginning: deps.fromBeginning })
    await fresh.run({
      autoCommit: true,
      autoCommitInterval: 1000,
      partitionsConsumedConcurrently: deps.partitionsConcurrently,
      eachBatchAutoResolve: false,
      eachBatch,
    })
  }

  /**
   * Commits the offsets of the records that reached their end, once none is in hand, while still in
   * the group. kafkajs commits them too as it stops, but in one attempt whose failure it drops
   * silently (a coordinator slow to answer, as on a loaded broker): this commit is retried, and its
   * failure logged. Every offset committed here follows a record whose transaction committed.
   */
  async function commitHandled(): Promise<void> {
    const offsets = [...handled.values()]
    if (!consumer || offsets.length === 0) return
    try {
      await consumer.commitOffsets(offsets)
      logger.debug({ offsets }, 'offsets of the handled records committed at stop')
    } catch (error) {
      logger.warn(
        { ...errorFields(error), offsets },
        'could not commit the offsets of the handled records at stop; the next consumer of the group sees them again and skips them as duplicates',
      )
    }
  }

  /** Swaps the consumer for a new one, retrying until one starts (or the inbox stops). */
  function replace(why: string): void {
    if (replacing || stopping.signal.aborted) return
    metrics.consumerRestarts.inc()
    logger.warn({ why }, 'replacing the Kafka consumer')
    replacing = (async () => {
      const old = consumer
      joined = false
      await old?.disconnect().catch(() => {})
      for (let attempt = 0; !stopping.signal.aborted; attempt++) {
        try {
          lastActivity = Date.now()
          await startOne()
          return
        } catch (error) {
          logger.warn(errorFields(error), 'Kafka consumer did not start; trying again')
          await consumer?.disconnect().catch(() => {})
          await waitBeforeRetry(CONSUMER_RESTART, attempt, stopping.signal)
        }
      }
    })().finally(() => {
      replacing = undefined
    })
  }

  return {
    /**
     * Starts consuming. A topic that does not exist yet (the relay's topics appear with their first
     * event) or a broker not reachable yet does not fail start: the consumer keeps trying in the
     * background, logging why, and `joined()` stays false until it is in its group.
     */
    async start(): Promise<void> {
      try {
        await startOne()
      } catch (error) {
        logger.warn(
          { ...errorFields(error), topics: deps.topics.map(String) },
          'cannot subscribe yet (a topic that does not exist, or Kafka unreachable); trying again',
        )
        replace('the first start failed')
      }
      watchdog = setInterval(() => {
        if (Date.now() - lastActivity > Math.max(SILENCE_MS, deps.sessionTimeoutMs * 2)) {
          lastActivity = Date.now()
          replace(`no fetch, heartbeat or record for ${SILENCE_MS / 1000} s`)
        }
      }, 5000)
      watchdog.unref()
    },
    /** Keeps the group membership while a record waits (backoff, database outage). */
    keepAlive(): void {
      lastActivity = Date.now()
      heartbeat?.().catch(() => {})
    },
    joined: () => joined && !stopping.signal.aborted,
    /**
     * Lets the record in hand finish (its transaction commits or rolls back, a retry wait is cut
     * short), commits the offsets of what is done, and leaves the group.
     */
    async stop(): Promise<void> {
      stopping.abort()
      clearInterval(watchdog)
      await replacing
      await Promise.allSettled([...inHand])
      await commitHandled()
      await consumer?.disconnect()
      joined = false
    },
  }
}

function textHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) out[name] = (Array.isArray(value) ? value[0] : value)?.toString() ?? ''
  }
  return out
}
