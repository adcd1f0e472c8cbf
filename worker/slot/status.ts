import type { WorkerConfig } from '../operations/config.js'
import { sideConnection } from '../operations/side-connection.js'
import { formatLsn } from '../stream/lsn.js'
import {
  publicationProblem,
  readPublicationFacts,
  readServerFacts,
  serverProblems,
  slotPluginProblem,
} from './checks.js'
import { invalidatedProblem, otherDatabaseProblem, readSlot } from './slot-state.js'

export interface StatusReport {
  healthy: boolean
  problems: string[]
  serverVersion: string
  walLevel: string
  currentLsn: string
  /** The role DATABASE_URL logs in as, and whether it may stream (REPLICATION or superuser). */
  role: { name: string; replication: boolean }
  publication: { name: string; exists: boolean; tables: string[] }
  slot: {
    name: string
    exists: boolean
    active: boolean
    activePid: number | null
    confirmedLsn: string | null
    lagBytes: number | null
    walStatus: string | null
  }
  /** Other pgoutput slots of this database that no connection uses: each pins WAL until dropped. */
  unusedSlots: string[]
}

/** `outbox-worker status`: what an operator checks first. `healthy` is false when the setup cannot deliver. */
export async function readStatus(
  config: Pick<WorkerConfig, 'databaseUrl' | 'slot' | 'publication' | 'table'>,
): Promise<StatusReport> {
  const client = sideConnection(config.databaseUrl)
  await client.connect()
  try {
    const server = await readServerFacts(client)
    const facts = await readPublicationFacts(client, config)
    // The publication's tables, for the operator to read; the check below is the worker's own.
    const pub = await client.query(
      `SELECT array_remove(array_agg(t.schemaname || '.' || t.tablename), NULL) AS tables
         FROM pg_publication_tables t WHERE t.pubname = $1`,
      [config.publication],
    )
    const slot = await readSlot(client, config.slot)
    const lsn = (await client.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn as string
    const tables: string[] = pub.rows[0]?.tables ?? []
    const problems: string[] = [
      ...serverProblems(server),
      publicationProblem(facts, config),
      slotPluginProblem(config.slot, slot),
    ].flatMap((problem) => (problem ? [problem.message] : []))
    const { state } = slot
    const unused = await client.query(
      `SELECT slot_name FROM pg_replication_slots
        WHERE plugin = 'pgoutput' AND NOT active AND database = current_database() AND slot_name <> $1 ORDER BY slot_name`,
      [config.slot],
    )
    if (state.kind === 'missing')
      problems.push(
        `slot ${config.slot} does not exist: events committed now are not streamed; start the worker to create it (if it existed before, see docs/operations.md, "Slot states")`,
      )
    if (state.kind === 'other-database') problems.push(otherDatabaseProblem(config.slot, state))
    if (state.kind === 'invalidated') problems.push(invalidatedProblem(config.slot, state.reason))
    return {
      healthy: problems.length === 0,
      problems,
      serverVersion: server.version,
      walLevel: server.walLevel,
      currentLsn: lsn,
      role: { name: server.role, replication: server.canReplicate },
      publication: { name: config.publication, exists: facts.publicationExists, tables },
      slot: {
        name: config.slot,
        exists: slot.exists,
        active: slot.active,
        activePid: slot.activePid,
        confirmedLsn: slot.confirmedFlushLsn === null ? null : formatLsn(slot.confirmedFlushLsn),
        lagBytes: slot.lagBytes,
        walStatus: slot.walStatus,
      },
      unusedSlots: unused.rows.map((r) => r.slot_name as string),
    }
  } finally {
    await client.end().catch(() => {})
  }
}

export function formatStatus(report: StatusReport): string {
  const s = report.slot
  const lines = [
    `PostgreSQL   ${report.serverVersion}, wal_level=${report.walLevel}, current LSN ${report.currentLsn}`,
    `role         ${report.role.name}: ${report.role.replication ? 'may stream (REPLICATION)' : 'lacks REPLICATION'}`,
    `publication  ${report.publication.name}: ${report.publication.exists ? report.publication.tables.join(', ') || '(no tables)' : 'missing'}`,
    s.exists
      ? `slot         ${s.name}: ${s.active ? `active (pid ${s.activePid})` : 'inactive (no worker streaming)'}, confirmed ${s.confirmedLsn}, lag ${s.lagBytes ?? '?'} bytes, wal_status ${s.walStatus}`
      : `slot         ${s.name}: missing`,
    ...report.unusedSlots.map(
      (name) =>
        `unused slot  ${name}: inactive pgoutput slot, it pins WAL; if no worker uses it, SELECT pg_drop_replication_slot('${name}')`,
    ),
    report.healthy ? 'status       ok' : `status       BROKEN\n${report.problems.map((p) => `  - ${p}`).join('\n')}`,
  ]
  return `${lines.join('\n')}\n`
}
