import type pg from 'pg'
import { OutboxSetupError } from '../operations/errors.js'
import { type Lsn, parseLsn } from '../stream/lsn.js'
import { noReplicationProblem, publicationProblem, readPublicationFacts } from './checks.js'

/** SQLSTATEs the worker branches on (never on message text). */
export const SQLSTATE = {
  duplicateObject: '42710',
  insufficientPrivilege: '42501',
  objectInUse: '55006',
  undefinedObject: '42704',
  configurationLimitExceeded: '53400',
} as const

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

export interface SlotInfo {
  exists: boolean
  active: boolean
  activePid: number | null
  plugin: string | null
  confirmedFlushLsn: Lsn | null
  /** Bytes of WAL between the slot's confirmed position and the server's current position. */
  lagBytes: number | null
  walStatus: string | null
}

export async function slotInfo(client: pg.Client, slot: string): Promise<SlotInfo> {
  const { rows } = await client.query(
    `SELECT active, active_pid, plugin, confirmed_flush_lsn::text AS confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS lag, wal_status
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  )
  const row = rows[0]
  if (!row)
    return {
      exists: false,
      active: false,
      activePid: null,
      plugin: null,
      confirmedFlushLsn: null,
      lagBytes: null,
      walStatus: null,
    }
  return {
    exists: true,
    active: row.active,
    activePid: row.active_pid,
    plugin: row.plugin,
    confirmedFlushLsn: row.confirmed ? parseLsn(row.confirmed) : null,
    lagBytes: row.lag === null ? null : Number(row.lag),
    walStatus: row.wal_status,
  }
}

/**
 * Everything the stream needs from the server, checked before streaming so each problem gets
 * its own message and fix instead of a replication error: version, wal_level, the REPLICATION
 * attribute, the publication and its table, the slot's plugin. The slot's state is slot-state.ts's.
 */
export async function prepareDatabase(
  client: pg.Client,
  options: { slot: string; publication: string; table: string },
): Promise<void> {
  const { rows } = await client.query(
    `SELECT current_setting('server_version_num')::int AS version, current_setting('server_version') AS version_text,
            current_setting('wal_level') AS wal_level,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
            current_user AS role`,
  )
  const server = rows[0]
  if (server.version < 140000) {
    throw new OutboxSetupError(`PostgreSQL ${server.version_text} is too old: the worker needs 14 or newer`, {
      code: 'OUTBOX_SERVER_VERSION',
    })
  }
  if (server.wal_level !== 'logical') {
    throw new OutboxSetupError(
      `wal_level is "${server.wal_level}", logical replication needs "logical": run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
      { code: 'OUTBOX_WAL_LEVEL' },
    )
  }
  if (!server.can_replicate) {
    throw new OutboxSetupError(noReplicationProblem(server.role), { code: 'OUTBOX_NO_REPLICATION_ROLE' })
  }
  const problem = publicationProblem(await readPublicationFacts(client, options), options)
  if (problem) throw new OutboxSetupError(problem.message, { code: problem.code })
  const slot = await slotInfo(client, options.slot)
  if (slot.exists && slot.plugin !== 'pgoutput') {
    throw new OutboxSetupError(
      `replication slot "${options.slot}" uses the ${slot.plugin} plugin, not pgoutput: choose another slot name with --slot (OUTBOX_SLOT)`,
      { code: 'OUTBOX_SLOT_PLUGIN' },
    )
  }
}

/** Drops the slot; fine when another worker dropped it first. */
export async function dropSlot(client: pg.Client, slot: string): Promise<void> {
  try {
    await client.query('SELECT pg_drop_replication_slot($1)', [slot])
  } catch (error) {
    if (sqlState(error) !== SQLSTATE.undefinedObject) throw error
  }
}
