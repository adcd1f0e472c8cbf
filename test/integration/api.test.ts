/** The programmatic worker (`prisma-outbox/worker`): what the CLI is built on. */
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import { createWorker, type Logger, OutboxSetupError } from '../../worker/index.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics } from '../helpers/kafka.js'
import { currentLsn, insertEvents, waitForConfirmed } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
})
afterEach(async () => {
  await db.dispose()
})

function recordingLogger(lines: string[]): Logger {
  const log = (level: string) => (fields: object, message: string) =>
    lines.push(`${level} ${message} ${JSON.stringify(fields)}`)
  const logger: Logger = {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: () => logger,
  }
  return logger
}

test('start() and stop() are idempotent; events report streaming, published and confirmed; the injected logger is used', async () => {
  const prefix = uniqueName('api')
  const lines: string[] = []
  const worker = createWorker({
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    slot: uniqueName('slot'),
    topicTemplate: `${prefix}.{aggregateType}`,
    healthPort: 0,
    statusIntervalMs: 500,
    logger: recordingLogger(lines),
  })
  const streaming = new Promise<void>((resolve) => worker.once('streaming', () => resolve()))
  let published = 0
  worker.on('published', (count: number) => {
    published += count
  })
  const first = worker.start()
  expect(worker.start()).toBe(first)
  await first
  await streaming
  expect(worker.state).toBe('streaming')
  expect(worker.isReady()).toBe(true)

  const consumer = await collectTopics(inject('kafkaBrokers'), [`${prefix}.order`])
  await insertEvents(db, [{ aggregateId: 'a' }, { aggregateId: 'b' }, { aggregateId: 'c' }])
  await consumer.waitFor(3)
  await consumer.stop()
  await waitForConfirmed(db, worker.config.slot, await currentLsn(db))
  expect(published).toBe(3)
  expect(lines.some((l) => l.startsWith('info streaming'))).toBe(true)

  const stopping = worker.stop()
  expect(worker.stop()).toBe(stopping)
  await stopping
  await worker.done
  expect(worker.state).toBe('stopped')
})

test('start() rejects with OutboxSetupError when the database is not set up, and done rejects too', async () => {
  await db.query('DROP PUBLICATION prisma_outbox')
  const worker = createWorker({
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    slot: uniqueName('slot'),
    healthPort: 0,
  })
  await expect(worker.start()).rejects.toBeInstanceOf(OutboxSetupError)
  await expect(worker.done).rejects.toMatchObject({ code: 'OUTBOX_NO_PUBLICATION' })
  expect(worker.state).toBe('failed')
  await worker.stop() // still safe to call
})

test('a publication that filters the outbox rows or columns is refused at start with the fix, as the running worker refuses it', async (context) => {
  const [row] = await db.query<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`)
  const version = row?.version ?? 0
  // Row filters arrived in PostgreSQL 15.
  if (version < 150000) return context.skip()
  await db.query(`ALTER PUBLICATION prisma_outbox SET TABLE outbox WHERE (aggregatetype <> 'secret')`)
  const worker = createWorker({
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    slot: uniqueName('slot'),
    healthPort: 0,
  })
  const error = await worker.start().catch((e: unknown) => e)
  await worker.stop()
  expect(error).toMatchObject({ code: 'OUTBOX_PUBLICATION_TABLE' })
  expect((error as Error).message).toBe(
    `publication "prisma_outbox" filters the outbox table's rows or columns: ALTER PUBLICATION "prisma_outbox" SET TABLE "public"."outbox"`,
  )
})

test('a status interval the server would not wait for (wal_sender_timeout) is refused at start, naming both and the fix; no slot is made', async () => {
  // A setting of this database only (its walsenders honour it too): nothing else on the cluster feels it.
  await db.query(`ALTER DATABASE "${db.name}" SET wal_sender_timeout = '4s'`)
  const slot = uniqueName('slot')
  const worker = createWorker({
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    slot,
    healthPort: 0,
    statusIntervalMs: 4000,
  })
  const error = await worker.start().catch((e: unknown) => e)
  await worker.stop()
  expect(error).toBeInstanceOf(OutboxSetupError)
  expect(error).toMatchObject({ code: 'OUTBOX_STATUS_INTERVAL' })
  expect((error as Error).message).toBe(
    "--status-interval-ms (OUTBOX_STATUS_INTERVAL_MS) is 4000 ms, but the server's wal_sender_timeout is 4000 ms: PostgreSQL would end the replication connection between two status updates while reading is paused, or before this worker notices a dead connection. Set the status interval to at most a third of wal_sender_timeout (1333 ms), or raise wal_sender_timeout",
  )
  expect(await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toHaveLength(0)
})

test('the default status interval is shortened to fit a short wal_sender_timeout: the worker streams', async () => {
  await db.query(`ALTER DATABASE "${db.name}" SET wal_sender_timeout = '6s'`)
  const worker = createWorker({
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    slot: uniqueName('slot'),
    healthPort: 0,
  })
  try {
    await worker.start()
    await waitUntil('streaming', async () => worker.state === 'streaming', 20_000)
  } finally {
    await worker.stop()
  }
})
