import type pg from 'pg'
import type { PublisherFactory } from '../delivery/publisher.js'
import { DEFAULTS, statusIntervalProblem, type WorkerConfig } from '../operations/config.js'
import { OutboxSetupError } from '../operations/errors.js'
import type { Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { sideConnection } from '../operations/side-connection.js'
import { prepareDatabase } from './setup.js'
import { dropInvalidatedSlot, readSlot, slotAction } from './slot-state.js'
import { createSlot, slotCreationUnderWay } from './snapshot.js'

/**
 * What a session needs before it streams: the slot ready (with the server's WAL position and the
 * slot's lag at that moment, and the timings fitted to the server's wal_sender_timeout), or the
 * news that another worker is creating it.
 */
export type Prepared =
  | {
      kind: 'ready'
      startLsn: bigint
      receiveTimeoutMs: number
      statusIntervalMs: number
      walLsn: bigint
      lagBytes: number | null
    }
  | { kind: 'creating-elsewhere' }

export interface SlotPreparationContext {
  /** The worker's configuration as it is now (exactly-once's default id is resolved at start). */
  config(): WorkerConfig
  createPublisher: PublisherFactory
  metrics: Metrics
  logger: Logger
  /** Aborted by stop(): an initial snapshot under way stops and drops its unfinished slot. */
  signal: AbortSignal
}

/**
 * Before each session: checks the database and settles the slot (uses, creates or re-creates it),
 * remembering across sessions whether this process has known the slot, which tells a lost slot
 * from one never made.
 */
export class SlotPreparation {
  /** This process found or created the slot: if it is missing later, it was lost, not never made. */
  private slotKnown = false
  /** The slot's creation and initial snapshot, when under way: the worker ends only after it settles. */
  creation: Promise<unknown> | undefined

  constructor(private readonly context: SlotPreparationContext) {}

  /**
   * `createSlot: false` checks without creating (the first check at start, before Kafka is known
   * reachable). `starting`: a configured status interval that does not fit is refused (exit 3)
   * rather than shortened.
   */
  async prepare({ createSlot = true, starting = false } = {}): Promise<Prepared> {
    const config = this.context.config()
    const client = sideConnection(config.databaseUrl)
    await client.connect()
    try {
      await prepareDatabase(client, config)
      if ((await this.settleSlot(client, createSlot)) === 'creating-elsewhere') return { kind: 'creating-elsewhere' }
      const slot = await readSlot(client, config.slot)
      const { rows } = await client.query(
        `SELECT setting::int AS ms, pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END, '0/0')::text AS wal
           FROM pg_settings WHERE name = 'wal_sender_timeout'`,
      )
      const walSenderTimeoutMs: number = rows[0]?.ms ?? 60_000
      const statusIntervalMs = this.statusInterval(walSenderTimeoutMs, starting)
      return {
        kind: 'ready',
        startLsn: slot.confirmedFlushLsn ?? 0n,
        receiveTimeoutMs: receiveTimeout(walSenderTimeoutMs, statusIntervalMs),
        statusIntervalMs,
        walLsn: BigInt(rows[0]?.wal ?? '0'),
        lagBytes: slot.lagBytes,
      }
    } finally {
      await client.end().catch(() => {})
    }
  }

  /**
   * The status interval this session uses: at most a third of wal_sender_timeout (see
   * statusIntervalProblem). The default is shortened to fit, quietly: nobody chose it. A value the
   * operator set is refused at start (exit 3, naming both); once running, a wal_sender_timeout
   * lowered by a reload shortens it with a warning instead of stopping a worker that streams.
   */
  private statusInterval(walSenderTimeoutMs: number, starting: boolean): number {
    const configured = this.context.config().statusIntervalMs
    const problem = statusIntervalProblem(configured, walSenderTimeoutMs)
    if (!problem) return configured
    const fitting = Math.max(1, Math.floor(walSenderTimeoutMs / 3))
    if (configured === DEFAULTS.statusIntervalMs) return fitting
    if (starting) throw new OutboxSetupError(problem, { code: 'OUTBOX_STATUS_INTERVAL' })
    this.context.logger.warn({ statusIntervalMs: fitting }, `${problem}; using ${fitting} ms until then`)
    return fitting
  }

  /**
   * Uses, creates or re-creates the slot as its state and --on-slot-lost say; throws the slot's
   * problem (exit 3) otherwise. Only the first start creates a slot that never existed: one that
   * disappears later was lost, and re-creating it silently would hide the events it missed.
   * `creating-elsewhere`: another worker is creating the slot (its initial snapshot under way).
   */
  private async settleSlot(client: pg.Client, mayCreate: boolean): Promise<'settled' | 'creating-elsewhere'> {
    const config = this.context.config()
    const { slot, onSlotLost } = config
    const { state } = await readSlot(client, slot)
    const action = slotAction(state, { slot, known: this.slotKnown, mayCreate, onSlotLost })
    if (action === 'later') return 'settled'
    // A slot whose creator still holds the lock is not finished (its FAILOVER not yet set).
    if (action === 'use' && !this.slotKnown && (await slotCreationUnderWay(client, slot))) return 'creating-elsewhere'
    if (action === 'recreate') {
      const what = state.kind === 'invalidated' ? `was invalidated (${state.reason})` : 'disappeared'
      const again =
        config.snapshot === 'initial'
          ? 'the initial snapshot publishes the rows still in the table, those delivered before included (same ids)'
          : 'with --snapshot never, events committed meanwhile are not sent: republish them'
      this.context.logger.error(
        { slot },
        `replication slot ${what}: re-creating it (--on-slot-lost recreate); ${again}`,
      )
      if (state.kind === 'invalidated') await dropInvalidatedSlot(client, slot)
    }
    if (action === 'create' || action === 'recreate') {
      const creation = createSlot({
        config,
        createPublisher: this.context.createPublisher,
        metrics: this.context.metrics,
        logger: this.context.logger,
        signal: this.context.signal,
      })
      this.creation = creation
      if ((await creation) === 'busy') return 'creating-elsewhere'
    }
    this.slotKnown = true
    return 'settled'
  }
}

/**
 * How long the replication connection may be silent before it is presumed dead (half-open); from
 * then on nothing more is sent to Kafka and the session ends, so it must come before the server's
 * wal_sender_timeout can free the slot for another worker. The server counts from the last status
 * update it received, which may be a whole status interval older than the last message this
 * worker received (status updates go out every interval; data and keepalives come in meanwhile):
 * the slot can be freed wal_sender_timeout - status interval after that message. A tenth of
 * wal_sender_timeout is kept for the rest: a send in flight reaching Kafka, a late timer, the
 * network's delay. statusIntervalProblem keeps the interval at most a third, so this stays above
 * half of wal_sender_timeout, the longest the server itself may be silent (decoding a large
 * transaction). With the timeout off (0), the server never frees the slot by itself: a minute.
 */
export function receiveTimeout(walSenderTimeoutMs: number, statusIntervalMs: number): number {
  if (walSenderTimeoutMs <= 0) return 60_000
  return Math.round(walSenderTimeoutMs - statusIntervalMs - walSenderTimeoutMs / 10)
}
