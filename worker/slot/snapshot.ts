import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import { publishRows } from '../delivery/publish-rows.js'
import { type Publisher, withSend } from '../delivery/publisher.js'
import { TimeoutError, withTimeout } from '../delivery/with-timeout.js'
import type { WorkerConfig } from '../operations/config.js'
import { OutboxSetupError, SQLSTATE, sqlState } from '../operations/errors.js'
import type { Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { NO_QUERY_TIMEOUT, type SideConnectionOptions, sideConnection } from '../operations/side-connection.js'
import { readSlot } from './slot-state.js'

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
 * One worker at a time makes the slot, with or without a snapshot: a session advisory lock on the
 * slot's name, held until the slot is complete. Another worker that finds it taken stands by
 * (`busy`); the lock goes with the connection too, so a killed worker's is released with its
 * temporary slot.
 */
export async function createSlot(creation: SlotCreation): Promise<SlotCreationOutcome> {
  const { config, logger, signal } = creation
  if (signal.aborted) throw new Error('stopped before the slot was created')
  const control = await snapshotClient(config, false)
  let replication: pg.Client | undefined
  // A stop must not wait for a query that waits on a lock or on Kafka: closing the connections
  // ends it, and with them the lock and the temporary slot.
  const closeAll = () => {
    void control.end().catch(() => {})
    void replication?.end().catch(() => {})
  }
  signal.addEventListener('abort', closeAll, { once: true })
  // Creating the slot waits for every transaction open on the server, and the snapshot's first
  // page for a sort of the whole table: long, silent, and not a wedge. A liveness probe that
  // restarted the worker here would only make it start over, so this counts as progress.
  const progressing = setInterval(
    () => creation.metrics.heartbeat.beat(),
    Math.max(100, Math.min(5000, config.livenessTimeoutMs / 4)),
  )
  progressing.unref()
  let snapshotStarted = false
  try {
    const { rows } = await control.query(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS locked`, [config.slot])
    if (rows[0]?.locked !== true) {
      logger.debug({ slot: config.slot, holder: await lockHolder(control, config.slot) }, 'slot creation under way')
      return 'busy'
    }
    // Made while this worker waited for the lock.
    if ((await readSlot(control, config.slot)).state.kind !== 'missing') return 'exists'
    replication = await snapshotClient(config, true)
    if (config.snapshot !== 'initial') {
      try {
        await createReplicationSlot(replication, config, { name: config.slot, temporary: false })
      } catch (error) {
        if (sqlState(error) === SQLSTATE.duplicateObject) return 'exists' // a worker without the lock
        throw error
      }
      logger.info({ slot: config.slot }, 'created replication slot')
      return 'created'
    }
    const temporary = `${config.slot.slice(0, 40)}_snapshot_${randomBytes(4).toString('hex')}`
    const made = await createReplicationSlot(replication, config, { name: temporary, temporary: true })
    if (!made.snapshotName) throw new Error(`PostgreSQL exported no snapshot for the temporary slot ${temporary}`)
    snapshotStarted = true
    await publishSnapshot(control, made.snapshotName, creation)
    await copyToRealName(control, temporary, config.slot)
    snapshotStarted = false // the slot exists: nothing is redone from here on
    // A temporary slot cannot be a failover slot, so the copy is made one. Standbys do not use
    // the slot before the lock is released (slotCreationUnderWay), so it is not active yet.
    if (config.failoverSlot) await replication.query(`ALTER_REPLICATION_SLOT ${config.slot} (FAILOVER true)`)
    logger.info({ slot: config.slot }, 'created replication slot')
    return 'created'
  } catch (error) {
    if (snapshotStarted) {
      logger.warn(
        { slot: config.slot },
        'initial snapshot did not complete: no slot was made, so the next start redoes the snapshot',
      )
    }
    throw setupProblem(error, config) ?? error
  } finally {
    clearInterval(progressing)
    signal.removeEventListener('abort', closeAll)
    closeAll() // drops the temporary slot and releases the lock
  }
}

/** The lock every worker takes to create the slot (any --snapshot): per database, by slot name. */
const LOCK_KEY = `hashtextextended('prisma-outbox slot ' || $1, 0)`

/** Whether another worker holds the creation lock: its slot may exist before its FAILOVER is set. */
export async function slotCreationUnderWay(client: pg.Client, slot: string): Promise<boolean> {
  return (await lockHolder(client, slot)) !== undefined
}

/**
 * Who holds the creation lock, for the log of a replica standing by: a worker frozen mid-snapshot
 * (SIGSTOP, a stuck node) holds every replica back until its connection ends, and this names it.
 */
async function lockHolder(client: pg.Client, slot: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await client.query(
    `WITH k AS (SELECT ${LOCK_KEY} AS key)
     SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.backend_start, a.state
       FROM k, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid`,
    [slot],
  )
  return rows[0]
}

/**
 * The step that makes the slot real: a permanent copy of the temporary one (same consistent
 * point). Under the lock nobody else creates the slot, except a worker that takes no lock (a
 * version before it): then its slot starts at another point than this snapshot ended, and events
 * in between may be missing or out of order.
 */
async function copyToRealName(control: pg.Client, temporary: string, slot: string): Promise<void> {
  try {
    await control.query('SELECT pg_copy_logical_replication_slot($1, $2, false)', [temporary, slot])
  } catch (error) {
    if (sqlState(error) === SQLSTATE.duplicateObject) {
      throw new OutboxSetupError(
        `replication slot "${slot}" was created by another worker that does not wait for the initial snapshot (an older prisma-outbox version?) while this one published it: events committed around that moment may be missing or out of order. Stop every worker, upgrade them all, drop the slot (SELECT pg_drop_replication_slot('${slot}')) and start again; or keep the slot and republish (outbox-worker republish --since <the time of this start>)`,
        { code: 'OUTBOX_SLOT_RACE', cause: error },
      )
    }
    if (sqlState(error) === SQLSTATE.undefinedObject) {
      throw new OutboxSetupError(
        `the temporary slot ${temporary} that holds the initial snapshot's position was dropped before the snapshot finished (its connection was ended: a server-side timeout, or pg_terminate_backend): nothing was committed as delivered; the next start redoes the snapshot`,
        { code: 'OUTBOX_SNAPSHOT_INTERRUPTED', cause: error },
      )
    }
    throw error
  }
}

