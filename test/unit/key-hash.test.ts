/**
 * Where the worker places each key. An aggregate's events stay in order only on one partition, so
 * every client and mode must place a key where Kafka's Java client (and kafkajs) places it,
 * switching clients must not move an aggregate, and exactly-once must group a transaction's
 * records by the partition the producer will send each to.
 */

import { randomBytes } from 'node:crypto'
import { type ClusterMetadata, compatibilityPartitioner } from '@platformatic/kafka'
import { Partitioners } from 'kafkajs'
import { describe, expect, test } from 'vitest'
import { partitionRequests } from '../../worker/delivery/exactly-once/partition-requests.js'
import { partitionMessages } from '../../worker/delivery/exactly-once/platformatic-transactional.js'
import { javaCompatiblePartitioner as kafkajsPartitioner } from '../../worker/delivery/kafkajs-partitioner.js'
import { keyHash } from '../../worker/delivery/key-hash.js'
import { platformaticClientOptions, producerOptions } from '../../worker/delivery/platformatic-publisher.js'
import type { KafkaRecord } from '../../worker/delivery/records.js'
import { resolveConfig } from '../../worker/operations/config.js'

// kafkajs's partitioner hashes with Long objects: thousands of calls take seconds on a loaded machine.
const SLOW = 30_000

const partitionMetadata = (count: number) =>
  Array.from({ length: count }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }))

/** Keys of every length up to 80 bytes, of any bytes (UTF-8 of any text, or none), ten of each. */
const keys: Buffer[] = []
for (let length = 0; length <= 80; length++) for (let i = 0; i < 10; i++) keys.push(randomBytes(length))
/** Aggregate ids as apps write them, ASCII and not. */
const ids = Array.from({ length: 300 }, (_, i) =>
  i % 3 === 0 ? `aggregate-${i}` : i % 3 === 1 ? crypto.randomUUID() : `kunde-Ä${i}-東京-🚚`,
)

/** The partition kafkajs (Kafka's Java client's placement) picks for a key among `count`. */
function kafkajsPlaces(): (key: string | Buffer, count: number) => number {
  const kafkajs = Partitioners.DefaultPartitioner()
  return (key, count) =>
    kafkajs({ topic: 't', partitionMetadata: partitionMetadata(count), message: { key, value: null } })
}

describe('keyHash', () => {
  test("is Kafka's Java client's murmur2 of the key's bytes, sign bit cleared", () => {
    // Kafka's own test vectors for Utils.murmur2 (clients' UtilsTest).
    const java: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ]
    for (const [key, murmur2] of java) expect(keyHash(Buffer.from(key)), key).toBe(murmur2 & 0x7fffffff)
  })

  test(
    "gives what both clients' own partitioners compute, for keys of any bytes and length",
    () => {
      const kafkajs = kafkajsPlaces()
      for (const key of keys) {
        const hex = key.toString('hex')
        expect(keyHash(key), hex).toBe(compatibilityPartitioner({ topic: 't', key, value: null }, key))
        // kafkajs gives only the partition: over 1,024 and 997 partitions, the hash's low ten bits
        // and its remainder by a prime must both agree.
        for (const count of [1024, 997]) expect(keyHash(key) % count, hex).toBe(kafkajs(key, count))
      }
    },
    SLOW,
  )
})

describe('the partitioners the worker gives each client', () => {
  const config = resolveConfig({ databaseUrl: 'postgresql://u:p@db/app', kafkaBrokers: 'kafka-1:9093' })

  test(
    '@platformatic/kafka places every key where kafkajs (and the Java client) does',
    () => {
      const partitioner = producerOptions(platformaticClientOptions(config)).partitioner
      if (!partitioner) throw new Error('the producer has no partitioner: the library would keep the sign bit')
      const kafkajs = kafkajsPlaces()
      for (let partitions = 2; partitions <= 12; partitions++) {
        for (const key of ids) {
          const actual = partitioner({ topic: 't', key, value: '' }, Buffer.from(key), { metadata: undefined })
          expect(actual % partitions, `key ${key}, ${partitions} partitions`).toBe(kafkajs(key, partitions))
        }
      }
      // A record without a key goes to partition 0, as with the library's own.
      expect(partitioner({ topic: 't', value: '' }, undefined, { metadata: undefined })).toBe(0)
    },
    SLOW,
  )

  test(
    "kafkajs's places keyed records as its DefaultPartitioner, and leaves the others to it",
    () => {
      const ours = kafkajsPartitioner()
      const theirs = Partitioners.DefaultPartitioner()
      // Every length up to 80 bytes, as bytes, as text and as text that is not ASCII.
      const sample = keys.filter((_, i) => i % 5 === 0)
      for (let partitions = 2; partitions <= 12; partitions++) {
        const metadata = partitionMetadata(partitions)
        for (const key of sample) {
          for (const k of [key, key.toString('latin1'), `order-${key.toString('hex')}`]) {
            const args = { topic: 't', partitionMetadata: metadata, message: { key: k, value: null } }
            expect(ours(args), `${key.toString('hex')}, ${partitions} partitions`).toBe(theirs(args))
          }
        }
        // A partition of its own is kept, whatever the key.
        const own = { topic: 't', partitionMetadata: metadata, message: { key: 'k', value: null, partition: 1 } }
        expect(ours(own)).toBe(1)
      }
      // Without a key, kafkajs's round robin: every available partition in turn.
      const metadata = partitionMetadata(3)
      const unkeyed = new Set(
        Array.from({ length: 3 }, () => ours({ topic: 'u', partitionMetadata: metadata, message: { value: 'v' } })),
      )
      expect(unkeyed).toEqual(new Set([0, 1, 2]))
    },
    SLOW,
  )
})

describe('exactly-once groups a transaction by the partition each record is sent to', () => {
  const record = (topic: string, key: string): KafkaRecord => ({ topic, key, value: '{}', headers: {}, timestamp: '0' })
  const records = ids.flatMap((id) => [record('orders', id), record('payments', id)])
  const counts = new Map([
    ['orders', 5],
    ['payments', 3],
  ])

  test(
    'with kafkajs: each request holds one partition, where kafkajs would send its records',
    () => {
      const kafkajs = kafkajsPlaces()
      const requests = partitionRequests(records, counts)
      const seen = new Set<string>()
      for (const request of requests) {
        const [only, ...others] = request
        expect(others).toEqual([])
        if (!only) throw new Error('an empty request')
        const partitions = new Set(only.messages.map((m) => kafkajs(m.key as string, counts.get(only.topic) ?? 0)))
        expect(partitions.size, only.topic).toBe(1)
        const place = `${only.topic}:${[...partitions][0]}`
        expect(seen.has(place), place).toBe(false)
        seen.add(place)
      }
      expect(requests.flatMap((r) => r.flatMap((t) => t.messages)).length).toBe(records.length)
    },
    SLOW,
  )

  test(
    'with @platformatic/kafka: each record is given the partition kafkajs (and the Java client) picks',
    () => {
      const kafkajs = kafkajsPlaces()
      const topics = new Map([...counts].map(([topic, partitionsCount]) => [topic, { partitionsCount }]))
      const groups = [...partitionMessages(records, { topics } as unknown as ClusterMetadata)]
      for (const group of groups) {
        const places = new Set(group.map((m) => `${m.topic}:${m.partition}`))
        expect(places.size).toBe(1)
        for (const m of group)
          expect(m.partition, `${m.topic} ${m.key}`).toBe(kafkajs(m.key as string, counts.get(m.topic) ?? 0))
      }
      expect(groups.flat().length).toBe(records.length)
    },
    SLOW,
  )
})
