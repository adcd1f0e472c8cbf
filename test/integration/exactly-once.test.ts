/**
 * Exactly-once delivery end to end (the real CLI, real PostgreSQL and Kafka): a replay of what Kafka
 * already has is skipped by the checkpoint, and a worker that lost the slot can commit nothing.
 * The consumers read with read_committed (kafkajs's default), as docs/exactly-once.md tells users to.
 */
import { describe, expect, inject, test } from 'vitest'
import { checkpointRecord } from '../../worker/delivery/exactly-once/checkpoint.js'
import { createKafkajsTransactionalPublisher } from '../../worker/delivery/exactly-once/kafkajs-transactional.js'
import { createPlatformaticTransactionalPublisher } from '../../worker/delivery/exactly-once/platformatic-transactional.js'
import { identifyServer } from '../../worker/delivery/exactly-once/server-identity.js'
import { classifyTransactionError } from '../../worker/delivery/exactly-once/transactional-publisher.js'
import { createWorker } from '../../worker/index.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { parseLsn } from '../../worker/stream/lsn.js'
import { type TestDatabase, uniqueName } from '../helpers/database.js'
import { type ReceivedMessage, testKafka } from '../helpers/kafka.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { proxyDatabaseUrl } from '../helpers/proxied-services.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { currentLsn, insertEvents, slotReplays, type WorkerProcess, waitForConfirmed } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
let slot: string
let prefix: string
const { startWorker, consume, useKafkaClient } = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
})

