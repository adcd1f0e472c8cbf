/**
 * Where the worker places each key. An aggregate's events stay in order only on one partition, so
 * every client and mode must place a key where Kafka's Java client (and kafkajs) places it, and
 * switching clients must not move an aggregate.
 */

import { randomBytes } from 'node:crypto'
import { compatibilityPartitioner } from '@platformatic/kafka'
import { type PartitionerArgs, Partitioners } from 'kafkajs'
import { describe, expect, test } from 'vitest'
import { javaCompatiblePartitioner as kafkajsPartitioner } from '../../worker/delivery/kafkajs-partitioner.js'
import { keyHash } from '../../worker/delivery/key-hash.js'
import { platformaticClientOptions, producerOptions } from '../../worker/delivery/platformatic-publisher.js'
import { resolveConfig } from '../../worker/operations/config.js'

const partitionMetadata = (count: number) =>
  Array.from({ length: count }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }))

/** Keys of every length up to 80 bytes, of any bytes (UTF-8 of any text, or none). */
const keys: Buffer[] = []
for (let length = 0; length <= 80; length++) for (let i = 0; i < 50; i++) keys.push(randomBytes(length))

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

  test("gives what both clients' own partitioners compute, for keys of any bytes and length", () => {
    const kafkajs = Partitioners.DefaultPartitioner()
    // kafkajs gives only the partition: over 1,024 and 997 partitions, the hash's low ten bits and
    // its remainder by a prime must both agree.
    const counts = [partitionMetadata(1024), partitionMetadata(997)]
    for (const key of keys) {
      const hex = key.toString('hex')
      expect(keyHash(key), hex).toBe(compatibilityPartitioner({ topic: 't', key, value: null }, key))
      for (const metadata of counts)
        expect(keyHash(key) % metadata.length, hex).toBe(
          kafkajs({ topic: 't', partitionMetadata: metadata, message: { key, value: null } }),
        )
    }
  })
})

describe('the partitioners the worker gives each client', () => {
  const config = resolveConfig({ databaseUrl: 'postgresql://u:p@db/app', kafkaBrokers: 'kafka-1:9093' })

  test('@platformatic/kafka places every key where kafkajs (and the Java client) does', () => {
    const partitioner = producerOptions(platformaticClientOptions(config)).partitioner
    if (!partitioner) throw new Error('the producer has no partitioner: the library would keep the sign bit')
    const kafkajs = Partitioners.DefaultPartitioner()
    for (let partitions = 1; partitions <= 12; partitions++) {
      for (let i = 0; i < 500; i++) {
        const key = `aggregate-${i}`
        const expected = kafkajs({
          topic: 't',
          partitionMetadata: partitionMetadata(partitions),
          message: { key, value: null },
        })
        const actual =
          partitioner({ topic: 't', key, value: '' }, Buffer.from(key), { metadata: undefined }) % partitions
        expect(actual, `key ${key}, ${partitions} partitions`).toBe(expected)
      }
    }
  })

  test("kafkajs's places keyed records as its DefaultPartitioner, and leaves the others to it", () => {
    const ours = kafkajsPartitioner()
    const theirs = Partitioners.DefaultPartitioner()
    const place = (partitioner: typeof ours, args: PartitionerArgs) => partitioner(args)
    for (let partitions = 1; partitions <= 12; partitions++) {
      const metadata = partitionMetadata(partitions)
      for (const key of keys.slice(0, 1000)) {
        for (const k of [key, key.toString('latin1'), `order-${key.toString('hex')}`]) {
          const message = { key: k, value: null }
          const args = { topic: 't', partitionMetadata: metadata, message }
          expect(place(ours, args), `${key.toString('hex')}, ${partitions} partitions`).toBe(place(theirs, args))
        }
      }
      // A partition of its own is kept, whatever the key.
      const own = {
        topic: 't',
        partitionMetadata: metadata,
        message: { key: 'k', value: null, partition: partitions - 1 },
      }
      expect(place(ours, own)).toBe(partitions - 1)
    }
    // Without a key, kafkajs's round robin: every available partition in turn.
    const metadata = partitionMetadata(3)
    const unkeyed = new Set(
      Array.from({ length: 3 }, () => ours({ topic: 'u', partitionMetadata: metadata, message: { value: 'v' } })),
    )
    expect(unkeyed).toEqual(new Set([0, 1, 2]))
  })
})
