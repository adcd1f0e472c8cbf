/**
 * Faults of the network and of Kafka's setup, through fault proxies: a broker with topic
 * auto-creation off (the usual production setting), Kafka unreachable, a half-open replication
 * connection, a stop while reconnecting. Each test failed on the relay as first released.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest'
import { createWorker } from '../../worker/index.js'
import { adminQuery, type TestDatabase } from '../helpers/database.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { type ProxiedKafka, proxyDatabaseUrl, startKafkaBehindProxy } from '../helpers/proxied-services.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { insertEvents, type WorkerProcess } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

let kafka: ProxiedKafka
let db: TestDatabase
let slot: string
let prefix: string
const cleanups: (() => Promise<unknown>)[] = []
// Workers connect through the proxy; test code reads directly, so faults never touch it.
const fixture = relayTestFixture(
  (fresh) => {
    ;({ db, slot, prefix } = fresh)
  },
  { workerBrokers: () => kafka.brokers, readBrokers: () => kafka.directBrokers },
)
const startWorker = fixture.startWorker
const consume = (topics: string[]) => fixture.consume(topics, { create: true })

beforeAll(async () => {
  kafka = await startKafkaBehindProxy({ autoCreateTopics: false })
})
afterAll(async () => {
  await kafka?.dispose()
})
afterEach(async () => {
  kafka.proxy.restore()
  kafka.proxy.latency(0)
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
})

async function metricsText(worker: WorkerProcess): Promise<string> {
  return (await fetch(`http://127.0.0.1:${worker.healthPort}/metrics`)).text()
}

// Missing topics are found through each client's errors and metadata: once per client.
describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  fixture.useKafkaClient(client)

  test('a topic that does not exist (auto-creation off) is named within seconds, then dead-lettered; later events flow', async () => {
    const consumer = await consume([`${prefix}.order.dlq`, `${prefix}.other`])
    const worker = await startWorker({ OUTBOX_MISSING_TOPIC_TIMEOUT: '3s' })
    await worker.waitForLog(/"msg":"streaming"/)
    const [missing, later] = await insertEvents(db, [
      { aggregateId: 'm', payload: { n: 1 } },
      { aggregateId: 'm', payload: { n: 2 }, topic: `${prefix}.other` },
    ])
    await worker.waitForLog(new RegExp(`Kafka topic \\\\"${prefix}.order\\\\" does not exist`), 10_000)
    expect(await metricsText(worker)).toContain(`outbox_topic_unavailable{topic="${prefix}.order"} 1`)
    expect(await worker.ready()).toBe(false)
    await consumer.waitFor(2, 30_000)
    const dead = consumer.messages.find((m) => m.headers.id === missing)
    expect(dead?.topic).toBe(`${prefix}.order.dlq`)
    expect(dead?.headers.error).toContain(`"${prefix}.order" does not exist`)
    expect(consumer.messages.find((m) => m.headers.id === later)?.topic).toBe(`${prefix}.other`)
  })

  test('a topic that does not exist, with --on-poison stop: exit 4 naming the topic', async () => {
    const worker = await startWorker({ OUTBOX_MISSING_TOPIC_TIMEOUT: '2s', OUTBOX_ON_POISON: 'stop' })
    await worker.waitForLog(/"msg":"streaming"/)
    await insertEvents(db, [{ aggregateId: 'm' }])
    expect(await worker.exited).toBe(4)
    expect(worker.output.join('\n')).toContain(`${prefix}.order`)
  })
})

test('retention keeps rows that are not delivered yet, whatever their age', async () => {
  const consumer = await consume([`${prefix}.order`])
  const worker = await startWorker({ OUTBOX_RETENTION: '1s' })
  await worker.waitForLog(/"msg":"streaming"/)
  const [first] = await insertEvents(db, [{ aggregateId: 'r0' }])
  await consumer.waitFor(1, 20_000)
  // Kafka goes away: the next events cannot be delivered.
  kafka.proxy.refuse()
  kafka.proxy.resetAll()
  const undelivered = await insertEvents(db, [{ aggregateId: 'r1' }, { aggregateId: 'r2' }])
  await new Promise((r) => setTimeout(r, 4000))
  const left = (await db.query<{ id: string }>('SELECT id FROM outbox')).map((r) => r.id)
  expect(left).toEqual(expect.arrayContaining(undelivered))
  kafka.proxy.restore()
  await consumer.waitFor(3, 30_000)
  // Once delivered (and older than 1 s) they go, like the first one.
  await waitUntil('delivered rows deleted', async () => (await db.query('SELECT 1 FROM outbox')).length === 0, 20_000)
  expect(consumer.messages.map((m) => m.headers.id)).toEqual(expect.arrayContaining([first, ...undelivered]))
})

/** The time (ms since the epoch) of the worker's first log line matching `pattern`. */
function loggedAt(worker: WorkerProcess, pattern: RegExp): number {
  const line = worker.output.find((l) => pattern.test(l))
  if (!line) throw new Error(`no log line ${pattern}`)
  return Date.parse((JSON.parse(line) as { time: string }).time)
}

