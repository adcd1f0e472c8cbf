/**
 * The first deploy: events committed before the worker first created its slot, and while it
 * started, all reach Kafka, in order per aggregate (the initial snapshot, then the stream from
 * the slot's consistent point). A snapshot that does not complete leaves no slot behind, so the
 * next start redoes it.
 */
import { v7 as uuidv7 } from 'uuid'
import { expect, inject, test } from 'vitest'
import { adminQuery, type TestDatabase, uniqueName } from '../helpers/database.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
let slot: string
let prefix: string
const { startWorker, consume } = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
})

/** One event per transaction, with a UUIDv7 id as emit() gives it; returns the id. */
async function emit(aggregateId: string, n: number, topic?: string): Promise<string> {
  const id = uuidv7()
  await db.query(
    `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, topic) VALUES ($1, 'order', $2, 'order.created', $3, $4)`,
    [id, aggregateId, JSON.stringify({ n }), topic ?? null],
  )
  return id
}

async function slotExists(): Promise<boolean> {
  const rows = await adminQuery(inject('databaseUrl'), 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
    slot,
  ])
  return rows.length > 0
}

test('deploy race: events committed before the first start and during it all arrive, in order per aggregate', async () => {
  const consumer = await consume([`${prefix}.order`])
  const sent: { id: string; aggregate: string }[] = []
  let n = 0
  const emitOne = async () => {
    const aggregate = `agg${n % 5}`
    sent.push({ id: await emit(aggregate, n++), aggregate })
  }
  for (let i = 0; i < 300; i++) await emitOne()

  // The app keeps writing while the worker starts, creates its slot and publishes the snapshot.
  let writing = true
  const writer = (async () => {
    while (writing) await emitOne()
  })()
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/)
  // One writer at a time, as an app that orders an aggregate's events (two concurrent writers
  // of one aggregate have no order to keep).
  writing = false
  await writer
  for (let i = 0; i < 50; i++) await emitOne()

  await waitUntil(
    `all ${sent.length} events delivered`,
    async () => new Set(consumer.messages.map((m) => m.headers.id)).size >= sent.length,
    60_000,
  )
  expect(worker.output.join('\n')).toMatch(/initial snapshot: published \d+ rows already in the table/)
  const received = consumer.messages.map((m) => m.headers.id)
  expect(new Set(received)).toEqual(new Set(sent.map((e) => e.id)))
  expect(received.length).toBe(sent.length) // no overlap between the snapshot and the stream
  for (const aggregate of ['agg0', 'agg1', 'agg2', 'agg3', 'agg4']) {
    const expected = sent.filter((e) => e.aggregate === aggregate).map((e) => e.id)
    const got = consumer.messages.filter((m) => m.key === aggregate).map((m) => m.headers.id)
    expect(got).toEqual(expected)
  }
})

test('a snapshot that does not complete leaves no slot: the next start publishes the rows again', async () => {
  const consumer = await consume([`${prefix}.order`])
  const first = await emit('a', 1)
  const poison = await emit('a', 2, 'not a valid topic!')
  const failing = await startWorker({ OUTBOX_ON_POISON: 'stop' })
  expect(await failing.exited).toBe(4)
  expect(failing.output.join('\n')).toContain('initial snapshot did not complete: dropping the new slot')
  expect(await slotExists()).toBe(false)

  await db.query('DELETE FROM outbox WHERE id = $1', [poison])
  const worker = await startWorker({ OUTBOX_ON_POISON: 'stop' })
  await worker.waitForLog(/initial snapshot: published 1 rows/)
  await waitUntil('the first event', async () => consumer.messages.some((m) => m.headers.id === first), 30_000)
})

test('--snapshot never: the slot is created without publishing what the table holds', async () => {
  const consumer = await consume([`${prefix}.order`])
  const before = await emit('a', 1)
  const worker = await startWorker({ OUTBOX_SNAPSHOT: 'never' })
  await worker.waitForLog(/"msg":"streaming"/)
  const after = await emit('a', 2)
  await waitUntil(
    'the event after the start',
    async () => consumer.messages.some((m) => m.headers.id === after),
    30_000,
  )
  // A snapshot would have sent it first, on the same partition.
  expect(consumer.messages.map((m) => m.headers.id)).not.toContain(before)
  expect(worker.output.join('\n')).not.toMatch(/initial snapshot/)
})

test('a role that may not read the outbox table: exit 3 naming GRANT SELECT and --snapshot never; no slot left', async () => {
  const role = uniqueName('relay')
  await db.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'pw'`)
  try {
    const url = new URL(db.url)
    url.username = role
    url.password = 'pw'
    const worker = await startWorker({ DATABASE_URL: url.toString() })
    expect(await worker.exited).toBe(3)
    expect(worker.output.join('\n')).toContain('may not read the outbox table outbox for the initial snapshot')
    expect(worker.output.join('\n')).toContain('--snapshot never (OUTBOX_SNAPSHOT=never)')
    expect(await slotExists()).toBe(false)
  } finally {
    await adminQuery(inject('databaseUrl'), `DROP ROLE ${role}`)
  }
})
