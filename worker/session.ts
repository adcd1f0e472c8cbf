import type { Socket } from 'node:net'
import pRetry, { AbortError } from 'p-retry'
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication'
import type { WorkerConfig } from './config.js'
import { OutboxDecoder, type OutboxRecord } from './decoder.js'
import { OutboxPoisonEventError } from './errors.js'
import { errorFields, type Logger } from './logger.js'
import { formatLsn, type Lsn, maxLsn, parseLsn } from './lsn.js'
import { LsnTracker, type TrackedTransaction } from './lsn-tracker.js'
import type { Metrics } from './metrics.js'
import { classifyPublishError, type Publisher } from './publisher.js'
import { type KafkaRecord, poisonReason, recordBytes, toDeadLetter, toKafkaRecord } from './records.js'
import { SQLSTATE, sqlState } from './setup.js'

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
}

interface Pending {
  record: KafkaRecord
  transaction: TrackedTransaction
  bytes: number
}

/** Largest Kafka request the relay builds, whatever batchSize allows. */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024

/**
 * One replication connection, from START_REPLICATION until it ends, and the publishing that goes
 * with it. A new session (and a new LogicalReplicationService) is made for every connection: a
 * reused service would restart from the last LSN it *received* instead of the slot's confirmed
 * position, skipping everything received but not yet acknowledged.
 *
 * Data and keepalive messages are handled synchronously in socket order (no library flow
 * control: it queues data but not keepalives, so a keepalive could be applied ahead of
 * unprocessed commits). Backpressure pauses the socket; a timer keeps sending status updates
 * while paused so the server does not time the connection out.
 */
export class ReplicationSession {
  private readonly service: LogicalReplicationService
  private readonly tracker: LsnTracker
  private readonly decoder: OutboxDecoder
  private readonly queue: Pending[] = []
  private open: TrackedTransaction | undefined
  private buffered = { events: 0, bytes: 0 }
  private paused = false
  private serverLsn: Lsn
  private confirmed: Lsn
  private stopping = false
  private readonly abort = new AbortController()
  private wakePublisher: (() => void) | undefined
  private finish!: (outcome: SessionOutcome) => void
  private readonly outcome = new Promise<SessionOutcome>((resolve) => {
    this.finish = (outcome) => resolve(outcome)
  })
  streaming = false
  kafkaHealthy = true

  constructor(
    private readonly config: WorkerConfig,
    startLsn: Lsn,
    private readonly publisher: Publisher,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly events: SessionEvents,
  ) {
    this.service = new LogicalReplicationService(
      { connectionString: config.databaseUrl },
      // Never let the library confirm anything: it would confirm what was received, not delivered.
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    )
    this.tracker = new LsnTracker(startLsn)
    this.serverLsn = startLsn
    this.confirmed = startLsn
    this.decoder = new OutboxDecoder(config.table, {
      begin: (commitTime) => {
        this.open = this.tracker.begin(commitTime)
      },
      record: (record) => this.enqueue(record),
      commit: (endLsn) => {
        if (this.open) this.tracker.commit(this.open, parseLsn(endLsn))
        this.open = undefined
      },
    })
  }

