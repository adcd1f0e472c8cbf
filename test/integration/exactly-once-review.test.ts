/**
 * Review of --delivery exactly-once, end to end (the real CLI, PostgreSQL and Kafka). Each test
 * asserts what the design promises; a failing test is a finding (see the review report).
 */
import { expect, inject, test } from 'vitest'
import { checkpointRecord } from '../../worker/delivery/exactly-once/checkpoint.js'
import { createKafkajsTransactionalPublisher } from '../../worker/delivery/exactly-once/kafkajs-transactional.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { parseLsn } from '../../worker/stream/lsn.js'
import { type TestDatabase, uniqueName } from '../helpers/database.js'
import { type ReceivedMessage, testKafka } from '../helpers/kafka.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { confirmedLsn, currentLsn, insertEvents, waitForConfirmed } from '../helpers/worker.js'

let db: TestDatabase
let slot: string
let prefix: string
const { startWorker, consume } = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
})

async function insertBatches(count: number, size: number, tag: string): Promise<string[]> {
  const ids: string[] = []
  for (let t = 0; t < count; t++) {
    const events = Array.from({ length: size }, (_, i) => ({ aggregateId: `${tag}-${i % 3}`, payload: { tag, t, i } }))
    ids.push(...(await insertEvents(db, events)))
  }
  return ids
}

function copiesOf(messages: ReceivedMessage[]): Map<string, number> {
  const copies = new Map<string, number>()
  for (const m of messages) copies.set(m.headers.id as string, (copies.get(m.headers.id as string) ?? 0) + 1)
  return copies
}

async function createCompactedTopic(topic: string) {
  const admin = testKafka(inject('kafkaBrokers')).admin()
  await admin.connect()
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    })
  } finally {
    await admin.disconnect()
  }
}

test('stale checkpoint: another transactional id with a transaction open on the checkpoint topic hides our last commits; the replay publishes them twice', async () => {
  const checkpointTopic = uniqueName('cp')
  const transactionalId = uniqueName('txid')
  const env = {
    OUTBOX_DELIVERY: 'exactly-once',
    OUTBOX_TRANSACTIONAL_ID: transactionalId,
    OUTBOX_CHECKPOINT_TOPIC: checkpointTopic,
  }
  await createCompactedTopic(checkpointTopic)
  // Another worker (another slot, another database: the default checkpoint topic is shared by
  // every worker on the cluster) with its checkpoint written and its commit not yet done: it was
  // killed, its host is partitioned, or it is merely slow. The LSO of the partition stays here.
  const other = testKafka(inject('kafkaBrokers')).producer({
    transactionalId: uniqueName('other'),
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 300_000,
  })
  await other.connect()
  const open = await other.transaction()
  await open.send({ topic: checkpointTopic, messages: [{ key: 'other', value: '{"lsn":"0/1"}' }] })
  try {
    // As in exactly-once.test.ts: a second slot, made before the events, replays them as a slot
    // whose confirmation was lost does (kill -9 after Kafka's commit, a PostgreSQL restart).
    const secondSlot = uniqueName('slot')
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [secondSlot])
    const consumer = await consume([`${prefix}.order`], { create: true })
    const first = await startWorker(env)
    await first.waitForLog(/"msg":"streaming"/)
    const before = await insertBatches(10, 5, 'before')
    await consumer.waitFor(50)
    await first.kill()
    const second = await startWorker({ ...env, OUTBOX_SLOT: secondSlot })
    await second.waitForLog(/"msg":"streaming"/)
    const after = await insertBatches(2, 5, 'after')
    await waitForConfirmed(db, secondSlot, await currentLsn(db), 60_000)
    await consumer.waitFor(60)
    await new Promise((r) => setTimeout(r, 1000))
    const checkpointLine = second.output.find((l) => l.includes('transactions ending at or before the checkpoint'))
    console.log('second worker:', checkpointLine)
    const copies = copiesOf(consumer.messages)
    const twice = [...before, ...after].filter((id) => copies.get(id) !== 1)
    expect(twice, `${twice.length} of 60 events not exactly once`).toEqual([])
  } finally {
    await open.abort().catch(() => {})
    await other.disconnect()
  }
}, 180_000)

