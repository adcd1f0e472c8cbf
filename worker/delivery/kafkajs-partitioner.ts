import { type ICustomPartitioner, Partitioners } from 'kafkajs'
import { keyHash } from './key-hash.js'

/**
 * kafkajs's DefaultPartitioner (Kafka's Java client's placement) with keys hashed by keyHash: a
 * keyed record goes to keyHash(key) modulo the topic's partition count, as kafkajs would place it.
 * A record with a partition of its own, or without a key, is left to kafkajs's partitioner.
 */
export const javaCompatiblePartitioner: ICustomPartitioner = () => {
  const kafkajsDefault = Partitioners.DefaultPartitioner()
  return (args) => {
    const { key, partition } = args.message
    if (partition !== undefined && partition !== null) return kafkajsDefault(args)
    if (key === undefined || key === null) return kafkajsDefault(args)
    return keyHash(Buffer.isBuffer(key) ? key : Buffer.from(String(key))) % args.partitionMetadata.length
  }
}
