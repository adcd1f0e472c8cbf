import type pg from 'pg'
import { quoteIdent } from '../../src/sql.js'

/**
 * Setup problems that both the worker (at start) and `outbox-worker status` report, worded once
 * so the two say the same thing.
 */

export function noReplicationProblem(role: string): string {
  return `the database role "${role}" lacks the REPLICATION attribute: run ALTER ROLE ${quoteIdent(role)} WITH REPLICATION (see docs/worker.md for a least-privilege role)`
}

/** `--table orders` for a table that is not there: say so, rather than suggest publishing it. */
export function missingTableProblem(schema: string, table: string): string {
  return `table ${schema}.${table} does not exist (not created yet, or dropped, renamed or moved): check OUTBOX_TABLE (--table), or apply the outbox migration (npx outbox-worker init, then npx prisma migrate deploy)`
}

/** What the catalog says of the outbox table and the publication (one query, one moment). */
export interface PublicationFacts {
  tableOid: string | null
  publicationExists: boolean
  publishesInserts: boolean
  allTables: boolean
  /** The oid of the table's membership in the publication; null when not a member (or FOR ALL TABLES). */
  membershipOid: string | null
  /** A row filter or column list (PostgreSQL 15+) would hide rows or columns from the stream. */
  filtered: boolean
  /**
   * A partitioned table whose publication sends each row under its partition's name (without
   * publish_via_partition_root): the worker, which reads the table's name, would pass them by.
   */
  partitionsByOwnName: boolean
}

export interface PublicationProblem {
  code: 'OUTBOX_NO_PUBLICATION' | 'OUTBOX_NO_TABLE' | 'OUTBOX_PUBLICATION_TABLE'
  message: string
}

export async function readPublicationFacts(
  client: pg.Client,
  names: { publication: string; table: string },
): Promise<PublicationFacts> {
  const [schema, table] = splitTable(names.table)
  const version = Number((await client.query('SHOW server_version_num')).rows[0].server_version_num)
  const filters = version >= 150000 ? 'r.prqual IS NOT NULL OR r.prattrs IS NOT NULL' : 'false'
  const { rows } = await client.query(
    `SELECT c.oid::text AS table_oid, p.oid IS NOT NULL AS publication_exists, p.pubinsert AS publishes_inserts,
            p.puballtables AS all_tables, r.oid::text AS membership_oid, COALESCE(${filters}, false) AS filtered,
            COALESCE(c.relkind = 'p' AND NOT p.pubviaroot, false) AS partitions_by_own_name
       FROM (SELECT 1) AS one
       LEFT JOIN pg_namespace n ON n.nspname = $2
       LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = $3 AND c.relkind IN ('r', 'p')
       LEFT JOIN pg_publication p ON p.pubname = $1
       LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid AND r.prrelid = c.oid`,
    [names.publication, schema, table],
  )
  const row = rows[0]
  return {
    tableOid: row.table_oid,
    publicationExists: row.publication_exists,
    publishesInserts: row.publishes_inserts === true,
    allTables: row.all_tables === true,
    membershipOid: row.membership_oid,
    filtered: row.filtered === true,
    partitionsByOwnName: row.partitions_by_own_name === true,
  }
}

/**
 * Whether inserts into the outbox table reach the stream, and if not, what is wrong and the fix:
 * the one rule the worker checks at start, its watch checks while streaming, and `status` reports.
 */
export function publicationProblem(
  facts: PublicationFacts,
  names: { publication: string; table: string },
): PublicationProblem | undefined {
  const [schema, table] = splitTable(names.table)
  const pub = quoteIdent(names.publication)
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`
  if (!facts.publicationExists)
    return {
      code: 'OUTBOX_NO_PUBLICATION',
      message: `publication "${names.publication}" does not exist: apply the outbox migration (npx outbox-worker init, then npx prisma migrate deploy), or CREATE PUBLICATION ${pub} FOR TABLE ${qualified} WITH (publish = 'insert'), or set OUTBOX_PUBLICATION`,
    }
  if (facts.tableOid === null) return { code: 'OUTBOX_NO_TABLE', message: missingTableProblem(schema, table) }
  if (!facts.publishesInserts)
    return {
      code: 'OUTBOX_PUBLICATION_TABLE',
      message: `publication "${names.publication}" does not publish inserts: ALTER PUBLICATION ${pub} SET (publish = 'insert')`,
    }
  if (!facts.allTables && facts.membershipOid === null)
    return {
      code: 'OUTBOX_PUBLICATION_TABLE',
      message: `the outbox table ${schema}.${table} is not in publication "${names.publication}" (never added, or re-created or dropped from it): ALTER PUBLICATION ${pub} ADD TABLE ${qualified}, or check OUTBOX_TABLE`,
    }
  if (facts.partitionsByOwnName)
    return {
      code: 'OUTBOX_PUBLICATION_TABLE',
      message: `the outbox table ${schema}.${table} is partitioned, and publication "${names.publication}" sends its rows under their partitions' names, which the worker does not read: ALTER PUBLICATION ${pub} SET (publish_via_partition_root = true)`,
    }
  if (facts.filtered)
    return {
      code: 'OUTBOX_PUBLICATION_TABLE',
      message: `publication "${names.publication}" filters the outbox table's rows or columns: ALTER PUBLICATION ${pub} SET TABLE ${qualified}`,
    }
  return undefined
}

export function splitTable(table: string): [schema: string, table: string] {
  const parts = table.split('.')
  return parts.length === 2 ? [parts[0] as string, parts[1] as string] : ['public', parts[0] as string]
}

/** Whether the connected role may stream (REPLICATION, or a superuser), and its name. */
export async function replicationRole(client: pg.Client): Promise<{ role: string; canReplicate: boolean }> {
  const { rows } = await client.query(
    'SELECT current_user AS role, rolreplication OR rolsuper AS can_replicate FROM pg_roles WHERE rolname = current_user',
  )
  return { role: rows[0]?.role, canReplicate: rows[0]?.can_replicate === true }
}
