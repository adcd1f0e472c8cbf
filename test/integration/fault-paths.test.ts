/**
 * Paths to loss, reorder and stall that process faults never exercise: schema drift, a table that
 * leaves the publication, oversize batches and headers, a stop during start-up, publication names
 * with capitals. Each test failed on the relay as first released (see the fault table in docs/guarantees.md).
 */
import { expect, inject, test } from 'vitest'
import type { TestDatabase } from '../helpers/database.js'
import { testKafka } from '../helpers/kafka.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { confirmedLsn, currentLsn, insertEvents, slotReplays, waitForConfirmed } from '../helpers/worker.js'
import { freePort, waitUntil } from '../services/ports.js'

let db: TestDatabase
let slot: string
let prefix: string
const { startWorker, consume } = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
})

/** Inserts one outbox row with raw SQL text for its headers column (whatever its type now is). */
async function insertRawHeaders(aggregateId: string, headersText: string): Promise<string> {
  const rows = await db.query<{ id: string }>(
    `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
     VALUES (gen_random_uuid(), 'order', $1, 'order.created', '{"n": 1}', $2) RETURNING id`,
    [aggregateId, headersText],
  )
  return rows[0]?.id as string
}

test('schema drift: a row that does not decode goes to the dead-letter topic with its raw text; later events still arrive', async () => {
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await consume([`${prefix}.order`, `${prefix}.order.dlq`])
  await db.query('ALTER TABLE outbox ALTER COLUMN headers TYPE text')
  const bad = await insertRawHeaders('drift', 'not json')
  const [good] = await insertEvents(db, [{ aggregateId: 'drift', payload: { after: true } }])
  await waitUntil(
    'both events delivered',
    async () => [bad, good].every((id) => consumer.messages.some((m) => m.headers.id === id)),
    30_000,
  )
  const dead = consumer.messages.find((m) => m.headers.id === bad)
  expect(dead?.topic).toBe(`${prefix}.order.dlq`)
  expect(dead?.headers.error).toMatch(/undecodable row/)
  expect(JSON.parse(dead?.value ?? '{}')).toMatchObject({ id: bad, headers: 'not json', aggregateid: 'drift' })
  expect(consumer.messages.find((m) => m.headers.id === good)?.topic).toBe(`${prefix}.order`)
})

test('schema drift with --on-poison stop: exit 4 naming the event, and nothing confirmed past it', async () => {
  const worker = await startWorker({ OUTBOX_ON_POISON: 'stop' })
  await worker.waitForLog(/"msg":"streaming"/)
  await db.query('ALTER TABLE outbox ALTER COLUMN headers TYPE text')
  const bad = await insertRawHeaders('drift', 'not json')
  expect(await worker.exited).toBe(4)
  expect(worker.output.join('\n')).toContain(`event ${bad} cannot be published`)
  expect(await slotReplays(db, slot, bad)).toBe(true)
})

/** Everything that takes the outbox table out of the stream, and how each is undone. */
const leaving = [
  {
    name: 'DROP TABLE and re-create',
    leave: `ALTER TABLE outbox RENAME TO outbox_old; CREATE TABLE outbox (LIKE outbox_old INCLUDING ALL); DROP TABLE outbox_old`,
    problem: /is not in publication \\?"prisma_outbox\\?"/,
    fix: 'ALTER PUBLICATION prisma_outbox ADD TABLE outbox',
  },
  {
    name: 'ALTER PUBLICATION ... DROP TABLE',
    leave: 'ALTER PUBLICATION prisma_outbox DROP TABLE outbox',
    problem: /is not in publication \\?"prisma_outbox\\?"/,
    fix: 'ALTER PUBLICATION prisma_outbox ADD TABLE outbox',
  },
  {
    name: 'a rename',
    leave: 'ALTER TABLE outbox RENAME TO outbox_renamed',
    problem: /no longer exists|renamed or moved/,
    fix: 'ALTER TABLE outbox_renamed RENAME TO outbox',
  },
]

for (const { name, leave, problem, fix } of leaving) {
  test(`the table leaves the stream (${name}): not ready within seconds, nothing confirmed past it, ready again once fixed`, async () => {
    const worker = await startWorker({ OUTBOX_TABLE_CHECK_INTERVAL: '300ms', OUTBOX_MISSING_TABLE_TIMEOUT: '60s' })
    await worker.waitForLog(/"msg":"streaming"/)
    const consumer = await consume([`${prefix}.order`])
    await insertEvents(db, [{ aggregateId: 'before' }])
    await consumer.waitFor(1)
    await waitUntil('ready', () => worker.ready(), 10_000)

    await db.query(leave)
    await waitUntil('not ready', async () => !(await worker.ready()), 5_000)
    await worker.waitForLog(problem, 5_000)
    expect(await worker.metric('outbox_table_published')).toBe(0)
    // Until the worker notices (a relation message, or the check every --table-check-interval)
    // it may confirm event-free WAL; rows written meanwhile were never in the stream either way
    // (see README: republish). Once it has noticed, it confirms nothing more.
    const noticedAt = await currentLsn(db)
    // Traffic elsewhere makes keepalives that would have confirmed past the change.
    await db.query('CREATE TABLE busy (v text)')
    for (let i = 0; i < 5; i++) await db.query(`INSERT INTO busy SELECT repeat('x', 100) FROM generate_series(1, 200)`)
    await new Promise((r) => setTimeout(r, 1500))
    expect(await confirmedLsn(db, slot)).toBeLessThanOrEqual(noticedAt)

    await db.query(fix)
    await waitUntil('ready again', () => worker.ready(), 10_000)
    await worker.waitForLog(/back in the publication/, 5_000)
    const [after] = await insertEvents(db, [{ aggregateId: 'after' }])
    await waitUntil('an event after the fix', async () => consumer.messages.some((m) => m.headers.id === after), 20_000)
    await waitForConfirmed(db, slot, await currentLsn(db), 20_000)
  })
}

