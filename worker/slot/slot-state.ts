import type pg from 'pg'
import { OutboxSetupError } from '../operations/errors.js'
import { type Lsn, parseLsn } from '../stream/lsn.js'

/**
 * What the worker's replication slot looks like from this database, beyond "it exists": slots
 * belong to the whole cluster (two databases with the default name share one), and a slot can be
 * invalidated (PostgreSQL removed WAL it still needed) while it still shows in the catalog.
 */
export type SlotState =
  | { kind: 'missing' }
  | { kind: 'ok'; active: boolean }
  | { kind: 'other-database'; database: string; ours: string; active: boolean }
  | { kind: 'invalidated'; reason: string }

/** The slot's row: its state, and what preparation and `status` read of it. */
export interface SlotInfo {
  state: SlotState
  /** A slot of this name exists in the cluster, whatever its database or state. */
  exists: boolean
  active: boolean
  activePid: number | null
  plugin: string | null
  confirmedFlushLsn: Lsn | null
  /** Bytes of WAL between the slot's confirmed position and the server's current position. */
  lagBytes: number | null
  walStatus: string | null
}

/**
 * The one read of the slot's row. The columns vary by version: `wal_status` (13+), `conflicting`
 * (16+: a logical slot on a standby invalidated by a recovery conflict), `invalidation_reason`
 * (17+: wal_removed, rows_removed, wal_level_insufficient; 18 adds idle_timeout). The row is read
 * as JSON so the one query works on each, the columns a version lacks simply absent.
 */
export async function readSlot(client: pg.Client, slot: string): Promise<SlotInfo> {
  const { rows } = await client.query(
    `SELECT current_database() AS ours,
            (SELECT to_jsonb(s) || jsonb_build_object('lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn))
               FROM pg_replication_slots s WHERE s.slot_name = $1) AS slot`,
    [slot],
  )
  const ours: string = rows[0].ours
  const s = rows[0].slot as Record<string, unknown> | null
  if (!s)
    return {
      state: { kind: 'missing' },
      exists: false,
      active: false,
      activePid: null,
      plugin: null,
      confirmedFlushLsn: null,
      lagBytes: null,
      walStatus: null,
    }
  return {
    state: slotState(s, ours),
    exists: true,
    active: s.active === true,
    activePid: typeof s.active_pid === 'number' ? s.active_pid : null,
    plugin: typeof s.plugin === 'string' ? s.plugin : null,
    confirmedFlushLsn: typeof s.confirmed_flush_lsn === 'string' ? parseLsn(s.confirmed_flush_lsn) : null,
    lagBytes: s.lag_bytes === null || s.lag_bytes === undefined ? null : Number(s.lag_bytes),
    walStatus: typeof s.wal_status === 'string' ? s.wal_status : null,
  }
}

function slotState(s: Record<string, unknown>, ours: string): SlotState {
  const active = s.active === true
  if (s.database !== ours) return { kind: 'other-database', database: String(s.database), ours, active }
  const reason = invalidationReason(s)
  if (reason) return { kind: 'invalidated', reason }
  return { kind: 'ok', active }
}

function invalidationReason(s: Record<string, unknown>): string | undefined {
  if (typeof s.invalidation_reason === 'string') return describeReason(s.invalidation_reason)
  if (s.wal_status === 'lost') return describeReason('wal_removed')
  if (s.conflicting === true) return 'a recovery conflict on this standby (rows_removed or wal_level_insufficient)'
  return undefined
}

function describeReason(reason: string): string {
  switch (reason) {
    case 'wal_removed':
      return 'wal_removed: PostgreSQL removed WAL the slot still needed, as max_slot_wal_keep_size allows'
    case 'idle_timeout':
      return 'idle_timeout: the slot was inactive longer than idle_replication_slot_timeout'
    default:
      return reason
  }
}

/**
 * Drops the slot only if it is still invalidated, in one statement: another worker of this
 * database may have re-created it meanwhile, and its new slot must not be dropped.
 */
export async function dropInvalidatedSlot(client: pg.Client, slot: string): Promise<void> {
  await client.query(
    `SELECT pg_drop_replication_slot(s.slot_name)
       FROM pg_replication_slots s
      WHERE s.slot_name = $1 AND NOT s.active
        AND (s.wal_status = 'lost' OR to_jsonb(s)->>'invalidation_reason' IS NOT NULL
             OR coalesce((to_jsonb(s)->>'conflicting')::boolean, false))`,
    [slot],
  )
}

export type SlotAction = 'use' | 'create' | 'recreate' | 'later'

/**
 * What to do with the slot, or the error that stops the worker (exit 3). `known`: this process
 * saw the slot before (found or created it), so a missing slot now was lost, not never made.
 * `mayCreate` is false for the first check at start, before Kafka is known to answer.
 */
export function slotAction(
  state: SlotState,
  options: { slot: string; known: boolean; mayCreate: boolean; onSlotLost: 'recreate' | 'stop' },
): SlotAction {
  const { slot } = options
  switch (state.kind) {
    case 'ok':
      return 'use'
    case 'other-database':
      throw new OutboxSetupError(otherDatabaseProblem(slot, state), { code: 'OUTBOX_SLOT_OTHER_DATABASE' })
    case 'invalidated':
      if (options.onSlotLost === 'recreate') return options.mayCreate ? 'recreate' : 'later'
      throw new OutboxSetupError(invalidatedProblem(slot, state.reason), { code: 'OUTBOX_SLOT_LOST' })
    case 'missing':
      if (!options.mayCreate) return 'later'
      if (!options.known) return 'create'
      if (options.onSlotLost === 'recreate') return 'recreate'
      throw new OutboxSetupError(missingProblem(slot), { code: 'OUTBOX_SLOT_LOST' })
  }
}

const FIX_SLOT_NAME = 'give each database its own slot with --slot (OUTBOX_SLOT), e.g. --slot'

export function otherDatabaseProblem(slot: string, state: { database: string; ours: string; active: boolean }): string {
  const whose = state.active
    ? `is in use by a worker of database "${state.database}"`
    : `belongs to database "${state.database}"`
  return `replication slot "${slot}" ${whose}, not "${state.ours}" (slots are shared by the whole PostgreSQL cluster): ${FIX_SLOT_NAME} ${slot}_${state.ours.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`
}

const RECOVER =
  'run the worker with --on-slot-lost recreate (OUTBOX_ON_SLOT_LOST=recreate): it re-creates the slot and publishes the rows still in the outbox table again (see docs/operations.md, "Slot states")'

export function invalidatedProblem(slot: string, reason: string): string {
  return `replication slot "${slot}" was invalidated (${reason}): events committed since its confirmed position can no longer be streamed; ${RECOVER}`
}

export function missingProblem(slot: string): string {
  return `replication slot "${slot}" was dropped while this worker used it (by hand, or this server is a new primary after a failover): events committed since then are not streamed; ${RECOVER}`
}
