/**
 * What the kafkajs transactional publisher asks kafkajs to send: every sendBatch of a Kafka
 * transaction holds one partition's records, one call at a time. kafkajs retries a sendBatch
 * spanning several brokers as a whole, sending again a broker's request still in flight under new
 * sequence numbers, which Kafka appends twice (see partition-requests.ts); with one partition per
 * call that cannot happen. kafkajs is replaced by a fake that places each record with the
 * partitioner the publisher gives it, over the partition count the fake producer knows, as
 * kafkajs's producer does; the partitioner itself is kafkajs's.
 */
import { beforeEach, expect, test, vi } from 'vitest'

interface Placed {
  topic: string
  partition: number
  explicit: number | undefined
  key: string
  id: string
}

const kafka = vi.hoisted(() => ({
  /** Each sendBatch call's records, as the fake producer placed them, in call order. */
  calls: [] as Placed[][],
  /** sendBatch calls under way at once, at most. */
  mostInFlight: 0,
  inFlight: 0,
  /** How many partitions the producer's own metadata lists per topic. */
  producerPartitions: 4,
  /** The same for the producer of one transactional id, where it differs. */
  producerPartitionsOf: {} as Record<string, number>,
  /** What the admin's metadata lists: a count, or 'fails' / 'hangs'. */
  adminPartitions: 4 as number | 'fails' | 'hangs',
  /** Metadata requests the admin was asked. */
  metadataReads: 0,
}))

vi.mock('kafkajs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('kafkajs')>()
  const partitionMetadata = (count: number) =>
    Array.from({ length: count }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 1 + (partitionId % 2),
      replicas: [1, 2],
      isr: [1, 2],
      offlineReplicas: [],
    }))
  class Kafka {
    admin() {
      return {
        connect: async () => {},
        disconnect: async () => {},
        listTopics: async () => ['shop.checkpoint'],
        fetchTopicMetadata: async ({ topics }: { topics: string[] }) => {
          kafka.metadataReads++
          const count = kafka.adminPartitions
          if (count === 'fails') throw new Error('There is no leader for this topic-partition')
          if (count === 'hangs') return new Promise(() => {})
          return { topics: topics.map((name) => ({ name, partitions: partitionMetadata(count) })) }
        },
      }
    }
    producer(options: { transactionalId: string; createPartitioner?: import('kafkajs').ICustomPartitioner }) {
      const partitioner = (options.createPartitioner ?? actual.Partitioners.DefaultPartitioner)()
      type Sent = { topic: string; messages: { key: string; partition?: number; headers: { id: string } }[] }
      return {
        connect: async () => {},
        disconnect: async () => {},
        transaction: async () => ({
          sendBatch: async ({ topicMessages }: { topicMessages: Sent[] }) => {
            kafka.inFlight++
            kafka.mostInFlight = Math.max(kafka.mostInFlight, kafka.inFlight)
            kafka.calls.push(
              topicMessages.flatMap(({ topic, messages }) =>
                messages.map((message) => ({
                  topic,
                  partition: partitioner({
                    topic,
                    partitionMetadata: partitionMetadata(
                      kafka.producerPartitionsOf[options.transactionalId] ?? kafka.producerPartitions,
                    ),
                    message: { ...message, value: null },
                  }),
                  explicit: message.partition,
                  key: message.key,
                  id: message.headers.id,
                })),
              ),
            )
            await new Promise((resolve) => setTimeout(resolve, 1))
            kafka.inFlight--
          },
          commit: async () => {},
          abort: async () => {},
        }),
      }
    }
  }
  return { ...actual, Kafka }
})

import { createKafkajsTransactionalPublisher } from '../../worker/delivery/exactly-once/kafkajs-transactional.js'
import type { KafkaRecord } from '../../worker/delivery/records.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'

const config: WorkerConfig = {
  ...DEFAULTS,
  delivery: 'exactly-once',
  databaseUrl: 'postgresql://x@127.0.0.1:1/shop',
  kafkaBrokers: ['127.0.0.1:1'],
  transactionalId: 'shop',
  checkpointTopic: 'shop.checkpoint',
}

/**
 * Thirty events of ten aggregates, interleaved as the outbox's transactions would be. Each test
 * has topics of its own: the partition counts the publisher learns are kept for the process.
 */
