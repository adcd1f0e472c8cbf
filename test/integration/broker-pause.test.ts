/**
 * A broker that hangs (SIGSTOP: its sockets stay open, nothing answers) while events are pending.
 * Readiness must leave 200 within --ready-send-timeout and come back after SIGCONT, the slot lag
 * must keep growing while reading is paused, liveness must hold (an outage is no wedge), and
 * nothing may be lost. Uses a broker of its own, since it freezes it.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject, test } from 'vitest'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics } from '../helpers/kafka.js'
import { insertEvents, spawnWorker, type WorkerProcess } from '../helpers/worker.js'
import { type PausableKafka, processState, startLocalKafka } from '../services/local-kafka.js'
import { waitUntil } from '../services/ports.js'

let kafka: PausableKafka
let db: TestDatabase
let worker: WorkerProcess | undefined

beforeAll(async () => {
  kafka = await startLocalKafka()
})
beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
})
afterEach(async () => {
  await kafka.resume()
  await worker?.kill()
  worker = undefined
  await db?.dispose()
})
afterAll(async () => {
  await kafka?.dispose()
})

const READY_SEND_TIMEOUT_MS = 3000

test('a hung broker (SIGSTOP) with events pending: not ready within the bound, lag keeps growing, alive; ready again after SIGCONT, nothing lost', async () => {
  const topic = uniqueName('hung')
  worker = await spawnWorker({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: kafka.brokers.join(','),
    OUTBOX_SLOT: uniqueName('slot'),
    OUTBOX_TOPIC: topic,
    OUTBOX_BUFFER_EVENTS: '200',
    OUTBOX_READY_SEND_TIMEOUT: `${READY_SEND_TIMEOUT_MS}ms`,
    // The lag is read from the server this often while reading is paused.
    OUTBOX_TABLE_CHECK_INTERVAL: '500ms',
  })
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await collectTopics(kafka.brokers, [topic])
  const committed = await insertEvents(db, [{ aggregateId: 'warm' }])
  await consumer.waitFor(1)
  await waitUntil('ready', () => worker?.ready() ?? Promise.resolve(false), 10_000)

  await kafka.pause()
  // The fault is real: the kernel shows the broker stopped.
  expect(processState(kafka.pid)).toBe('T')
  const pausedAt = Date.now()
  for (let t = 0; t < 10; t++)
    committed.push(
      ...(await insertEvents(
        db,
        Array.from({ length: 100 }, (_, i) => ({ aggregateId: `k${i % 7}`, payload: { t, i } })),
      )),
    )
  await waitUntil('not ready', async () => !(await worker?.ready()), READY_SEND_TIMEOUT_MS + 7000, 50)
  const notReadyAfter = Date.now() - pausedAt
  console.log(`not ready ${notReadyAfter} ms after the broker was stopped (bound ${READY_SEND_TIMEOUT_MS} ms)`)
  const status = await worker.status()
  expect(status).toMatchObject({ role: 'active', ready: false, live: true })
  expect(status.reason).toMatch(/Kafka has acknowledged nothing/)
  expect(await worker.live()).toBe(true)

  // Reading has paused (the buffer is full); the WAL written meanwhile still shows as lag.
  await waitUntil('reading paused', async () => ((await worker?.metric('outbox_buffered_events')) ?? 0) >= 200, 10_000)
  const lagBefore = (await worker.metric('outbox_slot_lag_bytes')) ?? 0
  for (let t = 0; t < 5; t++)
    committed.push(
      ...(await insertEvents(
        db,
        Array.from({ length: 100 }, (_, i) => ({ aggregateId: `k${i % 7}`, payload: { later: t, i } })),
      )),
    )
  await waitUntil(
    'the lag growing while reading is paused',
    async () => ((await worker?.metric('outbox_slot_lag_bytes')) ?? 0) > lagBefore,
    10_000,
  )
  expect(await worker.metric('outbox_buffered_events')).toBeLessThan(1000)
  expect(processState(kafka.pid)).toBe('T') // still hung throughout
  expect(await worker.live()).toBe(true)

  await kafka.resume()
  expect(processState(kafka.pid)).not.toBe('T')
  await waitUntil(
    'every committed event delivered',
    async () => {
      const seen = new Set(consumer.messages.map((m) => m.headers.id))
      return committed.every((id) => seen.has(id))
    },
    90_000,
  )
  await waitUntil('ready again', () => worker?.ready() ?? Promise.resolve(false), 30_000)
  await consumer.stop()
  expect(await worker.kill('SIGTERM')).toBe(0)
})
