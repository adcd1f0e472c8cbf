/**
 * Kafka goes away while events are committed. The worker must not confirm past them, must stop
 * reading once its buffer is full (bounded memory), must report not-ready, and must deliver
 * everything once Kafka is back. Uses a broker of its own, since it stops it.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject, test } from 'vitest'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics } from '../helpers/kafka.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import {
  confirmedLsn,
  currentLsn,
  insertEvents,
  spawnWorker,
  type WorkerProcess,
  waitForConfirmed,
} from '../helpers/worker.js'
import { type LocalKafka, startLocalKafka } from '../services/local-kafka.js'
import { waitUntil } from '../services/ports.js'

let kafka: LocalKafka
let db: TestDatabase
let worker: WorkerProcess | undefined

beforeAll(async () => {
  kafka = await startLocalKafka()
})
// A database per client: a new slot publishes what the table holds (the initial snapshot), so a
// second run on the first one's table would receive its events too.
beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
})
afterEach(async () => {
  await worker?.kill()
  worker = undefined
  await db?.dispose()
})
afterAll(async () => {
  await kafka?.dispose()
})

test.each(
  KAFKA_CLIENTS,
)('Kafka outage (%s): nothing confirmed past unpublished commits, reading pauses, not ready; all delivered after', async (client) => {
  const slot = uniqueName('slot')
  const topic = uniqueName('outage')
  worker = await spawnWorker({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: kafka.brokers.join(','),
    OUTBOX_SLOT: slot,
    OUTBOX_TOPIC: topic,
    OUTBOX_BUFFER_EVENTS: '200',
    OUTBOX_KAFKA_CLIENT: client,
  })
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await collectTopics(kafka.brokers, [topic])

  const warmup = await insertEvents(
    db,
    Array.from({ length: 10 }, (_, i) => ({ aggregateId: `w${i}` })),
  )
  await consumer.waitFor(10)
  await waitUntil('ready', () => worker?.ready() ?? Promise.resolve(false), 10_000)
  expect(await worker.metric('outbox_events_published_total')).toBe(10)
  expect(await worker.metric('outbox_batch_size_count')).toBeGreaterThan(0)
  expect(await worker.metric('outbox_commit_to_ack_seconds_count')).toBe(10)
  // Commit to acknowledgement took some time, and not minutes (the commit time is decoded right).
  const latencySum = (await worker.metric('outbox_commit_to_ack_seconds_sum')) ?? 0
  expect(latencySum).toBeGreaterThan(0)
  expect(latencySum / 10).toBeLessThan(5)
  expect(await worker.metric('outbox_confirmed_lsn')).toBeGreaterThan(0)
  expect(await worker.metric('outbox_streaming')).toBe(1)

  await kafka.stop()
  const committed: string[] = [...warmup]
  // The slot may confirm a position inside the first outage transaction (a keepalive sent
  // while the server read its inserts, before its commit): logical decoding still sends every
  // transaction that commits after the confirmed position. Confirming its commit would lose it.
  let firstOutageCommit = 0n
  for (let t = 0; t < 50; t++) {
    committed.push(
      ...(await insertEvents(
        db,
        Array.from({ length: 100 }, (_, i) => ({ aggregateId: `k${i % 13}`, payload: { t, i, pad: 'x'.repeat(100) } })),
      )),
    )
    if (t === 0) firstOutageCommit = await currentLsn(db)
  }
  await waitUntil('not ready while Kafka is down', async () => !(await worker?.ready()), 30_000)
  expect(await worker.metric('outbox_kafka_connected')).toBe(0)
  // Long enough for several failed sends and several status updates.
  await new Promise((r) => setTimeout(r, 4000))
  expect(await confirmedLsn(db, slot)).toBeLessThan(firstOutageCommit)
  const buffered = (await worker.metric('outbox_buffered_events')) ?? Number.POSITIVE_INFINITY
  // 5,000 committed; reading stopped near the 200-event limit (plus what one socket read held).
  expect(buffered).toBeGreaterThanOrEqual(200)
  expect(buffered).toBeLessThan(1000)
  expect(await worker.metric('outbox_slot_lag_bytes')).toBeGreaterThan(0)

  const endLsn = await currentLsn(db)
  await kafka.start()
  await waitUntil(
    'every committed event delivered',
    async () => new Set(consumer.messages.map((m) => m.headers.id)).size >= committed.length,
    90_000,
  ).catch(async (error) => {
    // Whose stall: the worker's (published less) or the checking consumer's (received less)?
    const published = await worker?.metric('outbox_events_published_total').catch(() => undefined)
    const received = new Set(consumer.messages.map((m) => m.headers.id)).size
    throw new Error(
      `${(error as Error).message}: committed ${committed.length}, worker published ${published}, consumer received ${received}\n--- worker output ---\n${worker?.output.slice(-40).join('\n')}`,
    )
  })
  await waitForConfirmed(db, slot, endLsn)
  expect(new Set(consumer.messages.map((m) => m.headers.id))).toEqual(new Set(committed))
  await waitUntil('ready again', () => worker?.ready() ?? Promise.resolve(false), 10_000)
  await consumer.stop()
  expect(await worker.kill('SIGTERM')).toBe(0)
})
