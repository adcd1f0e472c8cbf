import type pg from 'pg'
import { OutboxSetupError, SQLSTATE, sqlState } from '../operations/errors.js'
import { type Lsn, parseLsn } from '../stream/lsn.js'
import {
  publicationProblem,
  readPublicationFacts,
  readServerFacts,
  serverProblems,
  slotPluginProblem,
} from './checks.js'

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
  const problem =
    serverProblems(await readServerFacts(client))[0] ??
    publicationProblem(await readPublicationFacts(client, options), options) ??
    slotPluginProblem(options.slot, await slotInfo(client, options.slot))
  if (problem) throw new OutboxSetupError(problem.message, { code: problem.code })
}

/** Drops the slot; fine when another worker dropped it first. */
export async function dropSlot(client: pg.Client, slot: string): Promise<void> {
  try {
    await client.query('SELECT pg_drop_replication_slot($1)', [slot])
  } catch (error) {
    if (sqlState(error) !== SQLSTATE.undefinedObject) throw error
  }
}
