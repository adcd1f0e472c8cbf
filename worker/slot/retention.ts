import type pg from 'pg'
import { quoteQualifiedTable } from '../../src/sql.js'
import type { WorkerConfig } from '../operations/config.js'
import { errorFields, type Logger } from '../operations/logger.js'
import { sideConnection } from '../operations/side-connection.js'

/**
 * Longer than a catalog query's bound: each batch's DELETE finds its rows by created_at, which
 * has no index, so on a large table it scans; a slow batch is tried again at the next run.
 */
const RETENTION_QUERY_TIMEOUT_MS = 60_000

/**
 * When retention runs: when more events are known delivered (that is when what may be deleted
 * grows: deliveries, and keepalives while idle), and on a timer (with no new commits, rows
 * delivered earlier still come of age); at most every tenth of the period, between 1 s and a
 * minute. Only rows the slot has delivered may go (republish needs the others): known only to the
 * worker that streams, so a standby deletes nothing.
 */
export class RetentionSchedule {
  private due = 0
  private running = false
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly config: Pick<WorkerConfig, 'databaseUrl' | 'table' | 'retentionMs'>,
    private readonly logger: Logger,
    /** Commit time up to which every event is delivered (ms since the epoch); 0 when unknown. */
    private readonly deliveredBefore: () => number,
  ) {}

  private get everyMs(): number {
    return Math.min(60_000, Math.max(1000, this.config.retentionMs / 10))
  }

  start(): void {
    if (this.config.retentionMs <= 0) return
    this.timer = setInterval(() => this.whenDue(), this.everyMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Called as deliveries are confirmed: runs if the last run is old enough and none is running. */
  whenDue(): void {
    if (this.config.retentionMs <= 0 || this.running || Date.now() < this.due) return
    this.due = Date.now() + this.everyMs
    this.running = true
    void this.run().finally(() => {
      this.running = false
    })
  }

  private async run(): Promise<void> {
    const deliveredBefore = this.deliveredBefore()
    if (deliveredBefore <= 0) return
    const client = sideConnection(this.config.databaseUrl, { queryTimeoutMs: RETENTION_QUERY_TIMEOUT_MS })
    try {
      await client.connect()
      const deleted = await deleteExpiredRows(
        client,
        this.config.table,
        this.config.retentionMs,
        new Date(deliveredBefore),
      )
      if (deleted > 0) this.logger.info({ deleted }, 'retention: deleted old outbox rows')
    } catch (error) {
      this.logger.warn(errorFields(error), 'retention: delete failed; will try again')
    } finally {
      await client.end().catch(() => {})
    }
  }
}

/**
 * Deletes outbox rows older than the retention period *and* older than `deliveredBefore` (the
 * commit time up to which the slot has confirmed every event), in small batches so no statement
 * holds many row locks or produces a burst of WAL. The worker reads the WAL, not the table, so
 * deleting rows never affects streaming; but rows not yet delivered are what `republish` recovers
 * from after a lost slot or a table that left the publication, so they are kept whatever their
 * age. (`created_at` is the inserting transaction's start, never after its commit.) Returns the
 * number deleted.
 */
export async function deleteExpiredRows(
  client: pg.Client,
  table: string,
  retentionMs: number,
  deliveredBefore: Date,
  batchSize = 1000,
): Promise<number> {
  const sql =
    `DELETE FROM ${quoteQualifiedTable(table)} WHERE ctid = ANY(ARRAY(` +
    `SELECT ctid FROM ${quoteQualifiedTable(table)} WHERE created_at < LEAST(now() - make_interval(secs => $1), $3) LIMIT $2))`
  let total = 0
  for (;;) {
    const result = await client.query(sql, [retentionMs / 1000, batchSize, deliveredBefore])
    total += result.rowCount ?? 0
    if ((result.rowCount ?? 0) < batchSize) return total
  }
}
