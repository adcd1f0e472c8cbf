import type pg from 'pg'
import { quoteIdent, quoteQualifiedTable, splitTable } from '../../src/sql.js'

/**
 * Setup problems that both the worker (at start) and `outbox-worker status` report, checked and
 * worded once so the two say the same thing.
 */

/** A setup problem: its code (the worker's exit reason) and the message naming the fix. */
export interface SetupProblem {
  code:
    | 'OUTBOX_SERVER_VERSION'
    | 'OUTBOX_WAL_LEVEL'
    | 'OUTBOX_NO_REPLICATION_ROLE'
    | 'OUTBOX_NO_PUBLICATION'
    | 'OUTBOX_NO_TABLE'
    | 'OUTBOX_PUBLICATION_TABLE'
    | 'OUTBOX_SLOT_PLUGIN'
  message: string
}

/** What the server says of itself and of the role logged in (one query). */
export interface ServerFacts {
  versionNum: number
  version: string
  walLevel: string
  role: string
  /** REPLICATION, or a superuser: the role may stream. */
  canReplicate: boolean
}

export async function readServerFacts(client: pg.Client): Promise<ServerFacts> {
  const { rows } = await client.query(
    `SELECT current_setting('server_version_num')::int AS version_num, current_setting('server_version') AS version,
            current_setting('wal_level') AS wal_level, current_user AS role,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`,
  )
  const row = rows[0]
  return {
    versionNum: row.version_num,
    version: row.version,
    walLevel: row.wal_level,
    role: row.role,
    canReplicate: row.can_replicate === true,
  }
}

/** The server's and the role's problems, in the order the worker meets them at start. */
export function serverProblems(facts: ServerFacts): SetupProblem[] {
  const problems: SetupProblem[] = []
  if (facts.versionNum < 140000)
    problems.push({
      code: 'OUTBOX_SERVER_VERSION',
      message: `PostgreSQL ${facts.version} is too old: the worker needs 14 or newer`,
    })
  if (facts.walLevel !== 'logical')
    problems.push({
      code: 'OUTBOX_WAL_LEVEL',
      message: `wal_level is "${facts.walLevel}", logical replication needs "logical": run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
    })
  if (!facts.canReplicate)
    problems.push({
      code: 'OUTBOX_NO_REPLICATION_ROLE',
      message: `the database role "${facts.role}" lacks the REPLICATION attribute: run ALTER ROLE ${quoteIdent(facts.role)} WITH REPLICATION (see docs/worker.md for a least-privilege role)`,
    })
  return problems
}

/**
 * A slot under our slot's name that the stream cannot read: a logical slot of another plugin, or
 * a physical slot (which has no plugin).
 */
export function slotPluginProblem(
  slot: string,
  found: { exists: boolean; plugin: string | null },
): SetupProblem | undefined {
  if (!found.exists || found.plugin === 'pgoutput') return undefined
  const what = found.plugin === null ? 'is a physical slot' : `uses the ${found.plugin} plugin`
  return {
    code: 'OUTBOX_SLOT_PLUGIN',
    message: `replication slot "${slot}" ${what}, not pgoutput: choose another slot name with --slot (OUTBOX_SLOT)`,
  }
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

export type PublicationProblem = SetupProblem & {
  code: 'OUTBOX_NO_PUBLICATION' | 'OUTBOX_NO_TABLE' | 'OUTBOX_PUBLICATION_TABLE'
}

export async function readPublicationFacts(
  client: pg.Client,
  names: { publication: string; table: string },
): Promise<PublicationFacts> {
  const [schema, table] = splitTable(names.table)
  // Row filters and column lists (prqual, prattrs) came with PostgreSQL 15: read from the row as
  // JSON, they are simply absent on 14, so this query needs no version of its own (the server's
  // is read once, by readServerFacts).
  const filters = `to_jsonb(r) ->> 'prqual' IS NOT NULL OR to_jsonb(r) ->> 'prattrs' IS NOT NULL`
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
  const qualified = quoteQualifiedTable(names.table)
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
