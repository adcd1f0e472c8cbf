/**
 * Liveness (/healthz): a worker whose run loop is wedged is restarted; one waiting out an outage
 * is not. On real PostgreSQL, with a publisher that stands in for Kafka so that an outage and a
 * wedge can be made at will.
 */
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import { createWorker, type OutboxWorker, type Publisher, type WorkerStatus } from '../../worker/index.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { insertEvents } from '../helpers/worker.js'
import { freePort, waitUntil } from '../services/ports.js'

let db: TestDatabase
let worker: OutboxWorker | undefined
const kafka = { down: false, wedged: false, hung: false, disconnects: 0, release: () => {} }

beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  Object.assign(kafka, { down: false, wedged: false, hung: false, disconnects: 0 })
})
afterEach(async () => {
  kafka.release()
  await worker?.stop()
  worker = undefined
  await db.dispose()
})

/**
 * Kafka as the worker sees it: down (every send and metadata request fails, as when the brokers
 * are unreachable), or wedged (closing the producer never finishes, so the session that closes it
 * never ends: the run loop is stuck on a promise that never settles).
 */
function fakePublisher(): Publisher {
  return {
    connect: async () => {},
    send: async () => {
      // A send that never settles (a client without a request timeout, a lost callback).
      if (kafka.hung) await new Promise<void>((resolve) => (kafka.release = resolve))
      if (kafka.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), { code: 'ECONNREFUSED' })
    },
    unavailableTopics: async () => {
      if (kafka.down) throw new Error('connect ECONNREFUSED 127.0.0.1:9092')
      return []
    },
    disconnect: () => {
      kafka.disconnects++
      if (!kafka.wedged) return Promise.resolve()
      return new Promise<void>((resolve) => {
        kafka.release = resolve
      })
    },
  }
}

const LIVENESS_MS = 2000

/** A worker on this test's database with short bounds, publishing to the stand-in Kafka. */
function fakeKafkaWorker(port: number): OutboxWorker {
  return createWorker({
    databaseUrl: db.url,
    kafkaBrokers: ['127.0.0.1:9'],
    slot: uniqueName('slot'),
    healthPort: port,
    healthHost: '127.0.0.1',
    statusIntervalMs: 200,
    standbyPollMs: 200,
    retryInitialMs: 100,
    retryMaxMs: 300,
    livenessTimeoutMs: LIVENESS_MS,
    readySendTimeoutMs: 1000,
    createPublisher: fakePublisher,
  })
}

async function startFakeKafkaWorker(): Promise<{ worker: OutboxWorker; port: number }> {
  const port = await freePort()
  const started = fakeKafkaWorker(port)
  worker = started
  const streaming = new Promise<void>((resolve) => started.once('streaming', () => resolve()))
  await started.start()
  await streaming
  return { worker: started, port }
}

async function healthz(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/healthz`)).status
}

test("the status updates carry this clock's time: the server's reply_time, which a paused stream is judged by, is now", async () => {
  await startFakeKafkaWorker()
  await insertEvents(db, [{ aggregateId: 'o' }])
  let skewMs = Number.NaN
  await waitUntil(
    'a status update received',
    async () => {
      const [row] = await db.query<{ skew_ms: number | null }>(
        `SELECT (extract(epoch FROM r.reply_time - now()) * 1000)::float8 AS skew_ms
           FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
          WHERE s.database = current_database()`,
      )
      skewMs = Number(row?.skew_ms ?? Number.NaN)
      return Number.isFinite(skewMs)
    },
    10_000,
  )
  // The same machine's clock on both sides: within a status interval, not days.
  expect(Math.abs(skewMs)).toBeLessThan(5_000)
})

test('an outage is not a wedge: /healthz stays 200 while every send fails, /readyz is 503', async () => {
  const { port } = await startFakeKafkaWorker()
  kafka.down = true
  await insertEvents(db, [{ aggregateId: 'o' }])
  await waitUntil('not ready while Kafka is down', async () => !(await worker?.isReady()), 10_000)
  // Three liveness periods of failed sends and retries: alive throughout.
  const until = Date.now() + 3 * LIVENESS_MS
  while (Date.now() < until) {
    expect(await healthz(port)).toBe(200)
    await new Promise((r) => setTimeout(r, 100))
  }
  kafka.down = false
  await waitUntil('ready once Kafka is back', async () => worker?.isReady() === true, 10_000)
})

test('a wedged run loop (a session that never finishes closing) makes /healthz 503 within --liveness-timeout', async () => {
  const { port } = await startFakeKafkaWorker()
  expect(await healthz(port)).toBe(200)
  kafka.disconnects = 0 // the start-up check's
  kafka.wedged = true
  // The session loses its replication connection; closing its producer never finishes.
  const rows = await db.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(active_pid) AS ok FROM pg_replication_slots WHERE database = current_database()`,
  )
  expect(rows[0]?.ok).toBe(true)
  await waitUntil('the session closing its producer', async () => kafka.disconnects > 0, 10_000)
  const wedgedAt = Date.now()
  await waitUntil('/healthz 503', async () => (await healthz(port)) === 503, LIVENESS_MS + 5000, 50)
  expect(Date.now() - wedgedAt).toBeLessThanOrEqual(LIVENESS_MS + 5000)
  const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as WorkerStatus
  expect(status.live).toBe(false)
  expect(status.reason).toMatch(/no progress .* wedged/)
})

test('slot creation waiting on a transaction open elsewhere is not a wedge: /healthz stays 200 past --liveness-timeout', async () => {
  // CREATE_REPLICATION_SLOT waits for every transaction that has an id to end (and a large
  // table's snapshot is as long and as quiet): a restart would only start it over.
  const open = await db.pool.connect()
  try {
    await open.query('BEGIN')
    await open.query('SELECT pg_current_xact_id()')
    const port = await freePort()
    worker = fakeKafkaWorker(port)
    const starting = worker.start()
    starting.catch(() => {})
    await waitUntil(
      'the slot being created',
      async () =>
        (await db.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'prisma-outbox initial snapshot'`))
          .length > 0,
      10_000,
    )
    const until = Date.now() + 3 * LIVENESS_MS
    while (Date.now() < until) {
      expect(await healthz(port)).toBe(200)
      await new Promise((r) => setTimeout(r, 100))
    }
    await open.query('COMMIT')
    await starting
    await waitUntil('streaming', async () => worker?.state === 'streaming', 10_000)
  } finally {
    await open.query('ROLLBACK').catch(() => {})
    open.release()
  }
})

test('a streaming session stuck on a send that never settles is a wedge: /healthz 503 within --liveness-timeout', async () => {
  const { port } = await startFakeKafkaWorker()
  kafka.hung = true
  await insertEvents(db, [{ aggregateId: 'h' }])
  const stuckAt = Date.now()
  await waitUntil('/healthz 503', async () => (await healthz(port)) === 503, LIVENESS_MS + 5000, 50)
  expect(Date.now() - stuckAt).toBeLessThanOrEqual(LIVENESS_MS + 5000)
})