const exactlyOnce = (transactionalId: string) => ({
  OUTBOX_DELIVERY: 'exactly-once',
  OUTBOX_TRANSACTIONAL_ID: transactionalId,
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

/** Waits until the killed worker's walsender has let the slot go, then drops it. */
async function dropSlot(name: string) {
  for (let i = 0; ; i++) {
    try {
      await db.query('SELECT pg_drop_replication_slot($1)', [name])
      return
    } catch (error) {
      if (i >= 100) throw error
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/**
 * A replay without a crash to wait for: a copy of the slot, made before the events, takes the
 * slot's place (same name) after the first worker is killed, so the slot starts from before them,
 * as one does whose confirmation was lost (kill -9 after Kafka's commit, a PostgreSQL restart).
 */
async function rewindSlot(saved: string) {
  await dropSlot(slot)
  await db.query('SELECT pg_copy_logical_replication_slot($1, $2)', [saved, slot])
  await db.query('SELECT pg_drop_replication_slot($1)', [saved])
}

async function saveSlot(): Promise<string> {
  const saved = uniqueName('saved')
  await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [saved])
  return saved
}

async function replayAfterRewind(delivery: 'exactly-once' | 'at-least-once') {
  const transactionalId = uniqueName('txid')
  const env = delivery === 'exactly-once' ? exactlyOnce(transactionalId) : {}
  const saved = await saveSlot()
  const consumer = await consume([`${prefix}.order`], { create: true })
  const first = await startWorker(env)
  await first.waitForLog(/"msg":"streaming"/)
  const before = await insertBatches(10, 5, 'before')
  await consumer.waitFor(50)
  await first.kill()
  await rewindSlot(saved)
  const second = await startWorker(env)
  await second.waitForLog(/"msg":"streaming"/)
  const after = await insertBatches(2, 5, 'after')
  await waitForConfirmed(db, slot, await currentLsn(db), 60_000)
  await consumer.waitFor(60)
  // Anything published twice would have arrived with or before the events after it.
  await new Promise((r) => setTimeout(r, 1000))
  return { ids: [...before, ...after], copies: copiesOf(consumer.messages), second }
}

/** The worker's configuration with exactly-once delivery and the transactional id given, on this file's slot. */
function exactlyOnceConfig(transactionalId: string): WorkerConfig {
  return {
    ...DEFAULTS,
    databaseUrl: db.url,
    kafkaBrokers: inject('kafkaBrokers'),
    delivery: 'exactly-once',
    transactionalId,
    slot,
  }
}

// Every scenario with each client's transactions: the workers, and the zombie's producer.
describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  useKafkaClient(client)
  const createTransactionalPublisher =
    client === 'kafkajs' ? createKafkajsTransactionalPublisher : createPlatformaticTransactionalPublisher

  test('exactly-once: a replay of transactions Kafka already has publishes none of them again', async () => {
    const { ids, copies, second } = await replayAfterRewind('exactly-once')
    expect(ids).toHaveLength(60)
    for (const id of ids) expect(copies.get(id), id).toBe(1)
    expect(copies.size).toBe(60)
    // The replayed transactions were recognised and skipped, not merely lost on the way.
    const skipped = second.output
      .filter((line) => line.includes('skipped events already in Kafka'))
      .reduce((sum, line) => sum + (JSON.parse(line) as { events: number }).events, 0)
    expect(skipped).toBe(50)
  }, 120_000)

  test('at-least-once, the same replay publishes each replayed event again (what exactly-once removes)', async () => {
    const { ids, copies } = await replayAfterRewind('at-least-once')
    expect(ids.filter((id) => copies.get(id) === 2)).toHaveLength(50)
  }, 120_000)

  test('a worker that lost the slot is fenced by the one that took over: nothing it sends afterwards is committed', async () => {
    const transactionalId = uniqueName('txid')
    const topic = `${prefix}.order`
    const consumer = await consume([topic], { create: true })
    // The zombie: a transactional producer initialized with the id, as a worker that then froze.
    const zombie = createTransactionalPublisher(exactlyOnceConfig(transactionalId), silentLogger)
    await zombie.connect()
    try {
      const worker = await startWorker(exactlyOnce(transactionalId))
      await worker.waitForLog(/"msg":"streaming"/)
      const ids = await insertBatches(4, 5, 'live')
      await worker.waitForLog(/exactly-once: transactions ending at or before the checkpoint/)
      await consumer.waitFor(20)
      const record = { topic, key: 'zombie', value: '{}', headers: { id: 'zombie' }, timestamp: String(Date.now()) }
      const checkpoint = {
        ...record,
        topic: `${transactionalId}.checkpoint`,
        key: transactionalId,
        value: '{"lsn":"FF/0"}',
      }
      const error = await zombie.commitTransaction([[record]], checkpoint).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeDefined()
      expect(classifyTransactionError(error).kind).toBe('fenced')
      const more = await insertBatches(2, 5, 'later')
      await consumer.waitFor(30)
      await new Promise((r) => setTimeout(r, 1000))
      const copies = copiesOf(consumer.messages)
      expect(copies.has('zombie')).toBe(false)
      for (const id of [...ids, ...more]) expect(copies.get(id)).toBe(1)
    } finally {
      await zombie.disconnect()
    }
  }, 120_000)

  test('exactly-once: a transaction larger than --buffer-events is read to its COMMIT and delivered whole', async () => {
    const consumer = await consume([`${prefix}.order`], { create: true })
    const worker = await startWorker({ ...exactlyOnce(uniqueName('txid')), OUTBOX_BUFFER_EVENTS: '10' })
    await worker.waitForLog(/"msg":"streaming"/)
    // About 2 MB of WAL: many socket reads, so reading would pause after the first ones.
    const rows = await db.query<{ id: string }>(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
     SELECT gen_random_uuid(), 'order', (g % 3)::text, 'order.created', json_build_object('pad', repeat('x', 500))::jsonb
       FROM generate_series(1, 3000) g RETURNING id`,
    )
    const ids = rows.map((r) => r.id)
    await waitForConfirmed(db, slot, await currentLsn(db), 60_000)
    await consumer.waitFor(3000)
    const copies = copiesOf(consumer.messages)
    for (const id of ids) expect(copies.get(id)).toBe(1)
  }, 120_000)

  /** How many events the worker skipped as already in Kafka (from its log). */
  function skippedEvents(worker: WorkerProcess): number {
    return worker.output
      .filter((line) => line.includes('exactly-once: skipped events already in Kafka'))
      .reduce((sum, line) => sum + (JSON.parse(line) as { events: number }).events, 0)
  }

  test('another transactional id with a transaction open on a shared --checkpoint-topic: the worker waits for it rather than trust an older checkpoint, and publishes nothing twice', async () => {
    const checkpointTopic = uniqueName('cp')
    const env = { ...exactlyOnce(uniqueName('txid')), OUTBOX_CHECKPOINT_TOPIC: checkpointTopic }
    const consumer = await consume([`${prefix}.order`], { create: true })
    const saved = await saveSlot()
    const first = await startWorker(env)
    await first.waitForLog(/"msg":"streaming"/)
    const early = await insertBatches(1, 5, 'early')
    await consumer.waitFor(5)
    // Another worker sharing the topic, its checkpoint written and its commit not done (killed,
    // partitioned, slow): read_committed readers stop at it, so our later checkpoints are hidden.
    const other = testKafka(inject('kafkaBrokers')).producer({
      transactionalId: uniqueName('other'),
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: 300_000,
    })
    await other.connect()
    const open = await other.transaction()
    try {
      await open.send({ topic: checkpointTopic, messages: [{ key: 'other', value: '{"lsn":"0/1"}' }] })
      const before = await insertBatches(10, 5, 'before')
      await consumer.waitFor(55)
      await first.kill()
      await rewindSlot(saved)
      const second = await startWorker(env)
      await second.waitForLog(/"msg":"streaming"/)
      // The replayed events wait on the checkpoint read, which waits while the other transaction
      // is open: after 3 s, still no checkpoint taken and nothing published. (A fixed window: the
      // waiting itself is what is checked.)
      await new Promise((r) => setTimeout(r, 3000))
      const checkpointTaken = /exactly-once: transactions ending at or before the checkpoint/
      expect(second.output.filter((line) => checkpointTaken.test(line))).toEqual([])
      expect(await second.metric('outbox_events_published_total')).toBe(0)
      expect(consumer.messages).toHaveLength(55)
      await open.abort()
      // Once it ends, the read reaches our latest checkpoint: the 55 replayed events are skipped.
      await second.waitForLog(checkpointTaken, 30_000)
      await waitUntil('the replayed events skipped', async () => skippedEvents(second) === 55, 30_000).catch(
        (error) => {
          throw new Error(`${(error as Error).message}: ${skippedEvents(second)} skipped`)
        },
      )
      const after = await insertBatches(2, 5, 'after')
      // A marker behind every key's events (one key, one partition): once each has arrived, any
      // copy of an event before it would have too.
      const markers = await insertEvents(
        db,
        ['early', 'before', 'after'].flatMap((tag) => [0, 1, 2].map((i) => ({ aggregateId: `${tag}-${i}` }))),
      )
      await waitUntil(
        'the markers',
        async () => markers.every((id) => consumer.messages.some((m) => m.headers.id === id)),
        60_000,
      )
      const copies = copiesOf(consumer.messages)
      const notOnce = [...early, ...before, ...after].filter((id) => copies.get(id) !== 1)
      expect(notOnce, `${notOnce.length} of 65 events not exactly once`).toEqual([])
    } finally {
      await open.abort().catch(() => {})
      await other.disconnect()
    }
  }, 180_000)

  test.each<[string, { slot?: string; lsn?: string; system?: string }, RegExp]>([
    ['written for another slot', { slot: 'another_slot' }, /written for the slot "another_slot"/],
    ['ahead of the WAL (a restored database, a promoted standby)', { lsn: 'FF/0' }, /ahead of this server's WAL/],
    ['of another PostgreSQL system', { system: '12345' }, /written for the PostgreSQL system 12345/],
  ])(
    'a checkpoint %s stops the worker (exit 3) naming the fix, and confirms nothing past events Kafka lacks',
    async (_, differs, message) => {
      const transactionalId = uniqueName('txid')
      const config = exactlyOnceConfig(transactionalId)
      const ours = checkpointRecord(
        { ...config, slot: differs.slot ?? slot },
        parseLsn(differs.lsn ?? '0/1'),
        await identifyServer(config),
      )
      const foreign = { ...ours, value: JSON.stringify({ ...JSON.parse(ours.value as string), ...differs }) }
      const previous = createKafkajsTransactionalPublisher(config, silentLogger)
      await previous.connect()
      await previous.commitTransaction([], foreign)
      await previous.disconnect()

      const worker = await startWorker(exactlyOnce(transactionalId))
      await worker.waitForLog(/"msg":"streaming"/)
      const [first] = await insertBatches(2, 5, 'new')
      expect(await worker.exited).toBe(3)
      expect(worker.output.join('\n')).toMatch(message)
      expect(worker.output.join('\n')).toMatch(/new --transactional-id/)
      expect(await slotReplays(db, slot, first as string)).toBe(true)
    },
    120_000,
  )

  test('a small transaction, then one larger than --buffer-events behind it: reading resumes for its COMMIT and all are delivered', async () => {
    const consumer = await consume([`${prefix}.order`], { create: true })
    const worker = await startWorker({ ...exactlyOnce(uniqueName('txid')), OUTBOX_BUFFER_EVENTS: '10' })
    await worker.waitForLog(/"msg":"streaming"/)
    // T1 is taken at once (the first Kafka transaction also reads the checkpoint: seconds), T2 waits,
    // committed, at the head of the queue while T3 is read: the buffer fills and reading pauses.
    await insertEvents(db, [{ aggregateId: 'a' }])
    await insertEvents(db, [{ aggregateId: 'b' }])
    await db.query(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
     SELECT gen_random_uuid(), 'order', (g % 3)::text, 'order.created', json_build_object('pad', repeat('x', 500))::jsonb
       FROM generate_series(1, 3000) g`,
    )
    await waitForConfirmed(db, slot, await currentLsn(db), 45_000)
    await consumer.waitFor(3002)
    expect(consumer.messages).toHaveLength(3002)
  }, 120_000)

  test('the server check at session start ends in a PostgreSQL error when PostgreSQL stops answering, never in a hang', async () => {
    const { url, proxy } = await proxyDatabaseUrl(db.url)
    try {
      proxy.blackhole()
      const started = Date.now()
      await expect(identifyServer({ ...DEFAULTS, databaseUrl: url, kafkaBrokers: [] })).rejects.toThrow(
        /PostgreSQL: IDENTIFY_SYSTEM on a replication connection failed/,
      )
      // The connect timeout (10 s), not the test's: a delivery waiting on it would end its session.
      expect(Date.now() - started).toBeLessThan(30_000)
    } finally {
      await proxy.close()
    }
  })

  test("the default transactional id is the slot's, however DATABASE_URL spells the database: two spellings share one id and checkpoint", async () => {
    // A role named like the database: a URL without a database name connects to the user's own.
    await db.query(`CREATE ROLE "${db.name}" LOGIN REPLICATION SUPERUSER`)
    const direct = new URL(db.url)
    const spellings = [db.url, `postgresql://${db.name}@localhost:${direct.port}?application_name=another-spelling`]
    const consumer = await consume([`${prefix}.order`])
    const ids: (string | undefined)[] = []
    try {
      for (const [n, databaseUrl] of spellings.entries()) {
        const worker = createWorker({
          databaseUrl,
          kafkaBrokers: inject('kafkaBrokers'),
          slot,
          topicTemplate: `${prefix}.{aggregateType}`,
          delivery: 'exactly-once',
          healthPort: 0,
        })
        try {
          await worker.start()
          await insertEvents(db, [{ aggregateId: `s${n}` }])
          await consumer.waitFor(n + 1, 30_000)
          ids.push(worker.config.transactionalId)
        } finally {
          await worker.stop()
        }
      }
    } finally {
      await db.query(`DROP ROLE "${db.name}"`)
    }
    const { system } = await identifyServer({ ...DEFAULTS, databaseUrl: db.url, kafkaBrokers: [] })
    const expected = `prisma-outbox.${system}.${db.name}.${slot}`
    // What Kafka holds: one checkpoint topic for this slot, that of the id both workers used.
    const admin = testKafka(inject('kafkaBrokers')).admin()
    await admin.connect()
    const checkpointTopics = (await admin.listTopics()).filter((t) => t.endsWith(`.${slot}.checkpoint`))
    await admin.disconnect()
    expect(checkpointTopics).toEqual([`${expected}.checkpoint`])
    expect(ids).toEqual([expected, expected])
  })
})
