/**
 * The states of a slot that used to pass for healthy: invalidated (WAL removed past
 * max_slot_wal_keep_size), dropped while in use, and a slot of another database on the same
 * cluster (slots are cluster-wide; two databases with the default name meet). Each is an error
 * naming the fix, from the worker (exit 3) and from `status` (exit 3); `--on-slot-lost recreate`
 * re-creates a lost slot instead.
 */
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { adminQuery, createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics } from '../helpers/kafka.js'
import { insertEvents, spawnWorker, type WorkerProcess } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
let slot: string
let prefix: string
const databases: TestDatabase[] = []
const workers: WorkerProcess[] = []
const consumers: { stop(): Promise<void> }[] = []

beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  databases.push(db)
  slot = uniqueName('slot')
  prefix = uniqueName('t')
})
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.kill()))
  await Promise.all(consumers.splice(0).map((c) => c.stop()))
  for (const d of databases.splice(0)) await d.dispose()
})

function env(database: TestDatabase, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: database.url,
    KAFKA_BROKERS: inject('kafkaBrokers').join(','),
    OUTBOX_SLOT: slot,
    OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
    ...extra,
  }
}

async function startWorker(database: TestDatabase, extra: Record<string, string> = {}) {
  const worker = await spawnWorker(env(database, extra))
  workers.push(worker)
  return worker
}

async function status(database: TestDatabase) {
  const result = await runCli(['status'], env(database))
  return { code: result.code, stdout: result.all }
}

/** Drops the slot out from under its worker: terminate the walsender, drop, until the drop wins. */
async function dropSlotInUse(): Promise<void> {
  const admin = inject('databaseUrl')
  await waitUntil(
    `slot ${slot} dropped`,
    async () => {
      await adminQuery(
        admin,
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
        [slot],
      )
      try {
        await adminQuery(admin, 'SELECT pg_drop_replication_slot($1)', [slot])
        return true
      } catch {
        return false
      }
    },
    30_000,
    20,
  )
}

test('two databases, one cluster, one slot name: the second worker exits 3 naming --slot, never stands by; status tells each the truth', async () => {
  const other = await createTestDatabase(inject('databaseUrl'))
  databases.push(other)
  const first = await startWorker(db)
  await first.waitForLog(/"msg":"streaming"/)

  const second = await startWorker(other)
  expect(await second.exited).toBe(3)
  const message = second.output.join('\n')
  expect(message).toContain(`replication slot "${slot}" is in use by a worker of database "${db.name}"`)
  expect(message).toContain('--slot (OUTBOX_SLOT)')
  expect(message).not.toMatch(/standing by/)

  expect((await status(db)).code).toBe(0)
  const otherStatus = await status(other)
  expect(otherStatus.code).toBe(3)
  expect(otherStatus.stdout).toContain(`is in use by a worker of database "${db.name}"`)

  // With the first worker gone, the slot still belongs to the first database.
  expect(await first.kill('SIGTERM')).toBe(0)
  const again = await startWorker(other)
  expect(await again.exited).toBe(3)
  expect(again.output.join('\n')).toContain(`replication slot "${slot}" belongs to database "${db.name}"`)
  expect((await status(other)).stdout).toContain(`belongs to database "${db.name}"`)

  // Its own slot name works.
  const own = await startWorker(other, { OUTBOX_SLOT: `${slot}_2` })
  await own.waitForLog(/"msg":"streaming"/)
})

test('a slot dropped while in use: the worker exits 3 with the fix; with --on-slot-lost recreate it re-creates it and streams on', async () => {
  const worker = await startWorker(db)
  await worker.waitForLog(/"msg":"streaming"/)
  await dropSlotInUse()
  expect(await worker.exited).toBe(3)
  expect(worker.output.join('\n')).toContain(`replication slot "${slot}" was dropped while this worker used it`)
  expect(worker.output.join('\n')).toContain('--on-slot-lost recreate')

  const consumer = await collectTopics(inject('kafkaBrokers'), [`${prefix}.order`])
  consumers.push(consumer)
  const recreating = await startWorker(db, { OUTBOX_ON_SLOT_LOST: 'recreate' })
  await recreating.waitForLog(/"msg":"streaming"/)
  await dropSlotInUse()
  await recreating.waitForLog(/disappeared: re-creating it/)
  await waitUntil(
    'streaming again',
    async () => recreating.output.filter((line) => line.includes('"msg":"streaming"')).length >= 2,
    30_000,
  )
  const [id] = await insertEvents(db, [{ aggregateId: 'after' }])
  await waitUntil('the event after re-creation', async () => consumer.messages.some((m) => m.headers.id === id), 30_000)
})

