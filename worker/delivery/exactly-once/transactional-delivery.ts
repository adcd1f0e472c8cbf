import type { WorkerConfig } from '../../operations/config.js'
import { OutboxPoisonEventError, OutboxSetupError } from '../../operations/errors.js'
import { errorFields, type Logger } from '../../operations/logger.js'
import type { Metrics } from '../../operations/metrics.js'
import { formatLsn, type Lsn } from '../../stream/lsn.js'
import {
  type DeliveryHooks,
  type DeliveryItem,
  type EventDelivery,
  type SendError,
  sendErrorOf,
} from '../event-delivery.js'
import { deadLetterAcknowledged, deadLetterFor, deadLetterRefused } from '../poison.js'
import { type KafkaRecord, poisonReason } from '../records.js'
import { SendLoop } from '../send-loop.js'
import { TopicAvailability } from '../topic-availability.js'
import { alreadyInKafka, checkpointRecord } from './checkpoint.js'
import { checkCheckpoint } from './checkpoint-check.js'
import { chunkRecords, findRefused, type SizedRecord, sized } from './refused.js'
import { identifyServer, PostgresIdentityError, type ServerIdentity } from './server-identity.js'
import { checkpointTopic, transactionalId } from './settings.js'
import {
  classifyTransactionError,
  type TransactionalPublisher,
  transactionalIdDenied,
} from './transactional-publisher.js'

export interface TransactionalDeliveryHooks extends DeliveryHooks {
  /**
   * A Kafka transaction failed (or the producer was fenced): end the session, confirming nothing
   * more. The next session starts from the slot's confirmed position and skips by the checkpoint.
   */
  ended(error: unknown): void
}

/** How often the topics of a transaction under way are asked about (see reportUnavailableTopics). */
const TOPIC_CHECK_MS = 5_000

/** A Kafka transaction holds whole PostgreSQL transactions up to --batch-size events (or one larger). */
type Batch = DeliveryItem[]
type DeadLetters = Map<KafkaRecord, { id: string; topic: string; reason: string }>

/**
 * Exactly-once delivery for a session, the counterpart of Delivery: each Kafka transaction carries
 * whole PostgreSQL transactions, in stream order, and the checkpoint record (see checkpoint.ts);
 * they are acknowledged (so the slot is confirmed) only after Kafka has committed it. Transactions
 * at or before the checkpoint read at the start are acknowledged without sending: a replay after a
 * crash, a PostgreSQL restart or a takeover publishes nothing twice.
 *
 * A failed transaction is not retried in the session: its outcome may be unknown (a timeout), and
 * only a producer initialized anew (fencing what was in flight) followed by a read of the
 * checkpoint can tell. That is done only by a session that has just taken the slot: a worker
 * that lost the slot without noticing (a zombie) never initializes the id again, so it cannot
 * fence the worker that took over, and its own producer is fenced by that worker's.
 */
export class TransactionalDelivery implements EventDelivery {
  private readonly loop = new SendLoop()
  /** Read once per session, after the producer has fenced any other holder of the id. */
  private checkpoint: Lsn | undefined
  private checkpointRead = false
  /** The PostgreSQL history this session streams, written into every checkpoint. */
  private identity: ServerIdentity | undefined
  /** A transaction failed: the session is ending (and the next one starts from the slot). */
  ending = false
  /** The failure that ends this session, for /status. */
  lastError: SendError | undefined
  /** Topics of the transaction in progress: the ones to ask about when it fails. */
  private sendingTopics: string[] = []
  /** Which of them Kafka says do not exist (or may not be seen); named in log and metric. */
  private readonly topics: TopicAvailability

  /** Exactly-once waits for a missing topic until it exists (see docs/exactly-once.md): delivery is held up by them. */
  get blockedTopics(): string[] {
    return this.topics.blocked
  }

  constructor(
    private readonly config: WorkerConfig,
    private readonly publisher: TransactionalPublisher,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly hooks: TransactionalDeliveryHooks,
    private readonly identify: () => Promise<ServerIdentity> = () => identifyServer(config),
  ) {
    this.topics = new TopicAvailability('exactly-once', config, publisher, metrics, logger)
  }

  /**
   * Nothing left that can be sent: a graceful stop waits for this. A transaction whose COMMIT is
   * unread (reading has stopped) is never sent, so it is left out: nothing of it is confirmed,
   * and the next session reads it again from the slot.
   */
  get idle(): boolean {
    return !this.loop.busy && (this.loop.queue.length === 0 || this.waitingForCommit)
  }

