import type { JsonValue } from '../src/json.js'
import type { InboxEvent } from './types.js'

/** A Kafka record as the inbox keeps it: text, whatever client read it. */
export interface InboxRecord {
  topic: string
  partition: number
  offset: string
  key: string | null
  value: string | null
  headers: Record<string, string>
  timestamp: number
}

export type ParsedRecord = { event: InboxEvent<JsonValue> } | { poison: string }

/**
 * The outbox event a record carries, or why it is not one (a poison record): the worker sends
 * the event's id, type and aggregateType as headers, its aggregateId as the key and its payload
 * as JSON in the value (docs/consuming.md, "What a record must carry").
 */
export function parseRecord(record: InboxRecord): ParsedRecord {
  const { id, type, aggregateType } = record.headers
  if (!id) return { poison: 'it has no "id" header, so it is not an outbox event' }
  if (!type) return { poison: 'it has no "type" header, so it is not an outbox event' }
  if (record.value === null) return { poison: 'its value is empty (a tombstone), not an event payload' }
  let payload: JsonValue
  try {
    payload = JSON.parse(record.value) as JsonValue
  } catch {
    return { poison: `its value is not JSON (starts ${JSON.stringify(record.value.slice(0, 40))})` }
  }
  return {
    event: {
      id,
      type,
      aggregateType: aggregateType ?? '',
      aggregateId: record.headers.aggregateId ?? record.key ?? '',
      payload,
      headers: record.headers,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: record.timestamp,
    },
  }
}

/** The inbox row id of a record that has no event id: where Kafka had it. */
export function poisonId(record: InboxRecord): string {
  return `poison:${record.topic}:${record.partition}:${record.offset}`
}

/** Where a record was, for log lines. */
export function recordFields(record: InboxRecord): Record<string, unknown> {
  return { topic: record.topic, partition: record.partition, offset: record.offset, key: record.key }
}
