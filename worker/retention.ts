import type pg from 'pg'
import { quoteTable } from '../src/sql.js'

/**
 * Deletes outbox rows older than the retention period, in small batches so no statement holds
 * many row locks or produces a burst of WAL. The worker reads the WAL, not the table, so deleting
 * rows never affects delivery (and deletes are not published). Returns the number deleted.
 */
export async function deleteExpiredRows(
  client: pg.Client,
  table: string,
  retentionMs: number,
  batchSize = 1000,
): Promise<number> {
  const sql =
    `DELETE FROM ${quoteTable(table)} WHERE ctid = ANY(ARRAY(` +
    `SELECT ctid FROM ${quoteTable(table)} WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))`
  let total = 0
  for (;;) {
    const result = await client.query(sql, [retentionMs / 1000, batchSize])
    total += result.rowCount ?? 0
    if ((result.rowCount ?? 0) < batchSize) return total
  }
}
