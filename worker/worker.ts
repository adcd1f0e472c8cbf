import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  createPublisher as createConfiguredPublisher,
  importDefaultId,
  preloadKafkaClient,
} from './delivery/create-publisher.js'
import type { PublisherFactory } from './delivery/publisher.js'
import { resolveConfig, type WorkerConfig, type WorkerOptions } from './operations/config.js'
import { OutboxConfigError, OutboxSetupError } from './operations/errors.js'
import { startHealthServer } from './operations/http.js'
import { KafkaReachability } from './operations/kafka-reachability.js'
import { errorFields, type Logger, redactingLogger, silentLogger } from './operations/logger.js'
import { createMetrics, type Metrics } from './operations/metrics.js'
import { liveness, readiness, type WorkerFacts, type WorkerState } from './operations/probes.js'
import { redact } from './operations/redact.js'
import { statusDocument, type WorkerStatus } from './operations/status-document.js'
import { untilReachable } from './operations/until-reachable.js'
import { retryDelayMs } from './retry-policy.js'
import { ReplicationSession, type SessionOutcome } from './session.js'
import { type Prepared, SlotPreparation } from './slot/preparation.js'
import { RetentionSchedule } from './slot/retention.js'
import { formatLsn } from './stream/lsn.js'

export type { WorkerState } from './operations/probes.js'
export type { WorkerStatus } from './operations/status-document.js'

export interface CreateWorkerOptions extends WorkerOptions {
  /** Where logs go, passwords redacted; default: nowhere (the CLI passes its pino logger). */
  logger?: Logger
  /**
   * Makes the at-least-once publisher (a new one per replication session, and for the initial
   * snapshot and the Kafka checks), replacing the --kafka-client one, e.g. with another Kafka
   * client. Refused with exactly-once delivery, whose transactional producer it cannot replace.
   */
  createPublisher?: PublisherFactory
}

/**
 * Events: `streaming` (this worker holds the slot), `standby` (another worker holds it),
 * `published` (count), `confirmed` (LSN text), `deadLettered` ({ id, topic, reason }),
 * `reconnecting` (error), `stopped`.
 */
export interface OutboxWorker extends EventEmitter {
  readonly config: WorkerConfig
  readonly metrics: Metrics
  readonly state: WorkerState
  /** Port of the health server, when it runs. */
  readonly healthPort: number | undefined
  /** Resolves once the database and Kafka are reachable and set up, and streaming is under way. */
  start(): Promise<void>
  /** Graceful stop: flush in-flight events, confirm, close. Idempotent. */
  stop(): Promise<void>
  /** Settles when the worker ends: resolves after stop(), rejects on a fatal error. */
  readonly done: Promise<void>
  /** Does its part: an active worker whose events flow, or a standby that can take over (docs/probes.md). */
  isReady(): boolean
  /** The run loop makes progress (an outage does not count against it; docs/probes.md). */
  isLive(): boolean
  /** What `/status` answers. */
  status(): Promise<WorkerStatus>
  [Symbol.asyncDispose](): Promise<void>
}

export function createWorker(options: CreateWorkerOptions): OutboxWorker {
  const { logger: injected, createPublisher, ...rest } = options
  const config = resolveConfig(rest)
  if (createPublisher && config.delivery === 'exactly-once')
    throw new OutboxConfigError(
      'createPublisher replaces the at-least-once publisher, but delivery is exactly-once (its events go through a transactional producer of the worker, which it cannot replace): remove createPublisher, or use at-least-once delivery',
    )
  // Whatever the logger, it receives no password (see redactingLogger).
  return new Worker(config, injected ? redactingLogger(injected) : silentLogger, createPublisher)
}