  /** Streams until the connection ends, the slot turns out busy, or drain() finishes. */
  async run(): Promise<SessionOutcome> {
    const { service } = this
    service.on('data', (lsn: string, message: Pgoutput.Message) => this.onData(lsn, message))
    service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) =>
      this.onKeepalive(lsn, shouldRespond),
    )
    service.on('error', (error: unknown) => this.finish(this.classifyStreamError(error)))
    service.on('start', () => {
      this.streaming = true
      this.metrics.streaming.set(1)
      this.events.streaming()
    })
    // messages: message mode's events (pg_logical_emit_message) arrive in the same stream (PostgreSQL 14+).
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.config.publication], messages: true })
    service.subscribe(plugin, this.config.slot).then(
      () => this.finish({ kind: 'ended', error: new Error('the server ended the replication stream') }),
      (error: unknown) => this.finish(this.classifyStreamError(error)),
    )
    // Status updates with reply requested: they keep the connection alive while reading is
    // paused, and the server's reply (a keepalive) lets an idle slot advance.
    const timer = setInterval(() => this.sendStatus(true), this.config.statusIntervalMs)
    const publishing = this.publishLoop().catch((error: unknown) => {
      if (!this.abort.signal.aborted) this.finish({ kind: 'fatal', error })
    })

    const outcome = await this.outcome
    clearInterval(timer)
    this.abort.abort()
    this.wakePublisher?.()
    await publishing
    this.streaming = false
    this.metrics.streaming.set(0)
    await service.destroy().catch(() => {})
    return outcome
  }

  /**
   * Graceful end: stop reading, publish what was already received, confirm what Kafka
   * acknowledged, and close. Gives up waiting after `timeoutMs`, confirming only what is safe.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.stopping = true
    this.socket()?.pause()
    const deadline = Date.now() + timeoutMs
    while ((this.queue.length > 0 || this.inFlight) && Date.now() < deadline && !this.abort.signal.aborted) {
      await new Promise((r) => setTimeout(r, 20))
    }
    if (this.queue.length > 0 || this.inFlight) {
      this.logger.warn(
        { unacknowledged: this.buffered.events },
        'shutdown timeout: stopping with events unacknowledged (they are redelivered on restart)',
      )
    }
    this.sendStatus(false)
    this.finish({ kind: 'stopped' })
  }

  private inFlight = false

  private classifyStreamError(error: unknown): SessionOutcome {
    if (sqlState(error) === SQLSTATE.objectInUse) return { kind: 'slot-busy' }
    if (this.stopping) return { kind: 'stopped' }
    return { kind: 'ended', error }
  }

  private onData(lsn: string, message: Pgoutput.Message): void {
    try {
      this.serverLsn = maxLsn(this.serverLsn, parseLsn(lsn))
      this.decoder.handle(message)
    } catch (error) {
      this.finish({ kind: 'ended', error })
    }
  }

  private onKeepalive(lsn: string, shouldRespond: boolean): void {
    const walEnd = parseLsn(lsn)
    this.serverLsn = maxLsn(this.serverLsn, walEnd)
    this.tracker.keepalive(walEnd)
    if (shouldRespond || this.tracker.safeLsn > this.confirmed) this.sendStatus(false)
  }

  private enqueue(record: OutboxRecord): void {
    const transaction = this.open
    if (!transaction) throw new Error(`insert of event ${record.id} outside a transaction`)
    const kafkaRecord = toKafkaRecord(record, this.config.topicTemplate)
    const bytes = recordBytes(kafkaRecord)
    this.tracker.addRecord(transaction)
    this.queue.push({ record: kafkaRecord, transaction, bytes })
    this.buffered.events++
    this.buffered.bytes += bytes
    this.metrics.bufferedEvents.set(this.buffered.events)
    if (
      !this.paused &&
      (this.buffered.events >= this.config.bufferEvents || this.buffered.bytes >= this.config.bufferBytes)
    ) {
      this.paused = true
      this.socket()?.pause()
      this.logger.debug({ buffered: this.buffered.events }, 'buffer full: reading paused')
    }
    this.wakePublisher?.()
  }

  private publishLoop = async (): Promise<void> => {
    while (!this.abort.signal.aborted) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.wakePublisher = resolve
        })
        this.wakePublisher = undefined
        continue
      }
      const batch = this.takeBatch()
      this.inFlight = true
      try {
        await this.publish(batch)
      } finally {
        this.inFlight = false
      }
      this.acknowledge(batch)
    }
  }

  private takeBatch(): Pending[] {
    let bytes = 0
    let count = 0
    while (count < this.queue.length && count < this.config.batchSize) {
      bytes += (this.queue[count] as Pending).bytes
      if (count > 0 && bytes > MAX_REQUEST_BYTES) break
      count++
    }
    return this.queue.splice(0, count)
  }

  /** Publishes a batch; poison records go to the dead-letter topic (or stop the worker). */
  private async publish(batch: Pending[]): Promise<void> {
    const good: Pending[] = []
    for (const item of batch) {
      const reason = poisonReason(item.record, this.config.maxMessageBytes)
      if (reason) await this.poison(item, reason)
      else good.push(item)
    }
    if (good.length > 0) await this.sendBisectingPoison(good)
  }

  /** Kafka refused the batch for one of its records: halve until the culprit is alone. */
  private async sendBisectingPoison(items: Pending[]): Promise<void> {
    const refused = await this.sendWithRetry(items.map((i) => i.record))
    if (!refused) return
    if (items.length === 1) return this.poison(items[0] as Pending, `Kafka refused it: ${refused}`)
    const middle = Math.ceil(items.length / 2)
    await this.sendBisectingPoison(items.slice(0, middle))
    await this.sendBisectingPoison(items.slice(middle))
  }

  /**
   * Sends until Kafka acknowledges, retrying retriable errors forever with capped exponential
   * backoff and jitter. Resolves to undefined on success, or to the Kafka error type when Kafka
   * refuses a record for good; throws on fatal errors (authorization) and when aborted.
   */
  private async sendWithRetry(records: KafkaRecord[]): Promise<string | undefined> {
    return await pRetry(
      async () => {
        try {
          await this.publisher.send(records)
          this.setKafkaHealthy(true)
          this.metrics.batchSize.observe(records.length)
          return undefined
        } catch (error) {
          const { kind, type } = classifyPublishError(error)
          this.metrics.publishErrors.inc({ kind })
          if (kind === 'poison') return type ?? 'refused'
          if (kind === 'fatal') throw new AbortError(error as Error)
          this.setKafkaHealthy(false)
          throw error
        }
      },
      {
        // `forever` rather than retries: Infinity, which makes the retry package allocate one
        // timeout per retry up front. After 16 doublings the delay stays at maxTimeout.
        forever: true,
        retries: 16,
        factor: 2,
        minTimeout: this.config.retryInitialMs,
        maxTimeout: this.config.retryMaxMs,
        randomize: true,
        signal: this.abort.signal,
        onFailedAttempt: (failure) => {
          this.logger.warn(
            { ...errorFields(failure), attempt: failure.attemptNumber, records: records.length },
            'Kafka send failed; retrying with backoff (nothing is confirmed meanwhile)',
          )
        },
      },
    )
  }

  private async poison(item: Pending, reason: string): Promise<void> {
    const id = item.record.headers.id ?? '?'
    this.logger.error({ id, topic: item.record.topic, reason, onPoison: this.config.onPoison }, 'poison event')
    if (this.config.onPoison === 'stop') throw new OutboxPoisonEventError(id, reason)
    const dead = toDeadLetter(item.record, reason, this.config.dlqTopicTemplate, this.config.maxMessageBytes)
    const refused = await this.sendWithRetry([dead])
    if (refused)
      throw new OutboxPoisonEventError(id, `${reason}; the dead-letter topic ${dead.topic} refused it too (${refused})`)
    this.metrics.eventsDeadLettered.inc()
    this.events.deadLettered({ id, topic: item.record.topic, reason })
  }

  private acknowledge(batch: Pending[]): void {
    const now = Date.now()
    for (const item of batch) {
      this.tracker.acknowledge(item.transaction)
      this.metrics.commitToAck.observe(Math.max(0, now - item.transaction.commitTime) / 1000)
      this.buffered.events--
      this.buffered.bytes -= item.bytes
    }
    this.metrics.eventsPublished.inc(batch.length)
    this.metrics.bufferedEvents.set(this.buffered.events)
    this.events.published(batch.length)
    if (
      this.paused &&
      !this.stopping &&
      this.buffered.events <= this.config.bufferEvents / 2 &&
      this.buffered.bytes <= this.config.bufferBytes / 2
    ) {
      this.paused = false
      this.socket()?.resume()
      this.logger.debug({ buffered: this.buffered.events }, 'buffer drained: reading resumed')
    }
    if (this.tracker.safeLsn > this.confirmed) this.sendStatus(false)
  }

  /**
   * Tells PostgreSQL the slot may forget WAL up to the safe LSN. pg-logical-replication reports
   * `lsn + 1` as written/flushed/applied, so it is given safe - 1 to report exactly the safe LSN.
   */
  private sendStatus(requestReply: boolean): void {
    const safe = this.tracker.safeLsn
    this.metrics.slotLagBytes.set(Number(this.serverLsn > safe ? this.serverLsn - safe : 0n))
    if (safe <= 0n || !this.streaming) return
    void this.service.acknowledge(formatLsn(safe - 1n), requestReply)
    if (safe > this.confirmed) {
      this.confirmed = safe
      this.metrics.confirmedLsn.set(Number(safe))
      this.events.confirmed(formatLsn(safe))
    }
  }

  private setKafkaHealthy(healthy: boolean): void {
    this.kafkaHealthy = healthy
    this.metrics.kafkaConnected.set(healthy ? 1 : 0)
  }

  /**
   * The replication connection's socket, for pausing reads. pg-logical-replication has no
   * public handle for it; this is the one place that reaches inside (a test proves backpressure).
   */
  private socket(): Socket | undefined {
    return (this.service as unknown as { _connection?: { stream?: Socket } })._connection?.stream
  }
}