  /**
   * The oldest buffered transaction has not committed in the stream yet: it cannot be sent until
   * its COMMIT arrives, so reading must not pause on a full buffer (see ReplicationSession).
   */
  get waitingForCommit(): boolean {
    const first = this.loop.queue[0]
    return first !== undefined && first.transaction.endLsn === undefined
  }

  enqueue(item: DeliveryItem): void {
    this.loop.enqueue(item)
  }

  /**
   * Publishes until close(); rejects on what must stop the worker (poison with `stop`, fatal
   * errors). A failed transaction ends the session (failed()), and so the loop.
   */
  async run(): Promise<void> {
    await this.loop.run({
      take: () => this.takeBatch(),
      send: async (batch) => {
        try {
          await this.deliver(batch)
          return true
        } catch (error) {
          if (!this.loop.signal.aborted) await this.failed(error)
          return false
        }
      },
      acknowledged: (batch) => this.hooks.acknowledged(batch),
      // The head waits for a COMMIT still unread: look again shortly.
      pollMs: 5,
    })
  }

  /** Stops sending and waits for the transaction in flight (SendLoop.close). */
  async close(): Promise<void> {
    await this.loop.close(this.publisher)
  }

  /**
   * Whole transactions from the head of the queue. Records of a transaction are all queued before
   * its COMMIT sets endLsn (the stream handles messages synchronously, in order).
   */
  private takeBatch(): Batch {
    const queue = this.loop.queue
    let count = 0
    while (count < queue.length) {
      const transaction = (queue[count] as DeliveryItem).transaction
      if (transaction.endLsn === undefined) break
      let end = count
      while (end < queue.length && (queue[end] as DeliveryItem).transaction === transaction) end++
      if (count > 0 && end > this.config.batchSize) break
      count = end
    }
    return queue.splice(0, count)
  }

  /** Delivers a batch in one Kafka transaction; the checkpoint first, once per session. */
  private async deliver(batch: Batch): Promise<void> {
    const deadLetters: DeadLetters = new Map()
    await this.loop.track(this.attempt(batch, deadLetters))
    for (const info of deadLetters.values()) deadLetterAcknowledged(this.metrics, this.hooks, info)
  }

  /** The checkpoint if not read yet, then one committed Kafka transaction for what Kafka lacks. */
  private async attempt(batch: Batch, deadLetters: DeadLetters): Promise<void> {
    if (this.checkpointRead === false) {
      await this.publisher.connect()
      const read = await this.publisher.readCheckpoint()
      // After the read: the server's WAL position is then past every commit the checkpoint can hold.
      const identity = await this.identify()
      const use = checkCheckpoint(read, identity, {
        slot: this.config.slot,
        topic: checkpointTopic(this.config),
        transactionalId: transactionalId(this.config),
      })
      if ('ignored' in use && use.ignored)
        this.logger.warn(
          { checkpoint: read && formatLsn(read.lsn) },
          `exactly-once: ${use.ignored}: it is not used to skip anything, so transactions replayed now may be published twice (at-least-once this time)`,
        )
      this.identity = identity
      this.checkpoint = use.skipUpTo
      this.checkpointRead = true
      this.logger.info(
        { checkpoint: this.checkpoint === undefined ? 'none' : formatLsn(this.checkpoint) },
        'exactly-once: transactions ending at or before the checkpoint are in Kafka already and are skipped',
      )
    }
    const fresh = batch.filter((item) => !alreadyInKafka(item.transaction.endLsn as Lsn, this.checkpoint))
    if (fresh.length < batch.length)
      this.logger.info({ events: batch.length - fresh.length }, 'exactly-once: skipped events already in Kafka')
    this.metrics.kafkaConnected.set(1)
    if (fresh.length === 0) return
    const last = (fresh[fresh.length - 1] as DeliveryItem).transaction.endLsn as Lsn
    // DeliveryItems are sized records: their sizes, counted on arrival, cut the requests.
    const records: SizedRecord[] = fresh.map((item) => {
      const reason = item.poison ?? poisonReason(item.record, this.config.maxMessageBytes, item.bytes)
      return reason ? this.deadLetter(item.record, reason, deadLetters) : item
    })
    this.sendingTopics = [...new Set(records.map((r) => r.record.topic))]
    for (;;) {
      this.metrics.heartbeat.beat()
      // A transaction to a missing topic may wait (the client retrying its metadata) rather than
      // fail: ask Kafka about its topics every few seconds while it is under way.
      const watch = setInterval(() => void this.reportUnavailableTopics(), TOPIC_CHECK_MS)
      try {
        await this.publisher.commitTransaction(
          chunkRecords(records, this.config),
          checkpointRecord(this.config, last, this.identity as ServerIdentity),
        )
        break
      } catch (error) {
        const { kind, type } = classifyTransactionError(error)
        if (kind !== 'refused') throw error
        this.logger.warn(
          { records: records.length, type },
          'Kafka refused a transaction: probing smaller aborted transactions to find the record (is --max-message-bytes above the broker limit?)',
        )
        const refused = await findRefused(records, this.config, (part) => this.publisher.probe(part))
        // Refused as a whole, yet each part accepted: retry with backoff like any other failure.
        if (refused.size === 0) throw error
        for (const [record, refusedType] of refused) {
          const index = records.findIndex((r) => r.record === record)
          const deadLetter = deadLetters.get(record)
          if (deadLetter) throw deadLetterRefused(deadLetter.id, deadLetter.reason, record.topic, refusedType)
          records[index] = this.deadLetter(record, `Kafka refused it: ${refusedType}`, deadLetters)
        }
      } finally {
        clearInterval(watch)
      }
    }
    this.checkpoint = last
    this.metrics.batchSize.observe(records.length)
    // Committed: these topics exist (named unavailable while waiting, or by an earlier session).
    this.topics.written(this.sendingTopics)
  }

