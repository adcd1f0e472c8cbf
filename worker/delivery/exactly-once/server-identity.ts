import type { WorkerConfig } from '../../operations/config.js'
import { sideConnection } from '../../operations/side-connection.js'
import { type Lsn, parseLsn } from '../../stream/lsn.js'

/** Which PostgreSQL history a checkpoint belongs to, and how far that history has got. */
export interface ServerIdentity {
  /** pg_control's system identifier: new for every initdb, kept by physical copies. */
  system: string
  /** Bumped by every promotion and point-in-time recovery: the history forks there. */
  timeline: number
  /** The server's current WAL flush position: no commit of this history is beyond it. */
  walPosition: Lsn
}

/**
 * IDENTIFY_SYSTEM on a replication connection: what the worker's REPLICATION role may always do
 * (pg_control_system() needs more). A connection of its own, closed at once.
 */
export async function identifyServer(config: WorkerConfig): Promise<ServerIdentity & { database: string }> {
  // Bounded like every other connection of the worker: a network that drops the answer must end
  // in an error (and a new session), never in a delivery that waits forever.
  const client = sideConnection(config.databaseUrl, { replication: true })
  try {
    await client.connect()
    const { rows } = await client.query<{
      systemid: string
      timeline: number | string
      xlogpos: string
      dbname: string
    }>('IDENTIFY_SYSTEM')
    const row = rows[0]
    if (!row) throw new Error('IDENTIFY_SYSTEM returned no row')
    return {
      system: String(row.systemid),
      timeline: Number(row.timeline),
      walPosition: parseLsn(row.xlogpos),
      // The database this connection (and so the slot) belongs to, however DATABASE_URL named it.
      database: String(row.dbname),
    }
  } catch (error) {
    throw new PostgresIdentityError(error)
  } finally {
    await client.end().catch(() => {})
  }
}

/** IDENTIFY_SYSTEM failed: a PostgreSQL problem, not a Kafka one (logged and counted as such). */
export class PostgresIdentityError extends Error {
  constructor(cause: unknown) {
    super(
      `PostgreSQL: IDENTIFY_SYSTEM on a replication connection failed (exactly-once opens one briefly at each session start: max_wal_senders must leave room for it): ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    )
    this.name = 'PostgresIdentityError'
  }
}
