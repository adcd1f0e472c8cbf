import { recordBytes as kafkaRecordBytes } from '../../src/record-size.js'
import { asTopicName, topicNameProblem } from '../../src/topic.js'
import type { OutboxRecord } from '../stream/outbox-record.js'
import { memo } from './memo.js'

/** A record ready for Kafka. */
export interface KafkaRecord {
  topic: string
  key: string
  value: string | null
  headers: Record<string, string>
  /** ms since epoch, as a string (kafkajs' format). */
  timestamp: string
}

const templated = memo((key) => {
  const [template, aggregateType, type] = key.split('\u0000') as [string, string, string]
  return applyTemplate(template, { aggregateType, type })
})
const topicProblem = memo(topicNameProblem)

/** The topic of an event without its own: the template filled in. */
function templateTopic(template: string, aggregateType: string, type: string): string {
  return templated(`${template}\u0000${aggregateType}\u0000${type}`)
}

/** The Kafka record for an outbox row. */
export function toKafkaRecord(record: OutboxRecord, topicTemplate: string): KafkaRecord {
  return {
    topic: record.topic ?? templateTopic(topicTemplate, record.aggregateType, record.type),
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

/** Records this worker stamped anew: their originalTimestamp header is ours, not the row's. */
const stampedByUs = new WeakSet<KafkaRecord>()

/**
 * The record stamped with the time it is sent, for a topic that refused its own time
 * (INVALID_TIMESTAMP), and for dead letters: the event's own time is kept in the
 * `originalTimestamp` header (ms since epoch). A row header of that name gives way to it.
 */
export function restamped(record: KafkaRecord, now: number): KafkaRecord {
  const original = stampedByUs.has(record) ? record.headers.originalTimestamp : record.timestamp
  const stamped = {
    ...record,
    timestamp: String(now),
    headers: { ...record.headers, originalTimestamp: original ?? record.timestamp },
  }
  stampedByUs.add(stamped)
  return stamped
}

/** Bytes Kafka counts for a record; `emit` measures events the same way (src/record-size.ts). */
export function recordBytes(record: KafkaRecord): number {
  return kafkaRecordBytes(record.key, record.value === null ? 0 : Buffer.byteLength(record.value), record.headers)
}

/**
 * Why Kafka will never accept this record, known before sending: an invalid topic name, or a
 * size over the limit. Undefined when it looks fine (Kafka may still refuse it; see publisher).
 */
export function poisonReason(
  record: KafkaRecord,
  maxMessageBytes: number,
  bytes = recordBytes(record),
): string | undefined {
  const problem = topicProblem(record.topic)
  if (problem) return `invalid topic: ${problem}`
  if (bytes > maxMessageBytes) return `message too large: ${bytes} bytes, limit ${maxMessageBytes}`
  return undefined
}

/** Headers the worker sets itself; a dead-letter record always keeps them. */
const RESERVED_HEADERS = ['id', 'type', 'aggregateType', 'aggregateId'] as const
/** Where a dead-letter record's parts are cut when dropping the value and headers is not enough. */
const TRUNCATE_BYTES = 1024

/**
 * The dead-letter form of a poison record: same key, headers and value plus `error` and
 * `originalTopic`. When that is too large for Kafka, parts are shed until it fits, and the
 * `truncated` header lists what was: the value first (the usual culprit), then the row's own
 * headers (the reserved ones stay), then key and reserved values are cut to 1 KiB. Its id always
 * identifies it. A dead-letter topic name built from an invalid topic is made valid by replacing
 * illegal characters with "_".
 */
export function toDeadLetter(
  record: KafkaRecord,
  reason: string,
  dlqTemplate: string,
  maxMessageBytes: number,
): KafkaRecord {
  const topic = asTopicName(applyTemplate(dlqTemplate, { topic: record.topic }), 'outbox.dlq')
  // Stamped with the time it is written, the event's own in originalTimestamp: a dead-letter
  // topic may refuse old timestamps too (message.timestamp.before.max.ms set broker-wide).
  const stamped = restamped(record, Date.now())
  const dead: KafkaRecord = {
    ...stamped,
    topic,
    headers: { ...stamped.headers, error: reason, originalTopic: record.topic },
  }
  const truncated: string[] = []
  const fits = () => recordBytes(dead) <= maxMessageBytes
  if (!fits()) {
    dead.value = null
    truncated.push('value')
  }
  if (!fits()) {
    dead.headers = {
      error: reason,
      originalTopic: record.topic,
      originalTimestamp: stamped.headers.originalTimestamp as string,
    }
    for (const name of RESERVED_HEADERS) {
      const value = record.headers[name]
      if (value !== undefined) dead.headers[name] = value
    }
    truncated.push('headers')
  }
  if (!fits()) {
    dead.key = truncateUtf8(dead.key, TRUNCATE_BYTES)
    for (const [name, value] of Object.entries(dead.headers)) dead.headers[name] = truncateUtf8(value, TRUNCATE_BYTES)
    truncated.push('key')
  }
  if (truncated.length > 0) dead.headers.truncated = truncated.join(',')
  return dead
}

/**
 * The record to dead-letter for an outbox row that could not be decoded: its columns' raw text
 * as a JSON object, keyed by its aggregate id when it has one, to the topic it would have had.
 */
export function undecodableRecord(columns: Record<string, string | null>, topicTemplate: string): KafkaRecord {
  const aggregateType = columns.aggregatetype ?? ''
  const type = columns.type ?? ''
  const topic = columns.topic ?? (aggregateType ? applyTemplate(topicTemplate, { aggregateType, type }) : 'outbox')
  const headers: Record<string, string> = {}
  if (columns.id) headers.id = columns.id
  if (columns.type) headers.type = columns.type
  if (columns.aggregatetype) headers.aggregateType = columns.aggregatetype
  if (columns.aggregateid) headers.aggregateId = columns.aggregateid
  return {
    topic,
    key: columns.aggregateid ?? '',
    value: JSON.stringify(columns),
    headers,
    timestamp: String(Date.now()),
  }
}

function truncateUtf8(text: string, bytes: number): string {
  const buffer = Buffer.from(text)
  // Cutting inside a multi-byte character leaves a replacement character at the end: harmless.
  return buffer.length <= bytes ? text : buffer.subarray(0, bytes).toString()
}

/** Fills a topic template's {fields}; resolveConfig has checked it names only known ones. */
export function applyTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, field: string) => values[field] ?? '')
}
