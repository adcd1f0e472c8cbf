import type { WorkerConfig } from '../../operations/config.js'
import type { KafkaRecord } from '../records.js'
import { MAX_REQUEST_BYTES, recordBytes } from '../records.js'
import { classifyTransactionError } from './transactional-publisher.js'

/**
 * The requests of one Kafka transaction: at most --batch-size records, 8 MiB, and
 * --max-message-bytes for one topic each (kafkajs puts a request's records for one partition
 * into one record batch, which the broker limits), so a large PostgreSQL transaction is sent in
 * several requests of the same Kafka transaction instead of being refused as a whole.
 */
export function chunkRecords(records: KafkaRecord[], config: WorkerConfig): KafkaRecord[][] {
  const chunks: KafkaRecord[][] = []
  let chunk: KafkaRecord[] = []
  let bytes = 0
  let topicBytes = new Map<string, number>()
  for (const record of records) {
    const size = recordBytes(record)
    const forTopic = (topicBytes.get(record.topic) ?? 0) + size
    if (
      chunk.length > 0 &&
      (chunk.length >= config.batchSize || bytes + size > MAX_REQUEST_BYTES || forTopic > config.maxMessageBytes)
    ) {
      chunks.push(chunk)
      chunk = []
      bytes = 0
      topicBytes = new Map()
    }
    chunk.push(record)
    bytes += size
    topicBytes.set(record.topic, (topicBytes.get(record.topic) ?? 0) + size)
  }
  if (chunk.length > 0) chunks.push(chunk)
  return chunks
}

/**
 * The records Kafka refuses, with the error type: each request of the transaction is probed in
 * a transaction that is then aborted, and a refused one halved until the culprit is alone.
 * Nothing probed is ever visible to a read_committed consumer. Errors other than a refusal reject.
 */
export async function findRefused(
  records: KafkaRecord[],
  config: WorkerConfig,
  probe: (records: KafkaRecord[]) => Promise<void>,
): Promise<Map<KafkaRecord, string>> {
  const refused = new Map<KafkaRecord, string>()
  const search = async (part: KafkaRecord[]): Promise<void> => {
    try {
      await probe(part)
      return
    } catch (error) {
      const { kind, type } = classifyTransactionError(error)
      if (kind !== 'refused') throw error
      if (part.length === 1) {
        refused.set(part[0] as KafkaRecord, type ?? 'refused')
        return
      }
    }
    const middle = Math.ceil(part.length / 2)
    await search(part.slice(0, middle))
    await search(part.slice(middle))
  }
  for (const chunk of chunkRecords(records, config)) await search(chunk)
  return refused
}
