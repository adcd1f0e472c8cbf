import { createDelivery } from './delivery/create-delivery.js'
import { type DeliveryItem, deliveryItem, type EventDelivery } from './delivery/event-delivery.js'
import type { PublisherFactory } from './delivery/publisher.js'
import { toKafkaRecord, undecodableRecord } from './delivery/records.js'
import { UNAVAILABLE_TOPIC_FIX } from './delivery/topic-availability.js'
import type { WorkerConfig } from './operations/config.js'
import { OutboxSetupError, SQLSTATE, sqlState } from './operations/errors.js'
import type { Logger } from './operations/logger.js'
import type { Metrics } from './operations/metrics.js'
import type { PublicationProblem } from './slot/checks.js'
import { PublicationWatch } from './slot/publication-watch.js'
import { type Lsn, parseLsn } from './stream/lsn.js'
import { ReplicationStream } from './stream/stream.js'

export type SessionOutcome =
  | { kind: 'stopped' }
  | { kind: 'slot-busy' }
  | { kind: 'ended'; error: unknown }
  | { kind: 'fatal'; error: unknown }

/**
 * Whether this session's events flow, and if not, why and what fixes it (for /readyz and /status).
 */
export interface SessionHealth {
  flowing: boolean
  reason?: string
  fix?: string
}

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
  private readonly delivery: EventDelivery
  private readonly watch: PublicationWatch
  private buffered = { events: 0, bytes: 0 }
  private paused = false
  private stopping = false
  private finished = false
  private tableProblemTimer: NodeJS.Timeout | undefined
  private ageTimer: NodeJS.Timeout | undefined
  /**
   * Since when events have waited with nothing acknowledged: set when the buffer fills from
   * empty, moved by every acknowledgement, cleared when it empties. Its age is how long delivery
   * has made no progress (a send pending or failing), whatever the Kafka client does meanwhile.
   */
  private waitingSince: number | undefined
  /**
   * Delivered something, or everything committed before the session started: until then it has
   * not shown that events flow (a session of an exactly-once restart loop never does).
   */
  private provenFlowing = false
  private problem: PublicationProblem | undefined
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
    /**
     * After a failed session: the server's WAL position when this one began. It is not ready
     * until it has delivered something or confirmed past this (everything older delivered), so a
     * loop of sessions that each fail on the same events never looks ready. Undefined: no proof
     * needed (the first session, a takeover).
     */
    private readonly walAtStart: Lsn | undefined,
    createPublisher: PublisherFactory,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly events: SessionEvents,
  ) {
    this.stream = new ReplicationStream(config, startLsn, receiveTimeoutMs, metrics, {
      started: () => {
        this.metrics.streaming.set(1)
        this.events.streaming()
      },
      record: (record, transaction) =>
        this.enqueue(deliveryItem(toKafkaRecord(record, config.topicTemplate), transaction)),
      undecodable: (row, transaction) =>
        this.enqueue(deliveryItem(undecodableRecord(row.columns, config.topicTemplate), transaction, row.reason)),
      // The table is no longer under its name: as start-up would find it.
      tableLeft: (reason) => this.watch.report({ code: 'OUTBOX_NO_TABLE', message: reason }),
      tableReplaced: () => this.onTableReplaced(),
      confirmed: (lsn) => this.events.confirmed(lsn),
      delivered: () => this.events.delivered(),
      ended: (error) => this.finish(this.classifyStreamError(error)),
    })
    this.delivery = createDelivery(config, createPublisher, metrics, logger, {
      acknowledged: (items) => this.acknowledged(items),
      deadLettered: (info) => this.events.deadLettered(info),
      ended: (error) => this.finish({ kind: 'ended', error }),
      alive: () => this.stream.alive(),
    })
    this.watch = new PublicationWatch(config, logger, {
      changed: (problem) => this.onTableProblem(problem),
      replaced: () => this.onTableReplaced(),
      slotHolder: (pid, replySentAtMs) => this.stream.slotHolder(pid, replySentAtMs),
      walPosition: (lsn) => this.stream.serverPosition(parseLsn(lsn)),
    })
  }

  /**
   * Whether committed events flow through this session: it streams, nothing holds delivery up
   * (the table out of the publication, a missing topic), no send has been pending or failing for
   * longer than --ready-send-timeout, and it has shown it delivers (see provenFlowing).
   */
  health(now = Date.now()): SessionHealth {
    if (!this.stream.streaming)
      return { flowing: false, reason: 'the replication stream is not started', fix: 'wait, or see the log' }
    if (this.stream.held)
      return {
        flowing: false,
        reason: this.problem?.message ?? 'the outbox table left the publication',
        fix: 'see docs/operations.md, "The table left the publication"',
      }
    const blocked = this.delivery.blockedTopics
    if (blocked.length > 0)
      return {
        flowing: false,
        reason: `Kafka topics that do not exist or may not be written: ${blocked.join(', ')}`,
        fix: `for each: ${UNAVAILABLE_TOPIC_FIX}`,
      }
    if (this.delivery.ending) {
      const error = this.delivery.lastError
      return {
        flowing: false,
        reason: `a Kafka transaction failed${error?.type ? ` (${error.type})` : ''}: the session ends and restarts`,
        fix: sendFix(error?.type),
      }
    }
    const stalledMs = this.waitingSince === undefined ? 0 : now - this.waitingSince
    if (stalledMs > this.config.readySendTimeoutMs) {
      const error = this.delivery.lastError
      return {
        flowing: false,
        reason: `Kafka has acknowledged nothing for ${Math.round(stalledMs / 1000)} s while ${this.buffered.events} events wait (${error ? `last send failed: ${error.type ?? error.message}` : 'a send is pending'})`,
        fix: sendFix(error?.type),
      }
    }
    if (!this.flowing)
      return {
        flowing: false,
        reason: 'this session has not delivered yet (events committed before it started are still pending)',
        fix: 'wait; if it lasts, see lastError and the log',
      }
    return { flowing: true }
  }

  /** Delivered since it started, or nothing from before its start is left to deliver. */
  get flowing(): boolean {
    if (this.walAtStart === undefined) return true
    if (!this.provenFlowing && this.stream.safeLsn >= this.walAtStart) this.provenFlowing = true
    return this.provenFlowing
  }

  /** The last send error of this session's delivery, if it has not succeeded since. */
  get lastSendError(): { message: string; type: string | undefined; at: number } | undefined {
    return this.delivery.lastError
  }

  get bufferedEvents(): number {
    return this.buffered.events
  }

  /** Seconds since the commit of the oldest unacknowledged event; 0 when none. */
  oldestUnackedAgeSeconds(now = Date.now()): number {
    const oldest = this.stream.oldestPendingCommitTime
    return oldest === undefined ? 0 : Math.max(0, now - oldest) / 1000
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
    this.ageTimer = setInterval(() => this.metrics.oldestUnackedEventAge.set(this.oldestUnackedAgeSeconds()), 1000)
    const publishing = this.delivery.run().catch((error: unknown) => this.finish({ kind: 'fatal', error }))

    const outcome = await this.outcome
    clearTimeout(this.tableProblemTimer)
    clearInterval(this.ageTimer)
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

  private classifyStreamError(error: unknown): SessionOutcome {
    if (sqlState(error) === SQLSTATE.objectInUse) return { kind: 'slot-busy' }
    if (this.stopping) return { kind: 'stopped' }
    return { kind: 'ended', error }
  }

  private enqueue(item: DeliveryItem): void {
    this.waitingSince ??= Date.now()
    this.delivery.enqueue(item)
    this.buffered.events++
    this.buffered.bytes += item.bytes
    this.metrics.bufferedEvents.set(this.buffered.events)
    if (
      !this.paused &&
      (this.buffered.events >= this.config.bufferEvents || this.buffered.bytes >= this.config.bufferBytes) &&
      // Exactly-once sends whole transactions: one larger than the buffer is read to its COMMIT.
      !this.delivery.waitingForCommit
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
    this.metrics.oldestUnackedEventAge.set(this.oldestUnackedAgeSeconds(now))
    if (items.length > 0) this.provenFlowing = true
    this.waitingSince = this.buffered.events > 0 ? now : undefined
    this.events.published(items.length)
    const drained =
      this.buffered.events <= this.config.bufferEvents / 2 && this.buffered.bytes <= this.config.bufferBytes / 2
    // Exactly-once sends only whole transactions: when what is left is one whose COMMIT is
    // still unread, reading must go on whatever the buffer holds, or that COMMIT never arrives.
    const needsCommit = this.delivery.waitingForCommit
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
      'the outbox table was re-created or re-added to the publication since the last check: events inserted in between were not streamed; republish them (see docs/operations.md, "The table left the publication")',
    )
  }

  /**
   * The outbox table left the stream: hold confirming (rows written meanwhile are still in the
   * table, to be republished), turn not ready, and give up after --missing-table-timeout so an
   * orchestrator shows the failure (exit 3) instead of a worker that looks healthy.
   */
  private onTableProblem(problem: PublicationProblem | undefined): void {
    if (this.finished) return
    this.stream.holdConfirming(problem?.message)
    this.problem = problem
    this.metrics.tablePublished.set(problem ? 0 : 1)
    if (!problem) {
      clearTimeout(this.tableProblemTimer)
      this.tableProblemTimer = undefined
    }
    if (problem) {
      this.logger.error(
        { waitMs: this.config.missingTableTimeoutMs },
        `${problem.message}. Events inserted meanwhile do not reach the worker: confirming is held; once fixed, republish them (see docs/operations.md, "The table left the publication")`,
      )
      // Counted from the first sign of trouble; what is reported is the problem as it is then, with
      // the code start-up gives it (a worker restarted on it exits the same way).
      this.tableProblemTimer ??= setTimeout(() => {
        const now = this.problem ?? problem
        this.finish({
          kind: 'fatal',
          error: new OutboxSetupError(`${now.message} (still so after ${this.config.missingTableTimeoutMs} ms)`, {
            code: now.code,
          }),
        })
      }, this.config.missingTableTimeoutMs)
    } else {
      this.logger.warn(
        {},
        'the outbox table is back in the publication; events inserted while it was not are not streamed: republish them (see docs/operations.md, "The table left the publication")',
      )
    }
  }
}

/** What to do about sends that keep failing, by Kafka's error type. */
function sendFix(type: string | undefined): string {
  return type?.startsWith('NOT_ENOUGH_REPLICAS')
    ? "bring the topic's in-sync replicas up to its min.insync.replicas (or lower that setting)"
    : 'check that the Kafka brokers are up and reachable, and the log for the send errors'
}