test('a half-open replication connection: the worker gives up before a standby can take the slot, and publishes nothing once the partition heals', async () => {
  await adminQuery(inject('databaseUrl'), `ALTER SYSTEM SET wal_sender_timeout = '3s'`)
  await adminQuery(inject('databaseUrl'), 'SELECT pg_reload_conf()')
  cleanups.push(async () => {
    await adminQuery(inject('databaseUrl'), 'ALTER SYSTEM RESET wal_sender_timeout')
    await adminQuery(inject('databaseUrl'), 'SELECT pg_reload_conf()')
  })
  const proxied = await proxyDatabaseUrl(db.url)
  cleanups.push(() => proxied.proxy.close())
  const consumer = await consume([`${prefix}.order`])
  const zombie = await startWorker({ DATABASE_URL: proxied.url })
  await zombie.waitForLog(/"msg":"streaming"/)
  const standby = await startWorker()
  await standby.waitForLog(/standing by/)
  await insertEvents(db, [{ aggregateId: 'z', payload: { n: 0 } }])
  await consumer.waitFor(1, 20_000)
  await waitUntil(
    'the zombie counts its publish',
    async () => (await zombie.metric('outbox_events_published_total')) === 1,
    5000,
  )

  proxied.proxy.blackhole()
  // Committed inside the partition: the zombie's walsender sends it into the partition, where it
  // waits for the healing; the standby must deliver it, the zombie must not.
  const during = await insertEvents(db, [{ aggregateId: 'z', payload: { n: 1 } }])
  await standby.waitForLog(/"msg":"streaming"/, 20_000)
  // Healed as soon as the standby holds the slot: a zombie still trusting its connection now
  // receives what the partition held.
  proxied.proxy.restore()
  // The zombie gave up (3/4 of wal_sender_timeout without a message) before the takeover.
  await zombie.waitForLog(/presumed dead/, 10_000)
  expect(loggedAt(zombie, /presumed dead/)).toBeLessThan(loggedAt(standby, /"msg":"streaming"/))
  expect(await zombie.ready()).toBe(false)
  // Healed for the zombie too: it reaches PostgreSQL again and finds the slot taken.
  await zombie.waitForLog(/standing by/, 10_000)
  const after = await insertEvents(db, [
    { aggregateId: 'z', payload: { n: 2 } },
    { aggregateId: 'z', payload: { n: 3 } },
  ])
  const expected = [...during, ...after]
  await waitUntil(
    'the standby delivers',
    async () => expected.every((id) => consumer.messages.some((m) => m.headers.id === id)),
    20_000,
  )
  // Once each: by the standby alone.
  for (const id of expected) expect(consumer.messages.filter((m) => m.headers.id === id)).toHaveLength(1)
  expect(await zombie.metric('outbox_events_published_total')).toBe(1)
})

