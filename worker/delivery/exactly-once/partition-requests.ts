import { Partitioners, type PartitionMetadata, type TopicMessages } from 'kafkajs'
import { topicMessages } from '../kafkajs-producer.js'
import type { KafkaRecord } from '../records.js'

/** Each topic's partitions, as Kafka's metadata lists them; a topic left out is unknown. */
export type TopicPartitions = Map<string, PartitionMetadata[]>

/**
 * The sendBatch calls that send one chunk of a Kafka transaction: one per partition, each with
 * that partition's records in the chunk's order, sent one after the other.
 *
 * Why not one call for the chunk: kafkajs sends a sendBatch as one request per partition leader
 * under a single retry. When one broker's request fails (a leader moving, a dropped connection)
 * while another broker's is still in flight, the retry sends the one in flight again, and it
 * takes the sequence numbers the first has already used up, so Kafka appends those records a
 * second time, inside the transaction: duplicates that read_committed consumers see. A call for
 * one partition goes to one broker in one request, which has failed (and given its sequence
 * numbers back) before it is retried, so Kafka recognizes a resent request.
 *
 * The partition is the one the producer would choose (kafkajs's default partitioner: murmur2 of
 * the key, as Kafka's Java client). Records of a topic whose partitions are unknown (its metadata
 * could not be read) are left to the producer, in one more call.
 */
export function partitionRequests(records: KafkaRecord[], partitions: TopicPartitions): TopicMessages[][] {
  const partitioner = Partitioners.DefaultPartitioner()
  const placed = new Map<string, TopicMessages>()
  const unplaced: KafkaRecord[] = []
  for (const record of records) {
    const partitionMetadata = partitions.get(record.topic)
    if (!partitionMetadata || partitionMetadata.length === 0) {
      unplaced.push(record)
      continue
    }
    const message = { key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp }
    const partition = partitioner({ topic: record.topic, partitionMetadata, message })
    const id = `${partition}:${record.topic}`
    let request = placed.get(id)
    if (!request) {
      request = { topic: record.topic, messages: [] }
      placed.set(id, request)
    }
    request.messages.push({ ...message, partition })
  }
  const requests = [...placed.values()].map((request) => [request])
  if (unplaced.length > 0) requests.push(topicMessages(unplaced))
  return requests
}
