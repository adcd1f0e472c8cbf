import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { publishRows } from '../delivery/publish-rows.js'
import type { Publisher } from '../delivery/publisher.js'
import type { WorkerConfig } from '../operations/config.js'
import { OutboxSetupError } from '../operations/errors.js'
import type { Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { SQLSTATE, sqlState } from './setup.js'
import { readSlotState } from './slot-state.js'

export interface SlotCreation {
  config: WorkerConfig
  createPublisher: () => Publisher
  metrics: Metrics
  logger: Logger
  signal: AbortSignal
}

/**
 * `created`: this worker made the slot (and published its snapshot). `exists`: another worker
 * made it first. `busy`: another worker is making it now (its snapshot under way): stand by.
 */
export type SlotCreationOutcome = 'created' | 'exists' | 'busy'

/**
 * Creates the slot; with --snapshot initial, first publishes the rows already in the table as of
 * the slot's consistent point, so streaming from the slot continues exactly where the snapshot
 * ends: no gap, no overlap.
 *
 * The slot must not exist under its real name before its snapshot is in Kafka: a slot that exists
 * is streamed, by this worker after a crash or by another replica at once, and either skips the
 * rest of the snapshot (lost) or overtakes it (reordered). So the snapshot is taken from a
 * TEMPORARY slot, which PostgreSQL holds for this worker's connection and drops when it closes,
 * however the process ends (kill -9, out of memory). Only once Kafka has acknowledged every
 * snapshot row is the temporary slot copied to the real name: same consistent point, permanent.
 * An interrupted snapshot leaves nothing behind, and the next start redoes it from the beginning.
 *
 * One worker at a time makes the slot: a session advisory lock on the slot's name, held until the
 * copy exists. Another worker that finds it taken stands by (`busy`); the lock goes with the
 * connection too, so a killed worker's is released with its temporary slot.
 */
export async function createSlot(creation: SlotCreation): Promise<SlotCreationOutcome> {
  const { config, logger } = creation
  if (config.snapshot !== 'initial') {
    const replication = await replicationClient(config)
    try {
      const made = await createReplicationSlot(replication, config, { name: config.slot, temporary: false })
      if (!made) return 'exists'
      logger.info({ slot: config.slot }, 'created replication slot')
      return 'created'
    } finally {
      await replication.end().catch(() => {})
    }
  }
  if (creation.signal.aborted) throw new Error('stopped before the initial snapshot')
  const control = new pg.Client({ connectionString: config.databaseUrl, keepAlive: true })
  control.on('error', () => {})
  await control.connect()
  let replication: pg.Client | undefined
  // A stop must not wait for a query that waits on a lock or on Kafka: closing the connections
  // ends it, and with them the lock and the temporary slot.
  const closeAll = () => {
    void control.end().catch(() => {})
    void replication?.end().catch(() => {})
  }
  creation.signal.addEventListener('abort', closeAll, { once: true })
  try {
    const { rows } = await control.query(
      `SELECT pg_try_advisory_lock(hashtextextended('prisma-outbox slot ' || $1, 0)) AS locked`,
      [config.slot],
    )
    if (rows[0]?.locked !== true) return 'busy'
    // Made while this worker waited for the lock, or by a worker without a snapshot.
    if ((await readSlotState(control, config.slot)).kind !== 'missing') return 'exists'
    replication = await replicationClient(config)
    const temporary = `${config.slot.slice(0, 40)}_snapshot_${randomBytes(4).toString('hex')}`
    const made = await createReplicationSlot(replication, config, { name: temporary, temporary: true })
    if (!made?.snapshotName) throw new Error(`PostgreSQL exported no snapshot for the temporary slot ${temporary}`)
    await publishSnapshot(control, made.snapshotName, creation)
    try {
      await control.query('SELECT pg_copy_logical_replication_slot($1, $2, false)', [temporary, config.slot])
    } catch (error) {
      // Only a worker that takes no lock (an older version, --snapshot never) can get here first.
      if (sqlState(error) !== SQLSTATE.duplicateObject) throw error
      logger.warn({ slot: config.slot }, 'another worker created the slot while this one published the snapshot')
      return 'exists'
    }
    // A temporary slot cannot be a failover slot, so the permanent copy is made one.
    if (config.failoverSlot) await replication.query(`ALTER_REPLICATION_SLOT ${config.slot} (FAILOVER true)`)
    logger.info({ slot: config.slot }, 'created replication slot')
    return 'created'
  } catch (error) {
    if (replication) {
      logger.warn(
        { slot: config.slot },
        'initial snapshot did not complete: no slot was made, so the next start redoes the snapshot',
      )
    }
    if (sqlState(error) === SQLSTATE.configurationLimitExceeded) {
      throw new OutboxSetupError(
        `PostgreSQL has no free replication slot for the initial snapshot (${(error as Error).message}): it needs one temporary slot while it runs, besides the worker's own; raise max_replication_slots (a restart) or drop slots no one uses (outbox-worker status lists them)`,
        { code: 'OUTBOX_NO_FREE_SLOT', cause: error },
      )
    }
    if (sqlState(error) === SQLSTATE.insufficientPrivilege) {
      throw new OutboxSetupError(
        `the database role may not read the outbox table ${config.table} for the initial snapshot (${(error as Error).message}): GRANT SELECT ON ${config.table} TO the worker's role, or start with --snapshot never (OUTBOX_SNAPSHOT=never)`,
        { code: 'OUTBOX_SNAPSHOT_PRIVILEGE', cause: error },
      )
    }
    throw error
  } finally {
    creation.signal.removeEventListener('abort', closeAll)
    closeAll() // drops the temporary slot and releases the lock
  }
}

/** Publishes the rows the exported snapshot sees, in commit order (publish-rows.ts), acknowledged. */
async function publishSnapshot(reader: pg.Client, snapshotName: string, creation: SlotCreation): Promise<void> {
  const { config, logger } = creation
  await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  await reader.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`)
  logger.info({ slot: config.slot }, 'initial snapshot: publishing the rows already in the outbox table')
  const published = await publishRows(reader, {
    config,
    publisher: creation.createPublisher(),
    metrics: creation.metrics,
    logger,
    signal: creation.signal,
    order: 'commit',
    progress: 'initial snapshot: rows published so far',
  })
  await reader.query('COMMIT')
  logger.info(
    { slot: config.slot, published },
    `initial snapshot: published ${published} rows already in the table; streaming continues from the slot`,
  )
}

async function replicationClient(config: WorkerConfig): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: config.databaseUrl,
    replication: 'database',
    keepAlive: true,
  } as pg.ClientConfig)
  client.on('error', () => {})
  await client.connect()
  return client
}

/**
 * CREATE_REPLICATION_SLOT through the replication protocol. A temporary slot exports a snapshot
 * that sees exactly the transactions committed before the slot's consistent point: what the slot
 * will never stream. It lives until this connection runs another command or closes (the reader
 * imports it first). Returns undefined when a slot of that name exists already.
 */
async function createReplicationSlot(
  replication: pg.Client,
  config: Pick<WorkerConfig, 'failoverSlot'>,
  slot: { name: string; temporary: boolean },
): Promise<{ snapshotName: string | null } | undefined> {
  const version = Number((await replication.query('SHOW server_version_num')).rows[0].server_version_num)
  if (config.failoverSlot && version < 170000) {
    throw new OutboxSetupError(
      `--failover-slot (OUTBOX_FAILOVER_SLOT) needs PostgreSQL 17 or newer, this server is ${Math.floor(version / 10000)}: leave it off (see the README, "Failover")`,
      { code: 'OUTBOX_FAILOVER_VERSION' },
    )
  }
  // Slot names are checked to be [a-z0-9_] (config.ts), safe to write into the command.
  // PostgreSQL 14 knows only the old syntax; 15+ the option list, which alone has FAILOVER (17+).
  const exportSnapshot = slot.temporary
  const failover = config.failoverSlot && !slot.temporary
  const kind = slot.temporary ? 'TEMPORARY LOGICAL' : 'LOGICAL'
  const command =
    version < 150000
      ? `CREATE_REPLICATION_SLOT ${slot.name} ${kind} pgoutput ${exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`
      : `CREATE_REPLICATION_SLOT ${slot.name} ${kind} pgoutput (SNAPSHOT '${exportSnapshot ? 'export' : 'nothing'}'${failover ? ', FAILOVER' : ''})`
  try {
    const { rows } = await replication.query(command)
    return { snapshotName: rows[0]?.snapshot_name ?? null }
  } catch (error) {
    if (sqlState(error) === SQLSTATE.duplicateObject) return undefined
    throw error
  }
}