/** The setup problems slot creation can meet, as errors that name the fix; undefined for others. */
function setupProblem(error: unknown, config: WorkerConfig): OutboxSetupError | undefined {
  if (sqlState(error) === SQLSTATE.configurationLimitExceeded) {
    return new OutboxSetupError(
      `PostgreSQL has no free replication slot (${(error as Error).message}): the worker needs its own, and while the initial snapshot runs one temporary slot more; raise max_replication_slots (a restart) or drop slots no one uses (outbox-worker status lists them)`,
      { code: 'OUTBOX_NO_FREE_SLOT', cause: error },
    )
  }
  if (sqlState(error) === SQLSTATE.insufficientPrivilege) {
    return new OutboxSetupError(
      `the database role may not read the outbox table ${config.table} for the initial snapshot (${(error as Error).message}): GRANT SELECT ON ${config.table} TO the worker's role, or start with --snapshot never (OUTBOX_SNAPSHOT=never)`,
      { code: 'OUTBOX_SNAPSHOT_PRIVILEGE', cause: error },
    )
  }
  return undefined
}

/** Publishes the rows the exported snapshot sees, in commit order (publish-rows.ts), acknowledged. */
async function publishSnapshot(reader: pg.Client, snapshotName: string, creation: SlotCreation): Promise<void> {
  const { config, logger } = creation
  await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  await reader.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`)
  logger.info({ slot: config.slot }, 'initial snapshot: publishing the rows already in the outbox table')
  const lock = heldLock(reader)
  const published = await publishRows(reader, {
    config,
    publisher: lock.gate(creation.createPublisher()),
    metrics: creation.metrics,
    logger,
    signal: creation.signal,
    order: 'commit',
    progress: 'initial snapshot: rows published so far',
    interrupted: lock.lost,
  })
  await reader.query('COMMIT')
  logger.info(
    { slot: config.slot, published },
    `initial snapshot: published ${published} rows already in the table; streaming continues from the slot`,
  )
}

/**
 * A check of the lock's session counts only if its answer is read within this long of asking: an
 * answer read later (the process was frozen in between) may predate the session's end.
 */
const LOCK_ANSWER_MS = 1000
/**
 * No counted answer for this long and the lock counts as lost: well before the server can end a
 * silent session (its keepalives and tcp_user_timeout, 25 s: SNAPSHOT_SESSION), so this worker
 * has stopped sending before another can take the lock.
 */
const LOCK_LOST_AFTER_MS = 10_000
/** While a send is under way (the Kafka client retries on its own), the lock is checked this often. */
const LOCK_WATCH_MS = 1000

/**
 * The creation lock, checked before each snapshot send and while it is under way. Once the lock's
 * session has ended (the server gave up on a frozen or cut-off host, or pg_terminate_backend),
 * another worker may take the lock, snapshot the table again and stream: a row this worker sent
 * after that would land behind that worker's newer events for the same aggregate. A worker that
 * wakes from a freeze has rows of its page still to send (or a send to retry), so each send (one
 * per batch) starts only after a prompt round trip on the lock's session; a send that outlasts
 * LOCK_WATCH_MS is watched the same way. When the session is gone (or stays silent for
 * LOCK_LOST_AFTER_MS), nothing more is sent and `lost` ends the snapshot, whose delivery then drops
 * its Kafka connections with what they still carry; the next start redoes the snapshot.
 */
function heldLock(control: pg.Client): { gate(publisher: Publisher): Publisher; lost: Promise<never> } {
  let lostError: Error | undefined
  let reportLost: (error: Error) => void = () => {}
  const lost = new Promise<never>((_, reject) => {
    reportLost = reject
  })
  lost.catch(() => {})
  const lose = (cause: unknown) => {
    if (lostError) return
    lostError = new Error(
      "the initial snapshot's session with PostgreSQL, which holds the slot creation lock, was ended or did not answer: another worker may have taken over, so nothing more of this snapshot is sent (the next start redoes it)",
      { cause },
    )
    reportLost(lostError)
  }
  // The server's notice that it ended the session (pg_terminate_backend, a shutdown) can arrive in
  // the same read as the answer to a check: it is parsed before that check's caller resumes.
  control.once('error', lose)
  control.once('end', () => lose(new Error('the connection ended')))

  /**
   * Round trips until one is answered within LOCK_ANSWER_MS; throws once the lock is lost. Stops
   * asking once `needed` says so: the watch of a send that has settled must not queue checks
   * behind the next page's FETCH.
   */
  const ensureHeld = async (needed = () => true) => {
    const since = performance.now()
    while (!lostError && needed()) {
      const askedAt = performance.now()
      try {
        await withTimeout(control.query('SELECT 1'), LOCK_ANSWER_MS)
        if (!lostError && performance.now() - askedAt <= LOCK_ANSWER_MS) return
      } catch (error) {
        // A timeout asks again (the late answer is read first: queries are answered in turn);
        // PostgreSQL's refusal or a closed connection means the session is gone.
        if (!(error instanceof TimeoutError)) lose(error)
      }
      if (performance.now() - since > LOCK_LOST_AFTER_MS)
        lose(new Error(`no prompt answer for ${LOCK_LOST_AFTER_MS} ms`))
    }
    if (lostError) throw lostError
  }
  const watch = async (sending: Promise<void>) => {
    let settled = false
    const done = sending.then(
      () => {
        settled = true
      },
      () => {
        settled = true
      },
    )
    for (;;) {
      await Promise.race([done, sleep(LOCK_WATCH_MS, undefined, { ref: false })])
      if (settled || lostError) return
      await ensureHeld(() => !settled).catch(() => {}) // a loss is reported through `lost`
    }
  }
  return {
    gate: (publisher) =>
      withSend(publisher, async (records) => {
        await ensureHeld()
        const sending = publisher.send(records)
        void watch(sending)
        return sending
      }),
    lost,
  }
}

/**
 * Both of the snapshot's connections sit idle in a transaction for as long as Kafka takes with
 * each page (the exported snapshot keeps the walsender's open too), and the first page waits
 * for a sort of the whole table: a role's or database's idle_in_transaction_session_timeout or
 * statement_timeout would end them mid-snapshot, and every attempt would publish the table again
 * and fail again. So both are off here. The server's TCP keepalives are short instead: a worker
 * whose host is gone must not hold the lock (and every replica on standby) for the hours of
 * the system default.
 */
const SNAPSHOT_SESSION: SideConnectionOptions = {
  applicationName: 'prisma-outbox initial snapshot',
  // For the same reason no bound on a query from this side: creating the slot and the first page
  // wait as long as they must. The keepalives below notice a server that is gone instead.
  queryTimeoutMs: NO_QUERY_TIMEOUT,
  // Our side too: a snapshot waiting on a connection whose server is gone ends (and is redone)
  // instead of holding the worker, which counts the snapshot as progress, for hours.
  keepAliveAfterMs: 10_000,
  serverSettings: [
    'idle_in_transaction_session_timeout=0',
    'statement_timeout=0',
    'tcp_keepalives_idle=10',
    'tcp_keepalives_interval=5',
    'tcp_keepalives_count=3',
    // Keepalives are not sent while data the server sent is unacknowledged (a host frozen just
    // after a lock check): this bounds that case to the same 25 s instead of minutes.
    'tcp_user_timeout=25000',
  ],
}

async function snapshotClient(config: WorkerConfig, replication: boolean): Promise<pg.Client> {
  const client = sideConnection(config.databaseUrl, { ...SNAPSHOT_SESSION, replication })
  await client.connect()
  return client
}

/**
 * CREATE_REPLICATION_SLOT through the replication protocol. A temporary slot exports a snapshot
 * that sees exactly the transactions committed before the slot's consistent point: what the slot
 * will never stream. It lives until this connection runs another command or closes (the reader
 * imports it first).
 */
async function createReplicationSlot(
  replication: pg.Client,
  config: Pick<WorkerConfig, 'failoverSlot'>,
  slot: { name: string; temporary: boolean },
): Promise<{ snapshotName: string | null }> {
  const version = Number((await replication.query('SHOW server_version_num')).rows[0].server_version_num)
  if (config.failoverSlot && version < 170000) {
    throw new OutboxSetupError(
      `--failover-slot (OUTBOX_FAILOVER_SLOT) needs PostgreSQL 17 or newer, this server is ${Math.floor(version / 10000)}: leave it off (see docs/operations.md, "Failover")`,
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
  const { rows } = await replication.query(command)
  return { snapshotName: rows[0]?.snapshot_name ?? null }
}
