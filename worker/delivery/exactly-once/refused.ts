import type { WorkerConfig } from '../../operations/config.js'
import { halves, requestLength } from '../batching.js'
import { type KafkaRecord, recordBytes } from '../records.js'
import { classifyTransactionError } from './transactional-publisher.js'

/** A record with its size, counted once (a DeliveryItem is one). */
export interface SizedRecord {
  record: KafkaRecord
  bytes: number
}

/** The record with its size counted (a dead letter, or a record known without its item). */
export function sized(record: KafkaRecord): SizedRecord {
  return { record, bytes: recordBytes(record) }
}

/**
 * The requests of one Kafka transaction, each what one request may hold (RequestBudget), so a
 * large PostgreSQL transaction is sent in several requests of the same Kafka transaction instead
 * of being refused as a whole.
 */
export function chunkRecords(records: readonly SizedRecord[], config: WorkerConfig): KafkaRecord[][] {
  const chunks: KafkaRecord[][] = []
  for (let start = 0; start < records.length; ) {
    const length = requestLength(records, start, config, (item) => ({ topic: item.record.topic, bytes: item.bytes }))
    chunks.push(records.slice(start, start + length).map((item) => item.record))
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
  records: readonly SizedRecord[],
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
