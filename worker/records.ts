import { recordBytes as kafkaRecordBytes } from '../src/record-size.js'
import { topicNameProblem } from '../src/topic.js'
import { applyTemplate } from './config.js'
import type { OutboxRecord } from './decoder.js'

/** A record ready for Kafka. */
export interface KafkaRecord {
  topic: string
  key: string
  value: string | null
  headers: Record<string, string>
  /** ms since epoch, as a string (kafkajs' format). */
  timestamp: string
}

/** The Kafka record for an outbox row (SPEC §4.3). */
export function toKafkaRecord(record: OutboxRecord, topicTemplate: string): KafkaRecord {
  return {
    topic: record.topic ?? applyTemplate(topicTemplate, { aggregateType: record.aggregateType, type: record.type }),
    key: record.aggregateId,
    value: record.payload,
    // The row's own headers first, so the worker's cannot be overridden by raw-SQL rows.
    headers: {
      ...record.headers,
      id: record.id,
      type: record.type,
      aggregateType: record.aggregateType,
      aggregateId: record.aggregateId,
    },
    timestamp: String(record.createdAt),
  }
}

/** Bytes Kafka counts for a record; `emit` measures events the same way (src/record-size.ts). */
export function recordBytes(record: KafkaRecord): number {
  return kafkaRecordBytes(record.key, record.value === null ? 0 : Buffer.byteLength(record.value), record.headers)
}

/**
 * Why Kafka will never accept this record, known before sending: an invalid topic name, or a
 * size over the limit. Undefined when it looks fine (Kafka may still refuse it; see publisher).
 */
export function poisonReason(record: KafkaRecord, maxMessageBytes: number): string | undefined {
  const topicProblem = topicNameProblem(record.topic)
  if (topicProblem) return `invalid topic: ${topicProblem}`
  const bytes = recordBytes(record)
  if (bytes > maxMessageBytes) return `message too large: ${bytes} bytes, limit ${maxMessageBytes}`
  return undefined
}

/**
 * The dead-letter form of a poison record: same key and headers plus `error` and
 * `originalTopic`. A record refused for its size goes without its value (it would be refused
 * again); its id still identifies it. A dead-letter topic name built from an invalid topic is
 * made valid by replacing illegal characters with "_".
 */
export function toDeadLetter(
  record: KafkaRecord,
  reason: string,
  dlqTemplate: string,
  maxMessageBytes: number,
): KafkaRecord {
  let topic = applyTemplate(dlqTemplate, { topic: record.topic })
    .replace(/[^a-zA-Z0-9._-]/g, '_')
    .slice(0, 249)
  if (topic === '' || topic === '.' || topic === '..') topic = 'outbox.dlq'
  const dead: KafkaRecord = {
    ...record,
    topic,
    headers: { ...record.headers, error: reason, originalTopic: record.topic },
  }
  if (recordBytes(dead) > maxMessageBytes) dead.value = null
  return dead
}
