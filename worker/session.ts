import { Delivery, type DeliveryItem } from './delivery/delivery.js'
import { createKafkajsTransactionalPublisher } from './delivery/exactly-once/kafkajs-transactional.js'
import { TransactionalDelivery } from './delivery/exactly-once/transactional-delivery.js'
import type { Publisher } from './delivery/publisher.js'
import { recordBytes, toKafkaRecord, undecodableRecord } from './delivery/records.js'
import type { WorkerConfig } from './operations/config.js'
import { OutboxSetupError } from './operations/errors.js'
import type { Logger } from './operations/logger.js'
import type { Metrics } from './operations/metrics.js'
import { PublicationWatch } from './slot/publication-watch.js'
import { SQLSTATE, sqlState } from './slot/setup.js'
import type { Lsn } from './stream/lsn.js'
import { ReplicationStream } from './stream/stream.js'

export type SessionOutcome =
  | { kind: 'stopped' }
  | { kind: 'slot-busy' }
  | { kind: 'ended'; error: unknown }
  | { kind: 'fatal'; error: unknown }

export interface SessionEvents {
  streaming(): void
  published(count: number): void
  confirmed(lsn: string): void
  deadLettered(info: { id: string; topic: string; reason: string }): void
  /** More events are known delivered (see deliveredBefore): a moment for retention. */
  delivered(): void
}

/**
 * One replication connection, from START_REPLICATION until it ends, and the publishing that goes
 * with it. An event travels: stream (read, decode, track its transaction) → delivery (batch, send,
 * retry, dead-letter) → back to the stream (acknowledge its transaction, confirm the low-watermark).
 * The session owns what joins them: the buffer bound that pauses reading, the checks that hold
 * confirming (the table left the publication), and the outcome.
 *
 * The publisher is this session's alone and is closed (its send in flight settled) before the
 * session returns, so the next session can never be overtaken by this one's records.
 */
export class ReplicationSession {
  private readonly stream: ReplicationStream
  private readonly delivery: Delivery | TransactionalDelivery
  private readonly watch: PublicationWatch
  private buffered = { events: 0, bytes: 0 }
  private paused = false
  private stopping = false
  private finished = false
  private tableProblemTimer: NodeJS.Timeout | undefined
  private finish!: (outcome: SessionOutcome) => void
  private readonly outcome = new Promise<SessionOutcome>((resolve) => {
    this.finish = (outcome) => {
      if (this.finished) return
      this.finished = true
      // Synchronously: the rest of the socket's chunk must not be tracked or confirmed.
      void this.stream.close()
      resolve(outcome)
    }
  })

  constructor(
    private readonly config: WorkerConfig,
    startLsn: Lsn,
    receiveTimeoutMs: number,
    publisher: Publisher,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly events: SessionEvents,
  ) {
    this.stream = new ReplicationStream(config, startLsn, receiveTimeoutMs, metrics, {
      started: () => {
        this.metrics.streaming.set(1)
        this.events.streaming()
      },
      record: (record, transaction) => {
        const kafkaRecord = toKafkaRecord(record, config.topicTemplate)
        this.enqueue({ record: kafkaRecord, bytes: recordBytes(kafkaRecord), transaction })
      },
      undecodable: (row, transaction) => {
        const kafkaRecord = undecodableRecord(row.columns, config.topicTemplate)
        this.enqueue({ record: kafkaRecord, bytes: recordBytes(kafkaRecord), transaction, poison: row.reason })
      },
      tableLeft: (reason) => this.watch.report(reason),
      tableReplaced: () => this.onTableReplaced(),
      confirmed: (lsn) => this.events.confirmed(lsn),
      delivered: () => this.events.delivered(),
      ended: (error) => this.finish(this.classifyStreamError(error)),
    })
    const deliveryHooks = {
      acknowledged: (items: DeliveryItem[]) => this.acknowledged(items),
      deadLettered: (info: { id: string; topic: string; reason: string }) => this.events.deadLettered(info),
    }
    this.delivery =
      config.delivery === 'exactly-once'
        ? new TransactionalDelivery(config, createKafkajsTransactionalPublisher(config, logger), metrics, logger, {
            ...deliveryHooks,
            ended: (error) => this.finish({ kind: 'ended', error }),
          })
        : new Delivery(config, this.fenced(publisher), metrics, logger, deliveryHooks)
    this.watch = new PublicationWatch(config, logger, {
      changed: (problem) => this.onTableProblem(problem),
      replaced: () => this.onTableReplaced(),
      slotHolder: (pid, replyAgeMs) => this.stream.slotHolder(pid, replyAgeMs),
    })
  }

  /** Streaming, Kafka reachable, and nothing holding delivery up. */
  get ready(): boolean {
    return (
      this.stream.streaming &&
      this.delivery.kafkaConnected &&
      !this.stream.held &&
      this.delivery.blockedTopics.length === 0
    )
  }

  /** Every event committed before this time (ms) is delivered; 0 when not known (see retention). */
  get deliveredBefore(): number {
    return this.stream.held ? 0 : this.stream.deliveredBefore
  }

  /** Streams until the connection ends, the slot turns out busy, or drain() finishes. */
  async run(): Promise<SessionOutcome> {
    this.metrics.tablePublished.set(1)
    this.stream.start()
    this.watch.start()
    const publishing = this.delivery.run().catch((error: unknown) => this.finish({ kind: 'fatal', error }))

    const outcome = await this.outcome
    clearTimeout(this.tableProblemTimer)
    await Promise.all([this.stream.close(), this.watch.stop(), this.delivery.close()])
    await publishing
    this.metrics.streaming.set(0)
    return outcome
  }

