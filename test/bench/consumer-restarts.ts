/**
 * `npm run bench -- --only=consumer-restarts`: how each Kafka client's consumer lives through
 * broker restarts, the measurement behind the inbox's choice of client (docs/consuming.md).
 * For each client, on a broker of its own: a producer sends 50 records every 100 ms; a plain
 * consumer of that client (no replacement logic of ours) counts what it receives; the broker is
 * stopped for 3 s and started again, three times. Then the producer stops and the consumer has 60 s
 * to catch up. Reported: records produced and consumed, whether and when it caught up, and what
 * the client said on the way (crashes, stream errors).
 */
import { Consumer as PlatformaticConsumer, stringDeserializers } from '@platformatic/kafka'
import { ensureTopics, testKafka } from '../helpers/kafka.js'
import { startLocalKafka } from '../services/local-kafka.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

export interface RestartResult {
  client: 'kafkajs' | 'platformatic'
  produced: number
  consumed: number
  caughtUp: boolean
  /** Seconds from the last broker start until the consumer had everything. */
  catchUpS: number | null
  events: string[]
}

interface PlainConsumer {
  seen: Set<string>
  events: string[]
  stop(): Promise<void>
}

async function kafkajsConsumer(brokers: string[], topic: string): Promise<PlainConsumer> {
  const seen = new Set<string>()
  const events: string[] = []
  const consumer = testKafka(brokers).consumer({
    groupId: `restarts-${topic}`,
    sessionTimeout: 6000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
  })
  consumer.on(consumer.events.CRASH, ({ payload }) =>
    events.push(`crash (restart: ${payload.restart}): ${payload.error.name}: ${payload.error.message}`),
  )
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      seen.add(`${partition}/${message.offset}`)
    },
  })
  return { seen, events, stop: () => consumer.disconnect() }
}

async function platformaticConsumer(brokers: string[], topic: string): Promise<PlainConsumer> {
  const seen = new Set<string>()
  const events: string[] = []
  const consumer = new PlatformaticConsumer({
    groupId: `restarts-${topic}`,
    clientId: 'restarts',
    bootstrapBrokers: brokers,
    deserializers: stringDeserializers,
    sessionTimeout: 6000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1000,
  })
  consumer.on('error', (error: Error) => events.push(`consumer error: ${error.message}`))
  const stream = await consumer.consume({
    topics: [topic],
    mode: 'committed',
    fallbackMode: 'earliest',
    autocommit: 500,
    maxWaitTime: 500,
  })
  stream.on('data', (message) => seen.add(`${message.partition}/${message.offset}`))
  stream.on('error', (error: Error) => events.push(`stream error: ${error.message}`))
  stream.on('close', () => events.push('stream closed'))
  return {
    seen,
    events,
    stop: async () => {
      await consumer.close(true)
    },
  }
}

export async function measureRestarts(client: RestartResult['client']): Promise<RestartResult> {
  const kafka = await startLocalKafka({ jvm: 'throughput' })
  try {
    const topic = `restarts-${client}-${Date.now()}`
    await ensureTopics(kafka.brokers, [topic])
    const consumer = await (client === 'kafkajs' ? kafkajsConsumer : platformaticConsumer)(kafka.brokers, topic)
    let produced = 0
    let producing = true
    const producer = testKafka(kafka.brokers).producer({ retry: { retries: 2 } })
    await producer.connect()
    const sending = (async () => {
      while (producing) {
        try {
          await producer.send({
            topic,
            messages: Array.from({ length: 50 }, (_, i) => ({ key: `k${i % 10}`, value: '{}' })),
          })
          produced += 50
        } catch {
          // the broker is down; the records were not acknowledged and are not counted
        }
        await sleep(100)
      }
    })()
    for (let restart = 0; restart < 3; restart++) {
      await sleep(5000)
      log(`${client}: broker stop ${restart + 1}/3`)
      await kafka.stop()
      await sleep(3000)
      await kafka.start()
    }
    const lastStart = Date.now()
    await sleep(5000)
    producing = false
    await sending
    await producer.disconnect().catch(() => {})
    while (consumer.seen.size < produced && Date.now() - lastStart < 65_000) await sleep(200)
    const caughtUp = consumer.seen.size >= produced
    const result: RestartResult = {
      client,
      produced,
      consumed: consumer.seen.size,
      caughtUp,
      catchUpS: caughtUp ? Math.round((Date.now() - lastStart) / 100) / 10 : null,
      events: [...new Set(consumer.events)].slice(0, 8),
    }
    await Promise.race([consumer.stop().catch(() => {}), sleep(5000)])
    return result
  } finally {
    await kafka.dispose()
  }
}
