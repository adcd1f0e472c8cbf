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

test('a half-open replication connection: the worker gives up before a standby can take the slot, and stops publishing', async () => {
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

  proxied.proxy.blackhole()
  // 3/4 of wal_sender_timeout without a message from the server.
  await zombie.waitForLog(/presumed dead/, 10_000)
  expect(await zombie.ready()).toBe(false)
  await standby.waitForLog(/"msg":"streaming"/, 20_000)
  const publishedByZombie = await zombie.metric('outbox_events_published_total')
  const ids = await insertEvents(db, [
    { aggregateId: 'z', payload: { n: 1 } },
    { aggregateId: 'z', payload: { n: 2 } },
  ])
  await waitUntil(
    'the standby delivers',
    async () => ids.every((id) => consumer.messages.some((m) => m.headers.id === id)),
    20_000,
  )
  expect(await zombie.metric('outbox_events_published_total')).toBe(publishedByZombie)
})

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