test('the table stays out of the publication: exit 3 after --missing-table-timeout, naming the fix, with the code start-up gives it', async () => {
  const worker = await startWorker({ OUTBOX_TABLE_CHECK_INTERVAL: '300ms', OUTBOX_MISSING_TABLE_TIMEOUT: '2s' })
  await worker.waitForLog(/"msg":"streaming"/)
  await db.query('ALTER PUBLICATION prisma_outbox DROP TABLE outbox')
  expect(await worker.exited).toBe(3)
  const output = worker.output.join('\n')
  expect(output).toMatch(/ALTER PUBLICATION \\?"prisma_outbox\\?" ADD TABLE/)
  expect(output).toContain('"code":"OUTBOX_PUBLICATION_TABLE"')
})

test('a full batch of large events to a one-partition topic is split under the broker limit: no refusal, no duplicate', async () => {
  const admin = testKafka(inject('kafkaBrokers')).admin()
  await admin.connect()
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: `${prefix}.big`, numPartitions: 1 },
      { topic: `${prefix}.small`, numPartitions: 4 },
    ],
  })
  await admin.disconnect()
  const consumer = await consume([`${prefix}.big`, `${prefix}.small`])
  // A backlog, so the relay reads it in full batches: the worker makes the slot, is killed,
  // and the events wait for the next one.
  const first = await startWorker()
  await first.waitForLog(/"msg":"streaming"/)
  await first.kill('SIGKILL')
  const ids = await insertEvents(db, [
    ...Array.from({ length: 10 }, (_, i) => ({ aggregateType: 'small', aggregateId: `s${i}` })),
    ...Array.from({ length: 1000 }, (_, i) => ({
      aggregateType: 'big',
      aggregateId: `b${i % 10}`,
      payload: { seq: i, blob: 'x'.repeat(1100) },
    })),
  ])
  const worker = await startWorker()
  await consumer.waitFor(ids.length, 60_000)
  await new Promise((r) => setTimeout(r, 1000))
  const delivered = consumer.messages.map((m) => m.headers.id)
  expect(delivered.length).toBe(ids.length)
  expect(new Set(delivered)).toEqual(new Set(ids))
  // Kafka refused no request (it would have stored the other partitions' records and the split
  // would send them again), and nothing was dead-lettered.
  const metrics = await (await fetch(`http://127.0.0.1:${worker.healthPort}/metrics`)).text()
  expect(metrics).not.toMatch(/outbox_publish_errors_total\{kind="(poison|refused)"\}/)
  expect(await worker.metric('outbox_events_dead_lettered_total')).toBe(0)
})

test('oversize headers: the dead letter keeps only the reserved headers and says so; delivery goes on', async () => {
  const worker = await startWorker({ OUTBOX_MAX_MESSAGE_BYTES: '20000' })
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await consume([`${prefix}.order`, `${prefix}.order.dlq`])
  const [big, fine] = await insertEvents(db, [
    { aggregateId: 'h', payload: { n: 1 }, headers: { huge: 'h'.repeat(30_000) } },
    { aggregateId: 'h', payload: { n: 2 } },
  ])
  await consumer.waitFor(2)
  const dead = consumer.messages.find((m) => m.headers.id === big)
  expect(dead?.topic).toBe(`${prefix}.order.dlq`)
  expect(dead?.headers.truncated).toBe('value,headers')
  expect(dead?.headers.huge).toBeUndefined()
  expect(dead?.headers.error).toMatch(/too large/)
  expect(consumer.messages.find((m) => m.headers.id === fine)?.topic).toBe(`${prefix}.order`)
  expect(worker.child.exitCode).toBeNull()
})

test('SIGTERM during start-up (Kafka not reachable yet) exits 0 promptly', async () => {
  const worker = await startWorker({
    KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
    OUTBOX_STARTUP_TIMEOUT_MS: '120000',
  })
  await worker.waitForLog(/Kafka at \S+ not reachable yet/)
  const signalledAt = Date.now()
  expect(await worker.kill('SIGTERM')).toBe(0)
  expect(Date.now() - signalledAt).toBeLessThan(5_000)
})

test('a publication whose name has capitals streams (pgoutput folds unquoted names)', async () => {
  await db.query('CREATE PUBLICATION "OrdersOutbox" FOR TABLE outbox WITH (publish = \'insert\')')
  const worker = await startWorker({ OUTBOX_PUBLICATION: 'OrdersOutbox' })
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await consume([`${prefix}.order`])
  const [id] = await insertEvents(db, [{ aggregateId: 'caps' }])
  const [message] = await consumer.waitFor(1, 20_000)
  expect(message?.headers.id).toBe(id)
})

test('a first start that cannot reach Kafka leaves no replication slot behind (it would pin WAL forever)', async () => {
  const worker = await startWorker({
    KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
    OUTBOX_STARTUP_TIMEOUT_MS: '1500',
  })
  expect(await worker.exited).toBe(3)
  const slots = await db.query('SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1', [slot])
  expect(slots).toEqual([])
})
