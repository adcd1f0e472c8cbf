import type pg from 'pg'
import { quoteTable } from '../../src/sql.js'

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
    `DELETE FROM ${quoteTable(table)} WHERE ctid = ANY(ARRAY(` +
    `SELECT ctid FROM ${quoteTable(table)} WHERE created_at < LEAST(now() - make_interval(secs => $1), $3) LIMIT $2))`
  let total = 0
  for (;;) {
    const result = await client.query(sql, [retentionMs / 1000, batchSize, deliveredBefore])
    total += result.rowCount ?? 0
    if ((result.rowCount ?? 0) < batchSize) return total
  }
}
