import type pg from 'pg'
import { quoteIdent } from '../../src/sql.js'

/**
 * Setup problems that both the worker (at start) and `outbox-worker status` report, worded once
 * so the two say the same thing.
 */

export function noReplicationProblem(role: string): string {
  return `the database role "${role}" lacks the REPLICATION attribute: run ALTER ROLE ${quoteIdent(role)} WITH REPLICATION (see the README for a least-privilege role)`
}

/** `--table orders` for a table that is not there: say so, rather than suggest publishing it. */
export function missingTableProblem(schema: string, table: string): string {
  return `table ${schema}.${table} does not exist: check OUTBOX_TABLE (--table), or apply the outbox migration (npx outbox-worker init, then npx prisma migrate deploy)`
}

export async function tableExists(client: pg.Client, schema: string, table: string): Promise<boolean> {
  const { rows } = await client.query('SELECT to_regclass($1) IS NOT NULL AS exists', [
    `${quoteIdent(schema)}.${quoteIdent(table)}`,
  ])
  return rows[0]?.exists === true
}

/** Whether the connected role may stream (REPLICATION, or a superuser), and its name. */
export async function replicationRole(client: pg.Client): Promise<{ role: string; canReplicate: boolean }> {
  const { rows } = await client.query(
    'SELECT current_user AS role, rolreplication OR rolsuper AS can_replicate FROM pg_roles WHERE rolname = current_user',
  )
  return { role: rows[0]?.role, canReplicate: rows[0]?.can_replicate === true }
}