test('an invalidated slot (max_slot_wal_keep_size exceeded): status and the worker exit 3 with the reason; recreate streams again', async () => {
  const admin = inject('databaseUrl')
  const worker = await startWorker(db)
  await worker.waitForLog(/"msg":"streaming"/)
  expect(await worker.kill('SIGTERM')).toBe(0)
  try {
    await adminQuery(admin, `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`)
    await adminQuery(admin, 'SELECT pg_reload_conf()')
    // Four WAL segments past the slot, then a checkpoint: PostgreSQL removes them and the slot is lost.
    await waitUntil(
      `slot ${slot} invalidated`,
      async () => {
        for (let i = 0; i < 4; i++) {
          await adminQuery(admin, `SELECT pg_logical_emit_message(false, 'filler', repeat('x', 1000))`)
          await adminQuery(admin, 'SELECT pg_switch_wal()')
        }
        await adminQuery(admin, 'CHECKPOINT')
        const rows = await adminQuery(admin, 'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [slot])
        return rows[0]?.wal_status === 'lost'
      },
      60_000,
      100,
    )
  } finally {
    await adminQuery(admin, 'ALTER SYSTEM RESET max_slot_wal_keep_size')
    await adminQuery(admin, 'SELECT pg_reload_conf()')
  }

  // Committed while the slot is lost: never streamed; still in the table.
  const [whileLost] = await insertEvents(db, [{ aggregateId: 'while-lost' }])
  const report = await status(db)
  expect(report.code).toBe(3)
  expect(report.stdout).toContain(`replication slot "${slot}" was invalidated (wal_removed`)

  const stopping = await startWorker(db)
  expect(await stopping.exited).toBe(3)
  expect(stopping.output.join('\n')).toContain(`replication slot "${slot}" was invalidated (wal_removed`)
  expect(stopping.output.join('\n')).toContain('--on-slot-lost recreate (OUTBOX_ON_SLOT_LOST=recreate)')

  const consumer = await collectTopics(inject('kafkaBrokers'), [`${prefix}.order`])
  consumers.push(consumer)
  const recreating = await startWorker(db, { OUTBOX_ON_SLOT_LOST: 'recreate' })
  await recreating.waitForLog(/"msg":"streaming"/)
  expect(recreating.output.join('\n')).toMatch(/was invalidated \(wal_removed.*re-creating it/)
  const [id] = await insertEvents(db, [{ aggregateId: 'after' }])
  await waitUntil(
    'the event committed while the slot was lost (initial snapshot), and the one after',
    async () => [whileLost, id].every((e) => consumer.messages.some((m) => m.headers.id === e)),
    30_000,
  )
  expect((await status(db)).code).toBe(0)
})

test('--failover-slot: PostgreSQL 17+ creates the slot with failover = true; older servers exit 3 naming the version', async () => {
  const [row] = await db.query<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`)
  const version = row?.version ?? 0
  const worker = await startWorker(db, { OUTBOX_FAILOVER_SLOT: 'true' })
  if (version >= 170000) {
    await worker.waitForLog(/"msg":"streaming"/)
    const rows = await db.query('SELECT failover FROM pg_replication_slots WHERE slot_name = $1', [slot])
    expect(rows[0]?.failover).toBe(true)
  } else {
    expect(await worker.exited).toBe(3)
    expect(worker.output.join('\n')).toContain('--failover-slot (OUTBOX_FAILOVER_SLOT) needs PostgreSQL 17 or newer')
  }
})

test('status lists inactive pgoutput slots of the database that no worker uses', async () => {
  const worker = await startWorker(db)
  await worker.waitForLog(/"msg":"streaming"/)
  await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [`${slot}_orphan`])
  const report = await status(db)
  expect(report.code).toBe(0)
  expect(report.stdout).toContain(`unused slot  ${slot}_orphan: inactive pgoutput slot, it pins WAL`)
  expect(report.stdout).not.toContain(`unused slot  ${slot}:`)
})