test('only the replication connection half-open, the server last hearing from the worker a status interval before the cut: the worker publishes nothing once a standby has taken over', async () => {
  // wal_sender_timeout of this database only (its walsenders honour it); the status interval at
  // the most the worker accepts (a third), the case where the server stops hearing first.
  const walSenderTimeoutMs = 24_000
  const statusIntervalMs = walSenderTimeoutMs / 3
  await db.query(`ALTER DATABASE "${db.name}" SET wal_sender_timeout = '${walSenderTimeoutMs}ms'`)
  const proxied = await proxyDatabaseUrl(db.url)
  cleanups.push(() => proxied.proxy.close())
  const consumer = await consume([`${prefix}.order`])
  const zombie = await startWorker({
    DATABASE_URL: proxied.url,
    OUTBOX_STATUS_INTERVAL_MS: String(statusIntervalMs),
    OUTBOX_RETRY_MAX_MS: '200',
    // Reconnects to Kafka within a second once it is back.
    OUTBOX_KAFKA_CLIENT: 'kafkajs',
    // Its catalog check would end it only if one happened to run between the takeover and its
    // next send: the receive deadline is what must close the window, so the check stays out.
    OUTBOX_TABLE_CHECK_INTERVAL: '1h',
    // Once its session has ended it finds the slot busy: the standby, not it, takes the slot next.
    OUTBOX_STANDBY_POLL_MS: '120000',
  })
  await zombie.waitForLog(/"msg":"streaming"/)
  const standby = await startWorker({ KAFKA_BROKERS: kafka.directBrokers.join(',') })
  await standby.waitForLog(/standing by/)

  // Events all the time: the worker hears from the server up to the cut.
  let writing = true
  let n = 0
  const writer = (async () => {
    while (writing) {
      await insertEvents(db, [{ aggregateId: 'z', payload: { n: n++ } }])
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  cleanups.push(async () => {
    writing = false
    await writer
  })
  await consumer.waitFor(3, 20_000)
  // Kafka unreachable for the worker (refused, nothing held in flight): no acknowledgement, so
  // no confirmation; only its periodic status updates reach the server.
  kafka.proxy.refuse()
  kafka.proxy.resetAll()
  const replication = proxied.proxy.links().find((l) => l.head?.includes('replication\0database'))
  if (!replication) throw new Error('no replication connection through the proxy')
  // Cut just before the next status update: the server last heard from the worker a status
  // interval before the cut, while the worker hears from the server until the cut.
  const seen = replication.lastFromClient
  await waitUntil('a status update', async () => replication.lastFromClient > seen, statusIntervalMs * 2, 10)
  await new Promise((r) => setTimeout(r, replication.lastFromClient + statusIntervalMs - 300 - Date.now()))
  replication.blackhole()
  const cutAt = Date.now()

  await standby.waitForLog(/"msg":"streaming"/, walSenderTimeoutMs * 2)
  const tookOverAfterMs = Date.now() - cutAt
  const publishedByZombie = await zombie.metric('outbox_events_published_total')
  // Kafka back: a worker that has not given up publishes what it holds, as it would in production.
  kafka.proxy.restore()
  await new Promise((r) => setTimeout(r, 4000))
  // Then the replication connection heals: what the partition held is delivered (the server's
  // end of the connection, then its new walsender's data to a worker still reading).
  const { bytesToClient } = proxied.proxy.stats()
  proxied.proxy.restore()
  await waitUntil('the partition healed', async () => proxied.proxy.stats().bytesToClient > bytesToClient, 10_000)
  await new Promise((r) => setTimeout(r, 1000))
  writing = false
  await writer
  const last = await insertEvents(db, [{ aggregateId: 'z', payload: { n: n++ } }])
  await waitUntil('the standby delivers', async () => consumer.messages.some((m) => m.headers.id === last[0]), 20_000)
  // The case meant: the server freed the slot a status interval early (it last heard from the
  // worker that long before the cut), by its timeout.
  expect(tookOverAfterMs).toBeGreaterThan(walSenderTimeoutMs - statusIntervalMs - 1000)
  expect(tookOverAfterMs).toBeLessThan(walSenderTimeoutMs - statusIntervalMs / 2)
  // Healed for the worker too: it reaches PostgreSQL again (and finds the slot taken).
  await zombie.waitForLog(/standing by/, 10_000)
  expect(await zombie.metric('outbox_events_published_total')).toBe(publishedByZombie)
}, 120_000)

test('stop() while reconnecting resolves within the shutdown timeout (it used to go on to stream)', async () => {
  const proxied = await proxyDatabaseUrl(db.url)
  cleanups.push(() => proxied.proxy.close())
  const worker = createWorker({
    databaseUrl: proxied.url,
    kafkaBrokers: kafka.brokers,
    slot,
    topicTemplate: `${prefix}.{aggregateType}`,
    healthPort: 0,
    retryInitialMs: 50,
    retryMaxMs: 100,
    shutdownTimeoutMs: 2000,
  })
  cleanups.push(() => worker.stop())
  await worker.start()
  await waitUntil('streaming', async () => worker.state === 'streaming', 20_000)
  // Every round trip to PostgreSQL now takes a second: the reconnect's set-up is slow.
  proxied.proxy.latency(1000)
  proxied.proxy.resetAll()
  await waitUntil('reconnecting', async () => worker.state === 'reconnecting', 20_000)
  await new Promise((r) => setTimeout(r, 300))
  const stoppedAt = Date.now()
  await worker.stop()
  expect(Date.now() - stoppedAt).toBeLessThan(5_000)
  expect(worker.state).toBe('stopped')
}, 60_000)