class Worker extends EventEmitter implements OutboxWorker {
  readonly metrics = createMetrics()
  state: WorkerState = 'idle'
  healthPort: number | undefined
  readonly done: Promise<void>
  private resolveDone!: () => void
  private rejectDone!: (error: unknown) => void
  private starting: Promise<void> | undefined
  private stopping: Promise<void> | undefined
  private readonly stopController = new AbortController()
  private session: ReplicationSession | undefined
  private readonly createPublisher: PublisherFactory
  private readonly injectedPublisher: boolean
  private readonly cleanups: (() => Promise<void>)[] = []
  private readonly slot: SlotPreparation
  private readonly retention: RetentionSchedule
  /** When this worker, standing by, last checked the database and the slot successfully. */
  private standbyCheckedAt: number | undefined
  private readonly kafka: KafkaReachability
  private lastError: { message: string; fix: string; at: number } | undefined
  private confirmedLsn: string | undefined

  constructor(
    /** Replaced once at start when exactly-once's default transactional id is resolved. */
    public config: WorkerConfig,
    private readonly logger: Logger,
    createPublisher: PublisherFactory | undefined,
  ) {
    super()
    this.createPublisher = createPublisher ?? (() => createConfiguredPublisher(config, logger))
    this.injectedPublisher = createPublisher !== undefined
    this.slot = new SlotPreparation({
      config: () => this.config,
      createPublisher: this.createPublisher,
      metrics: this.metrics,
      logger,
      signal: this.stopController.signal,
    })
    this.kafka = new KafkaReachability({
      createPublisher: this.createPublisher,
      logger,
      stopped: () => this.stopped(),
      signal: this.stopController.signal,
    })
    this.retention = new RetentionSchedule(config, logger, () => this.session?.deliveredBefore ?? 0)
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve
      this.rejectDone = reject
    })
    this.done.catch(() => {}) // reported through start() or by whoever awaits done
  }

  isReady(): boolean {
    return readiness(this.facts(), this.config).ok
  }

  isLive(): boolean {
    return liveness(this.facts(), this.config).ok
  }

  private facts(now = Date.now()): WorkerFacts {
    return {
      state: this.state,
      now,
      heartbeatAt: this.metrics.heartbeat.at,
      standbyCheckedAt: this.standbyCheckedAt,
      kafkaCheckedAt: this.kafka.checkedAt,
      session: this.state === 'streaming' ? this.session?.health(now) : undefined,
      lastError: this.lastError,
    }
  }

  status(): Promise<WorkerStatus> {
    return statusDocument({
      facts: this.facts(),
      config: this.config,
      metrics: this.metrics,
      session: this.session,
      lastError: this.lastError,
      confirmedLsn: this.confirmedLsn,
    })
  }

  start(): Promise<void> {
    this.starting ??= this.startOnce()
    return this.starting
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopOnce()
    return this.stopping
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  private async startOnce(): Promise<void> {
    this.setState('starting')
    // An injected publisher factory (at-least-once only) brings its own client.
    const clientLoaded =
      this.injectedPublisher && this.config.delivery !== 'exactly-once' ? undefined : preloadKafkaClient(this.config)
    clientLoaded?.catch(() => {}) // awaited below; until then it must not be unhandled
    let prepared: Prepared
    try {
      if (this.config.healthPort > 0) {
        const server = await startHealthServer({
          host: this.config.healthHost,
          port: this.config.healthPort,
          metrics: this.metrics,
          isReady: () => this.isReady(),
          isLive: () => this.isLive(),
          status: () => this.status(),
          logger: this.logger,
        })
        this.healthPort = server.port
        this.cleanups.push(() => server.close())
      }
      // The database is checked first (its mistakes are the commonest), then Kafka, and only
      // then is the slot created: a first start that cannot reach Kafka must not leave a slot
      // behind, pinning WAL for a worker that never ran.
      await this.untilReachable('PostgreSQL', () => this.prepare({ createSlot: false }))
      await clientLoaded
      await this.untilReachable('Kafka', () => this.kafka.check())
      if (this.config.delivery === 'exactly-once' && this.config.transactionalId === undefined) {
        // Imported here: it loads kafkajs, which only exactly-once uses.
        const { withDefaultTransactionalId } = await importDefaultId()
        this.config = await withDefaultTransactionalId(this.config, this.logger, (what, attempt) =>
          this.untilReachable(what, attempt),
        )
      }
      prepared = await this.untilReachable('PostgreSQL', () => this.prepare())
      this.metrics.kafkaConnected.set(1)
      this.retention.start()
      this.cleanups.push(async () => this.retention.stop())
    } catch (error) {
      if (this.stopController.signal.aborted) {
        // stop() during start-up is a stop, not a failure.
        await this.finish()
        return
      }
      await this.fail(error)
      throw error
    }
    this.runLoop(prepared).then(
      () => this.finish(),
      (error: unknown) => this.fail(error),
    )
  }

  /** Retries a connection at start (until-reachable.ts); stop() ends the wait. */
  private untilReachable<T>(what: 'PostgreSQL' | 'Kafka', attempt: () => Promise<T>): Promise<T> {
    return untilReachable(what, attempt, {
      config: this.config,
      logger: this.logger,
      heartbeat: () => this.metrics.heartbeat.beat(),
      signal: this.stopController.signal,
      stopped: () => this.stopped(),
    })
  }

  private prepare({ createSlot = true } = {}): Promise<Prepared> {
    return this.slot.prepare({ createSlot, starting: this.state === 'starting' })
  }

  /**
   * The one loop: a session per replication connection. Standby while another worker holds the
   * slot; after a failure, reconnect after a pause (retry-policy.ts), resuming from the slot's
   * confirmed position.
   */
  private async runLoop(preparedAtStart: Prepared): Promise<void> {
    let failures = 0
    /** The last session failed and none has delivered since (see ReplicationSession's walAtStart). */
    let recovering = false
    /** The first session uses start()'s preparation, made a moment ago: one round of queries less. */
    let fresh: Prepared | undefined = preparedAtStart
    while (!this.stopController.signal.aborted) {
      this.metrics.heartbeat.beat()
      let prepared: Prepared
      try {
        // A reconnect's set-up can be slow (a struggling server): stop() does not wait for it.
        prepared = fresh ?? (await Promise.race([this.prepare(), this.stopped()]))
        fresh = undefined
      } catch (error) {
        if (this.stopController.signal.aborted) return
        if (error instanceof OutboxSetupError) throw error
        recovering = true
        await this.reconnectAfter(error, failures++)
        continue
      }
      if (this.stopController.signal.aborted) return
      this.metrics.heartbeat.beat()
      if (prepared.kind === 'creating-elsewhere') {
        this.standBy('another worker is creating the slot and publishing its initial snapshot: standing by')
        await this.pause(this.config.standbyPollMs)
        continue
      }
      const { startLsn, receiveTimeoutMs, statusIntervalMs, walLsn } = prepared
      // What the slot says now, true whether this worker streams next or stands by (the other
      // gauges of a session are reset when it ends).
      this.metrics.confirmedLsn.set(Number(startLsn))
      this.metrics.slotLagBytes.set(prepared.lagBytes ?? 0)
      this.confirmedLsn = formatLsn(startLsn)
      const session: ReplicationSession = new ReplicationSession(
        { ...this.config, statusIntervalMs },
        startLsn,
        receiveTimeoutMs,
        recovering ? walLsn : undefined,
        this.createPublisher,
        this.metrics,
        this.logger,
        {
          streaming: () => {
            // Its delivery starts as connected (the start-up check reached Kafka), until a send fails.
            this.metrics.kafkaConnected.set(1)
            this.setState('streaming')
            this.logger.info({ slot: this.config.slot, from: formatLsn(startLsn), receiveTimeoutMs }, 'streaming')
            this.emit('streaming')
          },
          published: (count) => this.emit('published', count),
          confirmed: (lsn) => {
            this.confirmedLsn = lsn
            this.emit('confirmed', lsn)
          },
          delivered: () => this.retention.whenDue(),
          deadLettered: (info) => this.emit('deadLettered', info),
        },
      )
      this.session = session
      const outcome: SessionOutcome = await session.run()
      this.session = undefined
      // Failures count again from 0 once a session has delivered (or had nothing to deliver): a
      // session that fails before that, like one that cannot connect, waits longer each time.
      if (session.flowing) failures = 0
      recovering = outcome.kind === 'ended' || (recovering && !session.flowing)
      this.metrics.resetSessionGauges({ standby: false })
      if (this.stopController.signal.aborted && outcome.kind !== 'fatal') return
      switch (outcome.kind) {
        case 'stopped':
          return
        case 'fatal':
          throw outcome.error
        case 'slot-busy':
          this.standBy('slot is held by another worker: standing by')
          await this.pause(this.config.standbyPollMs)
          break
        case 'ended':
          this.metrics.streamErrors.inc()
          await this.reconnectAfter(outcome.error, failures++)
          break
      }
    }
  }

  /** The database and the slot were checked just now, and the slot is another worker's. */
  private standBy(why: string): void {
    this.standbyCheckedAt = Date.now()
    void this.kafka.checkAsStandby()
    this.metrics.heartbeat.beat()
    this.metrics.resetSessionGauges({ standby: true })
    if (this.state === 'standby') return
    this.setState('standby')
    this.logger.info({ slot: this.config.slot }, why)
    this.emit('standby')
  }

  private async reconnectAfter(error: unknown, failures: number): Promise<void> {
    if (this.stopController.signal.aborted) return
    const delay = retryDelayMs(this.config, failures)
    this.setState('reconnecting')
    this.metrics.heartbeat.beat()
    this.lastError = {
      message: redact((error as Error)?.message ?? String(error)),
      fix: 'none needed if it passes: the worker reconnects by itself; if it lasts, check that PostgreSQL (DATABASE_URL) and Kafka (KAFKA_BROKERS) are up, and the log',
      at: Date.now(),
    }
    this.logger.warn({ ...errorFields(error), retryInMs: Math.round(delay) }, 'replication stream lost; reconnecting')
    this.emit('reconnecting', error)
    await this.pause(delay)
  }

  private stoppedPromise: Promise<never> | undefined

  /** Rejects when stop() is called: one promise (and one abort listener) for the worker's life. */
  private stopped(): Promise<never> {
    this.stoppedPromise ??= new Promise<never>((_, reject) => {
      const { signal } = this.stopController
      const abort = () => reject(new Error('stopped'))
      if (signal.aborted) abort()
      else signal.addEventListener('abort', abort, { once: true })
    })
    this.stoppedPromise.catch(() => {})
    return this.stoppedPromise
  }

  /** Sleeps, waking early when stop() is called. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopController.signal }).catch(() => {})
  }

  private async stopOnce(): Promise<void> {
    if (this.state === 'idle' || this.state === 'stopped' || this.state === 'failed') {
      await this.runCleanups()
      this.setState('stopped')
      this.resolveDone()
      return
    }
    this.setState('stopping')
    this.stopController.abort()
    await this.session?.drain(this.config.shutdownTimeoutMs)
    await this.done.catch(() => {})
  }

  private async finish(): Promise<void> {
    // A stop during the initial snapshot: let it drop its unfinished slot before the process ends.
    await this.slot.creation?.catch(() => {})
    await this.runCleanups()
    this.setState('stopped')
    this.logger.info({}, 'stopped')
    this.emit('stopped')
    this.resolveDone()
  }

  private async fail(error: unknown): Promise<void> {
    this.stopController.abort()
    await this.slot.creation?.catch(() => {})
    await this.runCleanups()
    this.setState('failed')
    // A configuration error is its caller's to report (start() rejects with it; the CLI prints it
    // once on stderr): logged here too, it showed twice on a terminal.
    if (error instanceof OutboxConfigError) this.logger.debug(errorFields(error), 'worker failed')
    else this.logger.error(errorFields(error), 'worker failed')
    this.rejectDone(error)
  }

  private async runCleanups(): Promise<void> {
    while (this.cleanups.length > 0)
      await this.cleanups
        .pop()?.()
        .catch(() => {})
  }

  private setState(state: WorkerState): void {
    this.state = state
  }
}
