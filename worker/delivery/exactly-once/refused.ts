import type { WorkerConfig } from '../../operations/config.js'
import { halves, requestLength } from '../batching.js'
import type { KafkaRecord } from '../records.js'
import { recordBytes } from '../records.js'
import { classifyTransactionError } from './transactional-publisher.js'

/**
 * The requests of one Kafka transaction, each what one request may hold (RequestBudget), so a
 * large PostgreSQL transaction is sent in several requests of the same Kafka transaction instead
 * of being refused as a whole.
 */
export function chunkRecords(records: KafkaRecord[], config: WorkerConfig): KafkaRecord[][] {
  const chunks: KafkaRecord[][] = []
  for (let start = 0; start < records.length; ) {
    const length = requestLength(records, start, config, (record) => ({
      topic: record.topic,
      bytes: recordBytes(record),
    }))
    chunks.push(records.slice(start, start + length))
    start += length
  }
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
  // The parts still to probe, the next one last.
  const pending = chunkRecords(records, config).reverse()
  for (let part = pending.pop(); part !== undefined; part = pending.pop()) {
    try {
      await probe(part)
    } catch (error) {
      const { kind, type } = classifyTransactionError(error)
      if (kind !== 'refused') throw error
      if (part.length === 1) refused.set(part[0] as KafkaRecord, type ?? 'refused')
      else pending.push(...halves(part).reverse())
    }
  }
  return refused
}