test("a checkpoint that cannot be this database's (ahead of its WAL, written for another slot): events are skipped and the slot confirmed past them, though Kafka never had them", async () => {
  const checkpointTopic = uniqueName('cp')
  const transactionalId = uniqueName('txid')
  // What a restored database (PITR, a new cluster), a promoted asynchronous standby that missed
  // WAL the worker had already delivered, or a second slot given the same --transactional-id
  // leaves in the checkpoint topic: an LSN of another history.
  const otherHistory: WorkerConfig = {
    ...DEFAULTS,
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    delivery: 'exactly-once',
    transactionalId,
    checkpointTopic,
    slot: 'another_slot',
  }
  const previous = createKafkajsTransactionalPublisher(otherHistory, silentLogger)
  await previous.connect()
  await previous.commitTransaction([], checkpointRecord(otherHistory, parseLsn('FF/0')))
  await previous.disconnect()

  const consumer = await consume([`${prefix}.order`], { create: true })
  const worker = await startWorker({
    OUTBOX_DELIVERY: 'exactly-once',
    OUTBOX_TRANSACTIONAL_ID: transactionalId,
    OUTBOX_CHECKPOINT_TOPIC: checkpointTopic,
  })
  await worker.waitForLog(/"msg":"streaming"/)
  const ids = await insertBatches(2, 5, 'new')
  const end = await currentLsn(db)
  await waitForConfirmed(db, slot, end, 60_000)
  console.log(
    `slot ${slot} confirmed ${await confirmedLsn(db, slot)} >= ${end} (current WAL) while the checkpoint is FF/0 = ${parseLsn('FF/0')}`,
  )
  console.log(worker.output.filter((l) => l.includes('exactly-once')).join('\n'))
  const got = await consumer.waitFor(ids.length, 10_000).then(
    (m) => m.length,
    () => consumer.messages.length,
  )
  expect(got, 'events of this database in Kafka').toBe(ids.length)
}, 120_000)

test('a small transaction, then a large one: reading pauses on the full buffer and never resumes (nothing more is delivered or confirmed)', async () => {
  const consumer = await consume([`${prefix}.order`], { create: true })
  const worker = await startWorker({
    OUTBOX_DELIVERY: 'exactly-once',
    OUTBOX_TRANSACTIONAL_ID: uniqueName('txid'),
    OUTBOX_BUFFER_EVENTS: '10',
  })
  await worker.waitForLog(/"msg":"streaming"/)
  // T1 and T2: one event each. T1 is taken at once (the first Kafka transaction also connects
  // and reads the checkpoint: seconds), T2 waits, committed, at the head of the queue while T3
  // is read: the buffer fills with T3's rows and reading pauses.
  await insertEvents(db, [{ aggregateId: 'a' }])
  await insertEvents(db, [{ aggregateId: 'b' }])
  await db.query(
    `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
     SELECT gen_random_uuid(), 'order', (g % 3)::text, 'order.created', json_build_object('pad', repeat('x', 500))::jsonb
       FROM generate_series(1, 3000) g`,
  )
  const end = await currentLsn(db)
  const confirmed = await waitForConfirmed(db, slot, end, 45_000).then(
    () => 'confirmed',
    () => 'not confirmed in 45 s',
  )
  const state = {
    confirmed,
    delivered: consumer.messages.length,
    paused: worker.output.some((l) => l.includes('reading paused')),
    resumed: worker.output.some((l) => l.includes('reading resumed')),
    ready: await worker.ready(),
  }
  console.log(JSON.stringify(state))
  expect(state.confirmed).toBe('confirmed')
  expect(state.delivered).toBe(3002)
}, 120_000)
