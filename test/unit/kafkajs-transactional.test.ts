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
  /** The metadata the admin answers with; undefined: it fails. */
  partitions: undefined as number | undefined,
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
          const count = kafka.partitions
          if (count === undefined) throw new Error('This server does not host this topic-partition')
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
})

test('each sendBatch of a transaction holds one partition, the one kafkajs would choose, with its events in order; every event is sent once', async () => {
  kafka.partitions = 4
  const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
  await publisher.connect()
  await publisher.commitTransaction([records.slice(0, 20), records.slice(20)], checkpoint)
  await publisher.disconnect()

  const calls = kafka.sent.map((call) =>
    call.flatMap(({ topic, messages }) =>
      messages.map((m) => ({
        topic,
        partition: m.partition ?? kafkajsPartition(m.key, 4),
        key: m.key,
        id: m.headers.id,
      })),
    ),
  )
  const partitionsPerCall = calls.map((call) => new Set(call.map((m) => `${m.topic}/${m.partition}`)).size)
  expect(partitionsPerCall.filter((n) => n !== 1)).toEqual([])
  const sent = calls.flat()
  expect(sent.map((m) => m.id).sort()).toEqual([...records.map((r) => r.headers.id), 'checkpoint'].sort())
  for (const m of sent.filter((m) => m.topic === 'orders')) expect(m.partition).toBe(kafkajsPartition(m.key, 4))
  // Per aggregate, the events in the order given.
  for (let a = 0; a < 10; a++) {
    const key = `order-${a}`
    expect(sent.filter((m) => m.key === key).map((m) => m.id)).toEqual(
      records.filter((r) => r.key === key).map((r) => r.headers.id),
    )
  }
})

test("when the topics' partitions cannot be read, the transaction still sends every event once, in order, partitioned by kafkajs", async () => {
  kafka.partitions = undefined
  const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
  await publisher.connect()
  await publisher.commitTransaction([records], checkpoint)
  await publisher.disconnect()

  const sent = kafka.sent.flat().flatMap(({ messages }) => messages)
  expect(sent.map((m) => m.headers.id)).toEqual([...records.map((r) => r.headers.id), 'checkpoint'])
  expect(sent.filter((m) => m.partition !== undefined)).toEqual([])
})
