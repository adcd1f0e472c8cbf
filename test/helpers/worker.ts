import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { WorkerStatus } from '../../worker/worker.js'
import { freePort, waitUntil } from '../services/ports.js'
import { workerCli } from './cli.js'
import type { TestDatabase } from './database.js'

const root = join(import.meta.dirname, '../..')

export interface WorkerProcess {
  child: ChildProcess
  healthPort: number
  /** Every line it printed (stdout and stderr), as text. */
  output: string[]
  exited: Promise<number | null>
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>
  kill(signal?: NodeJS.Signals): Promise<number | null>
  metric(name: string): Promise<number | undefined>
  /** /readyz answered 200. */
  ready(): Promise<boolean>
  /** /healthz answered 200. */
  live(): Promise<boolean>
  /** The /status document (see docs/probes.md). */
  status(): Promise<WorkerStatus>
  /** This worker holds the slot and streams (/status role "active"). */
  active(): Promise<boolean>
}

/**
 * Runs the real CLI (`outbox-worker`, from the sources unless `built`) as a separate process, with settings that
 * make a test fast: short retries and status intervals, JSON logs, a free health port.
 */
export async function spawnWorker(
  env: Record<string, string>,
  args: string[] = [],
  options: {
    built?: boolean
    onLine?: (line: string) => void
    nodeArgs?: string[]
    entry?: string
    /** The node executable (a wrapper, e.g. test/bench/memory-limit.ts); this process's node by default. */
    node?: string
  } = {},
): Promise<WorkerProcess> {
  const healthPort = await freePort()
  // `built`: the package's own build (dist/, or `entry`), which the benchmarks measure; otherwise
  // this test run's compile of the sources (test/setup/build.ts).
  const entry = options.built ? (options.entry ?? join(root, 'dist/worker/cli.js')) : workerCli
  const child = spawn(options.node ?? process.execPath, [...(options.nodeArgs ?? []), entry, ...args], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HEALTH_PORT: String(healthPort),
      HEALTH_HOST: '127.0.0.1',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'debug',
      OUTBOX_RETRY_INITIAL_MS: '100',
      OUTBOX_RETRY_MAX_MS: '1000',
      OUTBOX_STATUS_INTERVAL_MS: '500',
      OUTBOX_STANDBY_POLL_MS: '300',
      OUTBOX_STARTUP_TIMEOUT_MS: '5000',
      // Readiness leaves 200 this long after Kafka stops acknowledging, so tests of a stall wait
      // seconds, not the default 30.
      OUTBOX_READY_SEND_TIMEOUT: '3s',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const collect = (chunk: Buffer) => {
    const lines = chunk.toString().split('\n').filter(Boolean)
    output.push(...lines)
    if (options.onLine) for (const line of lines) options.onLine(line)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  // 'close', not 'exit': by then every line it printed has been read, so none arrives later.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith(`${name} `))
    return line === undefined ? undefined : Number(line.split(' ')[1])
  }
  return {
    child,
    healthPort,
    output,
    exited,
    metric,
    async ready() {
      return (await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.status === 200
    },
    async live() {
      return (await fetch(`http://127.0.0.1:${healthPort}/healthz`).catch(() => undefined))?.status === 200
    },
    async status() {
      return (await (await fetch(`http://127.0.0.1:${healthPort}/status`)).json()) as WorkerStatus
    },
    async active() {
      const response = await fetch(`http://127.0.0.1:${healthPort}/status`).catch(() => undefined)
      return response?.ok === true && ((await response.json()) as WorkerStatus).role === 'active'
    },
    async waitForLog(pattern, timeoutMs = 30_000) {
      await waitUntil(
        `worker log ${pattern}`,
        async () => output.some((line) => pattern.test(line)),
        timeoutMs,
        50,
      ).catch((error) => {
        throw new Error(`${(error as Error).message}\n--- worker output ---\n${output.slice(-30).join('\n')}`)
      })
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

export async function confirmedLsn(db: TestDatabase, slot: string): Promise<bigint> {
  const rows = await db.query<{ lsn: string | null }>(
    `SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  )
  return BigInt(rows[0]?.lsn ?? '0')
}

export async function currentLsn(db: TestDatabase): Promise<bigint> {
  const rows = await db.query<{ lsn: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS lsn`)
  return BigInt(rows[0]?.lsn ?? '0')
}

/**
 * The transactions (xids) the slot would send again, asked of PostgreSQL itself by a peek at its
 * changes: those whose commit comes at or after the confirmed position. The slot must be free
 * (its worker stopped); a walsender still ending is waited for.
 */
export async function replayedTransactions(
  db: TestDatabase,
  slot: string,
  publication = 'prisma_outbox',
): Promise<Set<string>> {
  let xids = new Set<string>()
  await waitUntil(
    `slot ${slot} free to peek`,
    async () => {
      try {
        const rows = await db.query<{ xid: string }>(
          `SELECT DISTINCT xid::text AS xid FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
             'proto_version', '1', 'publication_names', $2)`,
          [slot, publication],
        )
        xids = new Set(rows.map((r) => r.xid))
        return true
      } catch (error) {
        if (/is active for PID/.test((error as Error).message)) return false
        throw error
      }
    },
    10_000,
    100,
  )
  return xids
}

/**
 * Whether the slot would send the transaction that wrote event `eventId` again: "nothing confirmed
 * past it", asked of PostgreSQL itself. Comparing `confirmed_flush_lsn` with a position read around
 * the insert races with WAL written meanwhile by other databases on the cluster, which a keepalive
 * may confirm legitimately; the slot replays a transaction exactly when its commit comes at or after
 * the confirmed position, which is what a peek at the slot's changes shows.
 */
export async function slotReplays(
  db: TestDatabase,
  slot: string,
  eventId: string,
  publication = 'prisma_outbox',
): Promise<boolean> {
  const [row] = await db.query<{ xid: string }>('SELECT xmin::text AS xid FROM outbox WHERE id = $1', [eventId])
  if (!row) throw new Error(`event ${eventId} is not in the outbox table`)
  return (await replayedTransactions(db, slot, publication)).has(row.xid)
}

/** The transaction (xid) that wrote each event of the outbox table. */
export async function eventTransactions(db: TestDatabase): Promise<Map<string, string>> {
  const rows = await db.query<{ id: string; xid: string }>('SELECT id, xmin::text AS xid FROM outbox')
  return new Map(rows.map((r) => [r.id, r.xid]))
}

/** Waits until the slot has confirmed at least `lsn`. */
export async function waitForConfirmed(db: TestDatabase, slot: string, lsn: bigint, timeoutMs = 30_000): Promise<void> {
  await waitUntil(
    `slot ${slot} to confirm past ${lsn}`,
    async () => (await confirmedLsn(db, slot)) >= lsn,
    timeoutMs,
    100,
  )
}

/** Inserts events with raw SQL in one transaction; returns their ids in order. */
export async function insertEvents(
  db: TestDatabase,
  events: {
    aggregateType?: string
    aggregateId: string
    type?: string
    payload?: unknown
    /** Raw JSON text, stored as is. */
    payloadText?: string
    topic?: string | null
    headers?: Record<string, unknown> | null
  }[],
  options: { rollback?: boolean; table?: string } = {},
): Promise<string[]> {
  const client = await db.pool.connect()
  try {
    await client.query('BEGIN')
    const ids: string[] = []
    for (const e of events) {
      const { rows } = await client.query(
        `INSERT INTO ${options.table ?? 'outbox'} (id, aggregatetype, aggregateid, type, payload, headers, topic)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6) RETURNING id`,
        [
          e.aggregateType ?? 'order',
          e.aggregateId,
          e.type ?? 'order.created',
          e.payloadText ?? JSON.stringify(e.payload ?? {}),
          e.headers ? JSON.stringify(e.headers) : null,
          e.topic ?? null,
        ],
      )
      ids.push(rows[0].id)
    }
    await client.query(options.rollback ? 'ROLLBACK' : 'COMMIT')
    return ids
  } finally {
    client.release()
  }
}
