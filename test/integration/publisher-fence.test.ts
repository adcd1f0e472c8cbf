/**
 * The Publisher contract every client must keep, against a real broker behind the fault proxy: a
 * publisher that is disconnected writes nothing afterwards. Its send held by a partition settles
 * promptly, and no retry of the library opens a connection or sends a byte once disconnect()
 * has resolved (kafkajs reconnected on its own; @platformatic/kafka retries produce requests).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createPublisher } from '../../worker/delivery/create-publisher.js'
import { resolveConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { uniqueName } from '../helpers/database.js'
import { collectTopics, ensureTopics } from '../helpers/kafka.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { type ProxiedKafka, startKafkaBehindProxy } from '../helpers/proxied-services.js'

let kafka: ProxiedKafka
beforeAll(async () => {
  kafka = await startKafkaBehindProxy({ autoCreateTopics: false })
})
afterAll(async () => {
  await kafka?.dispose()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const record = (topic: string, value: string) => ({
  topic,
  key: 'k',
  value,
  headers: { id: value },
  timestamp: String(Date.now()),
})

describe.each(KAFKA_CLIENTS)('%s', (client) => {
  test('disconnected during a partition: the held send settles, and nothing more leaves the publisher', async () => {
    kafka.proxy.restore()
    const topic = uniqueName('fence')
    await ensureTopics(kafka.directBrokers, [topic])
    const consumer = await collectTopics(kafka.directBrokers, [topic])
    const config = resolveConfig({
      databaseUrl: 'postgresql://relay@127.0.0.1/app',
      kafkaBrokers: kafka.brokers,
      kafkaClient: client,
    })
    const publisher = createPublisher(config, silentLogger)
    try {
      await publisher.connect()
      await publisher.send([record(topic, 'first')])
      await consumer.waitFor(1, 20_000)

      kafka.proxy.blackhole()
      const held = publisher.send([record(topic, 'held')])
      held.catch(() => {}) // asserted below
      await sleep(1000)
      const stopped = Date.now()
      await publisher.disconnect()
      await expect(held).rejects.toBeDefined()
      expect(Date.now() - stopped).toBeLessThan(5000)

      // Whatever the library would retry or reconnect, it would do within these seconds.
      const after = kafka.proxy.stats()
      await sleep(3000)
      expect(kafka.proxy.stats().accepted).toBe(after.accepted)
      expect(kafka.proxy.stats().bytesFromClient).toBe(after.bytesFromClient)
      await expect(publisher.send([record(topic, 'late')])).rejects.toBeDefined()
      expect(kafka.proxy.stats().accepted).toBe(after.accepted)
      expect(kafka.proxy.stats().bytesFromClient).toBe(after.bytesFromClient)
    } finally {
      kafka.proxy.restore()
      await publisher.disconnect()
      await consumer.stop()
    }
  })
})
