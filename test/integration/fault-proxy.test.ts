/**
 * The fault proxy in front of the real services, with plain clients (no product code): what a
 * fault scenario relies on. Kafka's clients reach the broker only through the proxy (the broker
 * advertises it); a blackhole holds a request without failing it; restore delivers it.
 */
import { Kafka, logLevel } from 'kafkajs'
import pg from 'pg'
import { afterAll, expect, inject, test } from 'vitest'
import { uniqueName } from '../helpers/database.js'
import { collectTopics, ensureTopics } from '../helpers/kafka.js'
import { type ProxiedKafka, proxyDatabaseUrl, startKafkaBehindProxy } from '../helpers/proxied-services.js'

const cleanups: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** 'pending' if the promise has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  return await Promise.race([promise, sleep(ms).then(() => 'pending' as const)])
}

test('kafka behind the proxy: sends cross it, a blackhole holds a send, restore completes it', async () => {
  const kafka: ProxiedKafka = await startKafkaBehindProxy({ autoCreateTopics: false })
  cleanups.push(() => kafka.dispose())
  const topic = uniqueName('proxied')
  await ensureTopics(kafka.directBrokers, [topic])
  const consumer = await collectTopics(kafka.directBrokers, [topic])
  cleanups.push(() => consumer.stop())

  const client = new Kafka({ clientId: 'proxy-test', brokers: kafka.brokers, logLevel: logLevel.NOTHING })
  const producer = client.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true })
  await producer.connect()
  cleanups.push(() => producer.disconnect())
  await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'first' }] })
  expect(kafka.proxy.stats().bytesToUpstream).toBeGreaterThan(0)

  // Auto-creation is off: a send to a topic that does not exist is refused, and creates nothing.
  const missing = uniqueName('missing')
  const strict = new Kafka({
    clientId: 'proxy-test-strict',
    brokers: kafka.brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  }).producer({ allowAutoTopicCreation: true })
  await strict.connect()
  cleanups.push(() => strict.disconnect())
  await expect(strict.send({ topic: missing, messages: [{ value: 'x' }] })).rejects.toMatchObject({
    cause: { type: 'UNKNOWN_TOPIC_OR_PARTITION' },
  })

  kafka.proxy.blackhole()
  const held = producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'second' }] })
  held.catch(() => {}) // asserted below; keep an early rejection from being reported as unhandled
  expect(await within(held, 1500)).toBe('pending')
  expect(consumer.messages.map((m) => m.value)).toEqual(['first'])

  kafka.proxy.restore()
  await held
  await consumer.waitFor(2, 20_000)
  expect(consumer.messages.map((m) => m.value)).toEqual(['first', 'second'])

  const admin = client.admin()
  await admin.connect()
  cleanups.push(() => admin.disconnect())
  expect(await admin.listTopics()).not.toContain(missing)
})

test('postgres behind the proxy: a blackholed query hangs without an error until restore or a client timeout', async () => {
  const { url, proxy } = await proxyDatabaseUrl(inject('databaseUrl'))
  cleanups.push(() => proxy.close())
  const client = new pg.Client({ connectionString: url })
  const timed = new pg.Client({ connectionString: url, query_timeout: 500 })
  await client.connect()
  await timed.connect()
  cleanups.push(
    () => client.end(),
    () => timed.end(),
  )
  expect((await client.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }])
  expect(proxy.stats().accepted).toBe(2)

  proxy.blackhole()
  const held = client.query('SELECT 2 AS n')
  held.catch(() => {})
  expect(await within(held, 1000)).toBe('pending')
  await expect(timed.query('SELECT 3')).rejects.toThrow(/timeout/i)

  proxy.restore()
  expect((await held).rows).toEqual([{ n: 2 }])
})