  /** Rejects on what stops the worker; otherwise logs and ends the session. */
  private async failed(error: unknown): Promise<void> {
    const { kind, type } = classifyTransactionError(error)
    this.lastError = sendErrorOf(this.metrics, error, { kind, type })
    this.ending = true
    // A missing topic may come back as any failure (@platformatic/kafka reports it without a Kafka
    // error type): ask which topics exist, as at-least-once does after a failed send.
    if (kind === 'topic' || kind === 'retriable') await this.reportUnavailableTopics()
    if (error instanceof OutboxPoisonEventError || error instanceof OutboxSetupError || kind === 'fatal') throw error
    if (transactionalIdDenied(error)) throw this.denied(error)
    if (error instanceof PostgresIdentityError) {
      this.logger.warn(
        errorFields(error),
        'exactly-once: could not identify the PostgreSQL server: the session ends and restarts',
      )
    } else if (kind === 'fenced') {
      this.metrics.kafkaConnected.set(0)
      this.logger.error(
        { ...errorFields(error), transactionalId: transactionalId(this.config) },
        'fenced: another worker has taken over this transactional id: this session ends, confirming nothing more',
      )
    } else {
      this.metrics.kafkaConnected.set(0)
      this.logger.warn(
        errorFields(error),
        'Kafka transaction failed: the session ends and restarts from the confirmed position, skipping what the checkpoint shows Kafka has',
      )
    }
    // The run loop starts the next session after its pause (retry-policy.ts), longer each time
    // no session delivers: during a Kafka outage, or while the worker that fenced this one holds
    // the slot, a new replication connection every moment helps no one.
    if (!this.loop.signal.aborted) this.hooks.ended(error)
  }

  /**
   * A transaction to a missing topic waits or fails (and the session restarts) until the topic
   * exists: name it in the log and outbox_topic_unavailable{topic} as at-least-once does. The
   * gauge outlives the session (close() leaves it, since each restart would otherwise clear it)
   * and is cleared when Kafka lists the topic or a transaction commits to it.
   */
  private async reportUnavailableTopics(): Promise<void> {
    if (this.sendingTopics.length === 0 || this.loop.signal.aborted) return
    await this.topics.check(this.sendingTopics)
  }

  /** The fix for a missing ACL: what exactly-once needs, in kafka-acls.sh's words. */
  private denied(error: unknown): OutboxSetupError {
    const id = transactionalId(this.config)
    return new OutboxSetupError(
      `Kafka does not let this worker use the transactional id "${id}" (TRANSACTIONAL_ID_AUTHORIZATION_FAILED): grant its principal WRITE and DESCRIBE on the transactional id "${id}", READ, WRITE and DESCRIBE on the checkpoint topic "${checkpointTopic(this.config)}", and READ on the consumer groups prefixed "${id}.checkpoint-read." (see docs/exactly-once.md), or set --transactional-id to one it may use`,
      { code: 'OUTBOX_KAFKA_ACL', cause: error },
    )
  }

  private deadLetter(record: KafkaRecord, reason: string, deadLetters: DeadLetters): SizedRecord {
    const dead = deadLetterFor(record, reason, this.config, this.logger)
    deadLetters.set(dead, { id: record.headers.id ?? '?', topic: record.topic, reason })
    return sized(dead)
  }
}