function events(topic: string): KafkaRecord[] {
  return Array.from({ length: 30 }, (_, i) => ({
    topic,
    key: `order-${i % 10}`,
    value: '{}',
    headers: { id: `${topic}-e${i}` },
    timestamp: '0',
  }))
}
const checkpoint: KafkaRecord = {
  topic: 'shop.checkpoint',
  key: 'shop',
  value: '{}',
  headers: { id: 'checkpoint' },
  timestamp: '0',
}

const partitionsPerCall = () => kafka.calls.map((call) => new Set(call.map((m) => `${m.topic}/${m.partition}`)).size)
const ids = (records: KafkaRecord[]) => records.map((r) => r.headers.id)

beforeEach(() => {
  kafka.calls.length = 0
  kafka.mostInFlight = 0
  kafka.metadataReads = 0
  kafka.producerPartitions = 4
  kafka.producerPartitionsOf = {}
  kafka.adminPartitions = 4
})

async function commit(chunks: KafkaRecord[][], transactionalId = config.transactionalId) {
  const publisher = createKafkajsTransactionalPublisher({ ...config, transactionalId }, silentLogger)
  await publisher.connect()
  try {
    await publisher.commitTransaction(chunks, checkpoint)
  } finally {
    await publisher.disconnect()
  }
}

test('each sendBatch of a transaction holds one partition (the producer still chooses it), one call at a time, with the events in order; every event is sent once', async () => {
  const records = events('orders.a')
  await commit([records.slice(0, 20), records.slice(20)])

  expect(partitionsPerCall().filter((n) => n !== 1)).toEqual([])
  expect(kafka.mostInFlight).toBe(1)
  const sent = kafka.calls.flat()
  // Left to the producer: were its partition count older than the admin's, a partition set here
  // that it does not know yet would be sent nowhere.
  expect(sent.filter((m) => m.explicit !== undefined)).toEqual([])
  expect(sent.map((m) => m.id).sort()).toEqual([...ids(records), 'checkpoint'].sort())
  for (let a = 0; a < 10; a++) {
    const key = `order-${a}`
    expect(sent.filter((m) => m.key === key).map((m) => m.id)).toEqual(ids(records.filter((r) => r.key === key)))
  }
})

test("after partitions are added, the requests follow the producer's count, not the admin's, and the admin is not asked again, also in a later session", async () => {
  const records = events('orders.b')
  await commit([records])
  expect(kafka.metadataReads).toBe(1)
  // Six partitions now: the admin sees them; the producer still places by four.
  kafka.adminPartitions = 6
  kafka.calls.length = 0
  await commit([records])
  expect(partitionsPerCall().filter((n) => n !== 1)).toEqual([])
  // The producer refreshes its metadata: its next sends use six, and so do the requests.
  kafka.producerPartitions = 6
  await commit([records])
  kafka.calls.length = 0
  await commit([records])
  expect(partitionsPerCall().filter((n) => n !== 1)).toEqual([])
  expect(kafka.metadataReads).toBe(1)
})

test("two workers in one process each group by their own producer's count", async () => {
  const records = events('orders.e')
  kafka.producerPartitionsOf = { 'worker-a': 4, 'worker-b': 6 }
  await commit([records], 'worker-a')
  await commit([records], 'worker-b')
  await commit([records], 'worker-a')
  kafka.calls.length = 0
  await commit([records], 'worker-b')
  expect(partitionsPerCall().filter((n) => n !== 1)).toEqual([])
})

test('a topic whose partitions cannot be read goes as the producer groups it (every event once, in order), and by partition once the producer has sent to it', async () => {
  kafka.adminPartitions = 'fails'
  const records = events('orders.c')
  await commit([records])
  expect(kafka.calls.flat().map((m) => m.id)).toEqual([...ids(records), 'checkpoint'])
  kafka.calls.length = 0
  await commit([records])
  expect(partitionsPerCall().filter((n) => n !== 1)).toEqual([])
})

test('a metadata request Kafka never answers holds the transaction up 5 s, not for good', async () => {
  kafka.adminPartitions = 'hangs'
  const records = events('orders.d')
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
  try {
    const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
    await publisher.connect()
    let committed = false
    const committing = publisher.commitTransaction([records], checkpoint).then(() => {
      committed = true
    })
    await vi.advanceTimersByTimeAsync(4_900)
    expect(committed).toBe(false)
    await vi.advanceTimersByTimeAsync(200)
    await committing
    expect(kafka.calls.flat()).toHaveLength(records.length + 1)
    await publisher.disconnect()
  } finally {
    vi.useRealTimers()
  }
})
