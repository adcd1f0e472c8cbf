/**
 * What the kafkajs transactional publisher asks kafkajs to send: every sendBatch of a Kafka
 * transaction holds one partition's records. kafkajs retries a sendBatch spanning several brokers
 * as a whole, sending again a broker's request still in flight under new sequence numbers, which
 * Kafka appends twice (see partition-requests.ts); with one partition per call that cannot happen.
 * kafkajs is replaced by a fake that records the calls; its partitioner is the real one.
 */
import { beforeEach, expect, test, vi } from 'vitest'

const kafka = vi.hoisted(() => ({
  /** What each sendBatch call of a committed or aborted transaction was given, in order. */
  sent: [] as { topic: string; messages: { key: string; partition?: number; headers: { id: string } }[] }[][],
  /** The partitions the admin's metadata lists per topic; 'fails' or 'hangs' instead. */
  partitions: 4 as number | 'fails' | 'hangs',
  /** Metadata requests the admin was asked. */
  metadataReads: 0,
}))

vi.mock('kafkajs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('kafkajs')>()
  class Kafka {
    admin() {
      return {
        connect: async () => {},
        disconnect: async () => {},
        listTopics: async () => ['shop.checkpoint'],
        fetchTopicMetadata: async ({ topics }: { topics: string[] }) => {
          kafka.metadataReads++
          const count = kafka.partitions
          if (count === 'fails') throw new Error('This server does not host this topic-partition')
          if (count === 'hangs') return new Promise(() => {})
          // Partitions led by brokers 1 and 2 in turn: a sendBatch of several goes to both.
          const partitions = Array.from({ length: count }, (_, partitionId) => ({
            partitionErrorCode: 0,
            partitionId,
            leader: 1 + (partitionId % 2),
            replicas: [1, 2],
            isr: [1, 2],
            offlineReplicas: [],
          }))
          return { topics: topics.map((name) => ({ name, partitions })) }
        },
      }
    }
    producer() {
      return {
        connect: async () => {},
        disconnect: async () => {},
        transaction: async () => ({
          sendBatch: async ({ topicMessages }: { topicMessages: (typeof kafka.sent)[number] }) => {
            kafka.sent.push(topicMessages)
          },
          commit: async () => {},
          abort: async () => {},
        }),
      }
    }
  }
  return { ...actual, Kafka }
})

import { Partitioners } from 'kafkajs'
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

const record = (key: string, id: string): KafkaRecord => ({
  topic: 'orders',
  key,
  value: '{}',
  headers: { id },
  timestamp: '0',
})

// Ten aggregates, three events each, interleaved as transactions of the outbox would be.
const records = Array.from({ length: 30 }, (_, i) => record(`order-${i % 10}`, `e${i}`))
const checkpoint: KafkaRecord = { ...record('shop', 'checkpoint'), topic: 'shop.checkpoint' }

/** The partition kafkajs's producer chooses for a key among `count`. */
function kafkajsPartition(key: string, count: number): number {
  const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
  }))
  return Partitioners.DefaultPartitioner()({ topic: 'orders', partitionMetadata, message: { key, value: null } })
}

beforeEach(() => {
  kafka.sent.length = 0
  kafka.metadataReads = 0
  kafka.partitions = 4
})

/** Each sendBatch call's messages, with the partition kafkajs will give each among `count`. */
function sentCalls(count: number) {
  return kafka.sent.map((call) =>
    call.flatMap(({ topic, messages }) =>
      messages.map((m) => ({
        topic,
        explicit: m.partition,
        partition: kafkajsPartition(m.key, count),
        key: m.key,
        id: m.headers.id,
      })),
    ),
  )
}

const partitionsPerCall = (calls: ReturnType<typeof sentCalls>) =>
  calls.map((call) => new Set(call.map((m) => `${m.topic}/${m.partition}`)).size)

test('each sendBatch of a transaction holds one partition (the producer still chooses it), with its events in order; every event is sent once', async () => {
  const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
  await publisher.connect()
  await publisher.commitTransaction([records.slice(0, 20), records.slice(20)], checkpoint)
  await publisher.disconnect()

  const calls = sentCalls(4)
  expect(partitionsPerCall(calls).filter((n) => n !== 1)).toEqual([])
  const sent = calls.flat()
  // Left to the producer: were its partition count older than the admin's, a partition set here
  // that it does not know yet would be sent nowhere.
  expect(sent.filter((m) => m.explicit !== undefined)).toEqual([])
  expect(sent.map((m) => m.id).sort()).toEqual([...records.map((r) => r.headers.id), 'checkpoint'].sort())
  // Per aggregate, the events in the order given.
  for (let a = 0; a < 10; a++) {
    const key = `order-${a}`
    expect(sent.filter((m) => m.key === key).map((m) => m.id)).toEqual(
      records.filter((r) => r.key === key).map((r) => r.headers.id),
    )
  }
})

test('the partition counts are read once per topic, and kept when a later read fails', async () => {
  const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
  await publisher.connect()
  await publisher.commitTransaction([records], checkpoint)
  expect(kafka.metadataReads).toBe(1)
  kafka.partitions = 'fails'
  kafka.sent.length = 0
  await publisher.commitTransaction([records], checkpoint)
  await publisher.disconnect()
  expect(kafka.metadataReads).toBe(1)
  expect(partitionsPerCall(sentCalls(4)).filter((n) => n !== 1)).toEqual([])
})

test("when the topics' partitions cannot be read, the transaction still sends every event once, in order", async () => {
  kafka.partitions = 'fails'
  const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
  await publisher.connect()
  await publisher.commitTransaction([records], checkpoint)
  await publisher.disconnect()

  const sent = sentCalls(4).flat()
  expect(sent.map((m) => m.id)).toEqual([...records.map((r) => r.headers.id), 'checkpoint'])
})

test('a metadata request Kafka never answers holds the transaction up 5 s, not for good', async () => {
  kafka.partitions = 'hangs'
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
    expect(sentCalls(4).flat()).toHaveLength(records.length + 1)
    await publisher.disconnect()
  } finally {
    vi.useRealTimers()
  }
})
