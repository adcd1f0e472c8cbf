import pg from 'pg'
import { publishRows } from '../delivery/publish-rows.js'
import type { Publisher } from '../delivery/publisher.js'
import type { WorkerConfig } from '../operations/config.js'
import { OutboxSetupError } from '../operations/errors.js'
import { errorFields, type Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { dropSlot, SQLSTATE, sqlState } from './setup.js'

/**
 * Creates the slot through the replication protocol. With `exportSnapshot`, the reply names a
 * snapshot that sees exactly the transactions committed before the slot's consistent point: what
 * the slot will never stream. It lives until this connection runs another command or closes.
 * Returns undefined when another worker created the slot first.
 */
async function createReplicationSlot(
  replication: pg.Client,
  config: Pick<WorkerConfig, 'slot' | 'failoverSlot'>,
  exportSnapshot: boolean,
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
  const command =
    version < 150000
      ? `CREATE_REPLICATION_SLOT ${config.slot} LOGICAL pgoutput ${exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`
      : `CREATE_REPLICATION_SLOT ${config.slot} LOGICAL pgoutput (SNAPSHOT '${exportSnapshot ? 'export' : 'nothing'}'${config.failoverSlot ? ', FAILOVER' : ''})`
  try {
    const { rows } = await replication.query(command)
    return { snapshotName: rows[0]?.snapshot_name ?? null }
  } catch (error) {
    if (sqlState(error) === SQLSTATE.duplicateObject) return undefined
    throw error
  }
}

export interface SlotCreation {
  config: WorkerConfig
  createPublisher: () => Publisher
  metrics: Metrics
  logger: Logger
  signal: AbortSignal
}

/**
 * Creates the slot and, with --snapshot initial, publishes the rows already in the table as of
 * the slot's consistent point; streaming from the slot then continues exactly where the
 * snapshot ends: no gap, no overlap. If the snapshot does not complete, the slot is dropped
 * again so the next attempt redoes both (a slot without its snapshot would skip those rows).
 * Returns whether this process created the slot.
 */
export async function createSlot({ config, createPublisher, metrics, logger, signal }: SlotCreation): Promise<boolean> {
  const withSnapshot = config.snapshot === 'initial'
  const replication = new pg.Client({
    connectionString: config.databaseUrl,
    replication: 'database',
  } as pg.ClientConfig)
  replication.on('error', () => {})
  await replication.connect()
  let reader: pg.Client | undefined
  let created = false
  try {
    const slot = await createReplicationSlot(replication, config, withSnapshot)
    if (!slot) return false
    created = true
    logger.info({ slot: config.slot }, 'created replication slot')
    if (!withSnapshot || !slot.snapshotName) return true
    reader = new pg.Client({ connectionString: config.databaseUrl })
    reader.on('error', () => {})
    await reader.connect()
    // A stop must not wait for a query that waits on a lock: closing the connection ends it.
    const closeReader = () => void reader?.end().catch(() => {})
    signal.addEventListener('abort', closeReader, { once: true })
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    await reader.query(`SET TRANSACTION SNAPSHOT '${slot.snapshotName.replace(/'/g, "''")}'`)
    // Imported: the reader's transaction keeps the snapshot; the exporting connection may go.
    await replication.end().catch(() => {})
    logger.info({ slot: config.slot }, 'initial snapshot: publishing the rows already in the outbox table')
    const published = await publishRows(reader, {
      config,
      publisher: createPublisher(),
      metrics,
      logger,
      signal,
      progress: 'initial snapshot: rows published so far',
    })
    await reader.query('COMMIT')
    logger.info(
      { slot: config.slot, published },
      `initial snapshot: published ${published} rows already in the table; streaming continues from the slot`,
    )
    return true
  } catch (error) {
    await replication.end().catch(() => {})
    if (created) await dropUnfinished(config, logger, error)
    if (sqlState(error) === SQLSTATE.insufficientPrivilege) {
      throw new OutboxSetupError(
        `the database role may not read the outbox table ${config.table} for the initial snapshot (${(error as Error).message}): GRANT SELECT ON ${config.table} TO the worker's role, or start with --snapshot never (OUTBOX_SNAPSHOT=never)`,
        { code: 'OUTBOX_SNAPSHOT_PRIVILEGE', cause: error },
      )
    }
    throw error
  } finally {
    await replication.end().catch(() => {})
    await reader?.end().catch(() => {})
  }
}

async function dropUnfinished(config: WorkerConfig, logger: Logger, error: unknown): Promise<void> {
  logger.warn(
    errorFields(error),
    'initial snapshot did not complete: dropping the new slot so the next attempt redoes both',
  )
  const client = new pg.Client({ connectionString: config.databaseUrl })
  client.on('error', () => {})
  try {
    await client.connect()
    // The creating connection releases the slot as it closes: retry briefly while it is active.
    for (let attempt = 0; ; attempt++) {
      try {
        await dropSlot(client, config.slot)
        return
      } catch (dropError) {
        if (sqlState(dropError) !== SQLSTATE.objectInUse || attempt >= 20) throw dropError
        await new Promise((r) => setTimeout(r, 100))
      }
    }
  } catch (dropError) {
    logger.error(
      errorFields(dropError),
      `could not drop the slot after an unfinished initial snapshot: drop it (SELECT pg_drop_replication_slot('${config.slot}')) before the next start`,
    )
  } finally {
    await client.end().catch(() => {})
  }
}
