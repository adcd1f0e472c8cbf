import { OutboxSetupError } from '../../operations/errors.js'
import { formatLsn, type Lsn } from '../../stream/lsn.js'
import type { Checkpoint } from './checkpoint.js'
import type { ServerIdentity } from './server-identity.js'

/** What a session may skip by: the checkpoint's LSN, or nothing (with the reason to log). */
export type CheckpointUse = { skipUpTo: Lsn } | { skipUpTo: undefined; ignored?: string }

/**
 * Whether the checkpoint read at the start describes this database's history. Skipping by a
 * checkpoint of another history would confirm the slot past events Kafka never had: silent loss.
 *
 * - Another system identifier or slot: the transactional id is shared with another database or
 *   slot (or the database was re-created). Nothing here can tell what Kafka has: stop (exit 3).
 * - Ahead of the server's WAL: a restored backup or a promoted standby that lacks WAL the worker
 *   already delivered. Stop likewise: the transactions now at those LSNs are other ones.
 * - Another timeline, within the WAL: a promotion or recovery forked the history somewhere; what
 *   is on both sides of the fork cannot be told from an LSN. Not used: this replay is at-least-once.
 */
export function checkCheckpoint(
  checkpoint: Checkpoint | undefined,
  identity: ServerIdentity,
  context: { slot: string; topic: string; transactionalId: string },
): CheckpointUse {
  if (checkpoint === undefined) return { skipUpTo: undefined }
  const fix = `give this worker a new --transactional-id (its checkpoint starts empty: what this slot replays next is published again), or remove the key "${context.transactionalId}" from the checkpoint topic "${context.topic}" (produce a record with that key and a null value)`
  const stop = (problem: string) =>
    new OutboxSetupError(`the exactly-once checkpoint cannot be this worker's: ${problem}; ${fix}`, {
      code: 'OUTBOX_CHECKPOINT_MISMATCH',
    })
  if (checkpoint.slot !== undefined && checkpoint.slot !== context.slot)
    throw stop(`it was written for the slot "${checkpoint.slot}", this worker streams the slot "${context.slot}"`)
  if (checkpoint.system !== undefined && checkpoint.system !== identity.system)
    throw stop(
      `it was written for the PostgreSQL system ${checkpoint.system}, this database is system ${identity.system} (another database, or one created anew, uses the same transactional id)`,
    )
  if (checkpoint.lsn > identity.walPosition)
    throw stop(
      `it is at ${formatLsn(checkpoint.lsn)}, ahead of this server's WAL (${formatLsn(identity.walPosition)}): was the database restored from a backup, or a standby promoted that lacks WAL already delivered?`,
    )
  if (checkpoint.system === undefined || checkpoint.timeline !== identity.timeline)
    return {
      skipUpTo: undefined,
      ignored:
        checkpoint.system === undefined
          ? 'the checkpoint does not say which PostgreSQL system it belongs to (written by an older version)'
          : `the checkpoint was written on timeline ${checkpoint.timeline}, the server is on timeline ${identity.timeline} (a promotion or point-in-time recovery since)`,
    }
  return { skipUpTo: checkpoint.lsn }
}
