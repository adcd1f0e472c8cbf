import type { PartitionMetadata, TopicMessages } from 'kafkajs'
import { javaCompatiblePartitioner } from '../kafkajs-partitioner.js'
import { topicMessages } from '../kafkajs-producer.js'
import type { KafkaRecord } from '../records.js'

/** How many partitions each topic has; a topic left out is unknown. */
export type PartitionCounts = Map<string, number>

/**
 * The sendBatch calls that send one chunk of a Kafka transaction: one per partition, each with
 * that partition's records in the chunk's order, to be sent one after the other.
 *
 * Why not one call for the chunk: kafkajs sends a sendBatch as one request per partition leader
 * under a single retry. When one broker's request fails (a leader moving, a dropped connection)
 * while another broker's is still in flight, the retry sends the one in flight again, and it
 * takes the sequence numbers the first has already used up, so Kafka appends those records a
 * second time, inside the transaction: duplicates that read_committed consumers see. A call for
 * one partition goes to one broker in one request, which has failed (and given its sequence
 * numbers back) before it is retried, so Kafka recognizes a resent request.
 *
 * Records are grouped by the partition the producer will choose (its partitioner,
 * kafkajs-partitioner.ts: murmur2 of the key as Kafka's Java client, over `counts`: the
 * producer's own where it has sent to the topic), but the choice is left to the producer: a
 * partition it does not know would be sent nowhere. Records of a topic whose count is unknown go together in one more call.
 */
export function partitionRequests(records: KafkaRecord[], counts: PartitionCounts): TopicMessages[][] {
  const partitioner = javaCompatiblePartitioner()
  // Built once per topic: the partitioner is called for every record.
  const metadata = new Map<string, PartitionMetadata[]>()
  const grouped = new Map<string, KafkaRecord[]>()
  const unplaced: KafkaRecord[] = []
  for (const record of records) {
    const count = counts.get(record.topic)
    if (!count) {
      unplaced.push(record)
      continue
    }
    let partitionMetadata = metadata.get(record.topic)
    if (!partitionMetadata) {
      partitionMetadata = partitionsOf(count)
      metadata.set(record.topic, partitionMetadata)
    }
    const partition = partitioner({
      topic: record.topic,
      partitionMetadata,
      message: { key: record.key, value: record.value },
    })
    const id = `${partition}:${record.topic}`
    const group = grouped.get(id)
    if (group) group.push(record)
    else grouped.set(id, [record])
  }
  const requests = [...grouped.values()].map(topicMessages)
  if (unplaced.length > 0) requests.push(topicMessages(unplaced))
  return requests
}

// The partitioner reads only the count for a keyed record (every outbox record has a key).
const partitionsOf = (count: number): PartitionMetadata[] =>
  Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 0,
    replicas: [],
    isr: [],
  }))