  /**
   * Graceful end: stop reading, publish what was already received, confirm what Kafka
   * acknowledged, and close. Gives up waiting after `timeoutMs`, confirming only what is safe.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.stopping = true
    this.stream.pause()
    const deadline = Date.now() + timeoutMs
    while (!this.delivery.idle && Date.now() < deadline && !this.finished) {
      await new Promise((r) => setTimeout(r, 20))
    }
    if (!this.delivery.idle) {
      this.logger.warn(
        { unacknowledged: this.buffered.events },
        'shutdown timeout: stopping with events unacknowledged (they are redelivered on restart)',
      )
    }
    this.stream.finalStatus()
    // Let the status update leave before the socket is destroyed (it would be dropped).
    await new Promise((r) => setTimeout(r, 100))
    this.finish({ kind: 'stopped' })
  }

  /**
   * The publisher, refusing every send once the replication connection is past its receive
   * deadline: from then on the server may hand the slot to another worker, and a record sent
   * after that worker's would reorder the stream. (Exactly-once needs no such gate: the worker
   * that takes the slot fences this one's transactional id before it reads the checkpoint.)
   */
  private fenced(publisher: Publisher): Publisher {
    return {
      connect: () => publisher.connect(),
      send: (records) =>
        this.stream.alive()
          ? publisher.send(records)
          : Promise.reject(new Error('the replication connection is presumed dead: nothing more is sent')),
      unavailableTopics: (topics) => publisher.unavailableTopics(topics),
      disconnect: () => publisher.disconnect(),
    }
  }

  private classifyStreamError(error: unknown): SessionOutcome {
    if (sqlState(error) === SQLSTATE.objectInUse) return { kind: 'slot-busy' }
    if (this.stopping) return { kind: 'stopped' }
    return { kind: 'ended', error }
  }

  private enqueue(item: DeliveryItem): void {
    this.delivery.enqueue(item)
    this.buffered.events++
    this.buffered.bytes += item.bytes
    this.metrics.bufferedEvents.set(this.buffered.events)
    if (
      !this.paused &&
      (this.buffered.events >= this.config.bufferEvents || this.buffered.bytes >= this.config.bufferBytes) &&
      // Exactly-once sends whole transactions: one larger than the buffer is read to its COMMIT.
      !(this.delivery instanceof TransactionalDelivery && this.delivery.waitingForCommit)
    ) {
      this.paused = true
      this.stream.pause()
      this.logger.debug({ buffered: this.buffered.events }, 'buffer full: reading paused')
    }
  }

  private acknowledged(items: DeliveryItem[]): void {
    if (this.finished) return
    const now = Date.now()
    for (const item of items) {
      this.stream.acknowledge(item.transaction)
      this.metrics.commitToAck.observe(Math.max(0, now - item.transaction.commitTime) / 1000)
      this.buffered.events--
      this.buffered.bytes -= item.bytes
    }
    this.metrics.eventsPublished.inc(items.length)
    this.metrics.bufferedEvents.set(this.buffered.events)
    this.events.published(items.length)
    const drained =
      this.buffered.events <= this.config.bufferEvents / 2 && this.buffered.bytes <= this.config.bufferBytes / 2
    // Exactly-once sends only whole transactions: when what is left is one whose COMMIT is
    // still unread, reading must go on whatever the buffer holds, or that COMMIT never arrives.
    const needsCommit = this.delivery instanceof TransactionalDelivery && this.delivery.waitingForCommit
    if (this.paused && !this.stopping && (drained || needsCommit)) {
      this.paused = false
      this.stream.resume()
      this.logger.debug({ buffered: this.buffered.events }, 'buffer drained: reading resumed')
    }
    this.stream.confirm()
  }

  /**
   * The table was dropped and re-created, or removed from the publication and added back, between
   * two checks: nothing is held up now, but events inserted in between never reached the stream.
   */
  private onTableReplaced(): void {
    if (this.finished) return
    this.metrics.tableReplaced.inc()
    this.logger.error(
      {},
      'the outbox table was re-created or re-added to the publication since the last check: events inserted in between were not streamed; republish them (see the README, "The table left the publication")',
    )
  }

  /**
   * The outbox table left the stream: hold confirming (rows written meanwhile are still in the
   * table, to be republished), turn not ready, and give up after --missing-table-timeout so an
   * orchestrator shows the failure (exit 3) instead of a worker that looks healthy.
   */
  private onTableProblem(problem: string | undefined): void {
    if (this.finished) return
    this.stream.holdConfirming(problem)
    this.metrics.tablePublished.set(problem ? 0 : 1)
    if (!problem) {
      clearTimeout(this.tableProblemTimer)
      this.tableProblemTimer = undefined
    }
    if (problem) {
      this.logger.error(
        { waitMs: this.config.missingTableTimeoutMs },
        `${problem}. Events inserted meanwhile do not reach the worker: confirming is held; once fixed, republish them (see the README, "The table left the publication")`,
      )
      // Counted from the first sign of trouble, whatever the problem's text becomes meanwhile.
      this.tableProblemTimer ??= setTimeout(() => {
        this.finish({
          kind: 'fatal',
          error: new OutboxSetupError(`${problem} (still so after ${this.config.missingTableTimeoutMs} ms)`, {
            code: 'OUTBOX_TABLE_UNPUBLISHED',
          }),
        })
      }, this.config.missingTableTimeoutMs)
    } else {
      this.logger.warn(
        {},
        'the outbox table is back in the publication; events inserted while it was not are not streamed: republish them (see the README, "The table left the publication")',
      )
    }
  }
}
