import type pg from 'pg'
import type { WorkerConfig } from '../operations/config.js'
import { errorFields, type Logger } from '../operations/logger.js'
import { sideConnection } from '../operations/side-connection.js'
import { type PublicationProblem, publicationProblem, readPublicationFacts } from './checks.js'

/** What the catalog says about the outbox table, the publication and the slot, right now. */
export interface CatalogState {
  /**
   * Undefined when inserts into the outbox table reach the stream; else what is wrong and the fix,
   * with the code start-up gives the same problem.
   */
  problem: PublicationProblem | undefined
  /**
   * The table's oid and the oid of its membership in the publication: a table dropped and
   * re-created, or removed from the publication and added back, gets new ones.
   */
  identity: string | undefined
  /** The backend holding the slot, if any. */
  slotPid: number | null
  /**
   * When the last status update the slot's backend received was sent (pg_stat_replication.reply_time,
   * Unix ms): the time the sender wrote into it, so by the sending worker's clock (status-update.ts).
   */
  replySentAtMs: number | null
  /** The server's flushed WAL position (replayed, on a server in recovery), as text. */
  walLsn: string
}

/**
 * Nothing in the stream says so when the table leaves the publication (DROP TABLE and re-create,
 * ALTER PUBLICATION ... DROP TABLE): its inserts just stop arriving, while keepalives would go on
 * confirming past them. Hence this look at the catalog (readable by any role), every few seconds.
 */
export async function readCatalog(client: pg.Client, config: WorkerConfig): Promise<CatalogState> {
  const facts = await readPublicationFacts(client, config)
  const problem = publicationProblem(facts, config)
  const { rows } = await client.query(
    `SELECT (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1) AS slot_pid,
            (SELECT (extract(epoch FROM r.reply_time) * 1000)::float8
               FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
              WHERE s.slot_name = $1) AS reply_sent_at_ms,
            (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text AS wal_lsn`,
    [config.slot],
  )
  const row = rows[0]
  return {
    problem,
    identity: problem ? undefined : `${facts.tableOid}/${facts.membershipOid ?? 'all'}`,
    slotPid: row.slot_pid,
    replySentAtMs: row.reply_sent_at_ms === null ? null : Number(row.reply_sent_at_ms),
    walLsn: row.wal_lsn,
  }
}

export interface PublicationWatchHooks {
  /** Called on every change of state: a problem (with its fix), or undefined when it is solved. */
  changed(problem: PublicationProblem | undefined): void
  /**
   * The table was re-created or re-added between two checks without a problem ever being seen:
   * events inserted in between may never have been streamed.
   */
  replaced(): void
  /**
   * The slot's holder, as the catalog says, and when the last status update its walsender received
   * was sent (CatalogState.replySentAtMs), for a session whose stream is paused.
   */
  slotHolder(pid: number | null, replySentAtMs: number | null): void
  /** The server's WAL position (text), for the slot lag while reading is paused. */
  walPosition(lsn: string): void
}

/** Runs readCatalog every --table-check-interval on a connection of its own. */
export class PublicationWatch {
  private client: pg.Client | undefined
  private timer: NodeJS.Timeout | undefined
  private problem: PublicationProblem | undefined
  private identity: string | undefined
  /** A problem was reported since the identity was last recorded (so a new one is explained). */
  private problemSinceIdentity = false
  private running = false
  private stopped = false
  private failures = 0

  constructor(
    private readonly config: WorkerConfig,
    private readonly logger: Logger,
    private readonly hooks: PublicationWatchHooks,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.config.tableCheckIntervalMs)
  }

  /** A problem seen elsewhere (a relation message saying the table was renamed). */
  report(problem: PublicationProblem): void {
    if (this.problem || this.stopped) return
    this.problem = problem
    this.problemSinceIdentity = true
    this.hooks.changed(problem)
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    this.close()
  }

  private close(): void {
    const client = this.client
    this.client = undefined
    // Not awaited: on a half-open connection an orderly end would wait forever.
    void client?.end().catch(() => {})
  }

  private async check(): Promise<void> {
    if (this.running || this.stopped) return
    this.running = true
    try {
      if (!this.client) {
        const client = sideConnection(this.config.databaseUrl)
        this.client = client
        await client.connect()
      }
      const state = await readCatalog(this.client, this.config)
      if (this.stopped) return
      this.failures = 0
      this.hooks.slotHolder(state.slotPid, state.replySentAtMs)
      if (state.walLsn) this.hooks.walPosition(state.walLsn)
      if (state.problem?.message !== this.problem?.message) {
        this.problem = state.problem
        if (state.problem) this.problemSinceIdentity = true
        this.hooks.changed(state.problem)
      }
      if (state.identity) {
        if (this.identity && state.identity !== this.identity && !this.problemSinceIdentity) this.hooks.replaced()
        this.identity = state.identity
        this.problemSinceIdentity = false
      }
    } catch (error) {
      // Log it: a check that always fails must not switch the watch off silently. The
      // connection is made anew next time.
      this.failures++
      if (this.failures === 1 || this.failures % 12 === 0)
        this.logger.warn(
          { ...errorFields(error), failures: this.failures },
          'could not check the outbox table and the publication; trying again',
        )
      this.close()
    } finally {
      this.running = false
    }
  }
}
