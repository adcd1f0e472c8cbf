import { errorTree } from '../operations/error-tree.js'
import type { KafkaRecord } from './records.js'

/**
 * What the relay needs from a Kafka client, so the client can be swapped (or faked in tests).
 * One publisher serves one replication session and is disconnected (awaited) when the session
 * ends: the next session gets a new one, so nothing the old one still had in flight can be
 * written after the new session's records. `send` resolves only when Kafka has acknowledged
 * every record (acks from all in-sync replicas) and rejects otherwise; see classifyPublishError
 * for what a rejection means.
 */
export interface Publisher {
  connect(): Promise<void>
  send(records: KafkaRecord[]): Promise<void>
  /**
   * Which of these topics the client cannot write to: they do not exist (and the broker does
   * not create them) or it is not authorized. Rejects when Kafka cannot be asked.
   */
  unavailableTopics(topics: string[]): Promise<string[]>
  disconnect(): Promise<void>
}

/** `publisher` with its send replaced by `send` (which calls the original when it lets records go). */
export function withSend(publisher: Publisher, send: Publisher['send']): Publisher {
  return {
    connect: () => publisher.connect(),
    send,
    unavailableTopics: (topics) => publisher.unavailableTopics(topics),
    disconnect: () => publisher.disconnect(),
  }
}

/** Makes the publisher of one session. */
export type PublisherFactory = () => Publisher

/**
 * - retriable: try again later (connection, leader election, timeouts, anything unknown);
 * - refused: Kafka refused the batch because of what is in it (too large, an invalid record or
 *   topic): split it until the culprit is alone, and that one is poison;
 * - topic: a topic is missing or not authorized: retried, while the relay finds out which;
 * - timestamp: a record's time (the row's created_at) is outside what the topic accepts
 *   (message.timestamp.before.max.ms / after.max.ms): the same record is refused every time, so
 *   the batch is sent again stamped with the time it is sent;
 * - fatal: configuration no retry will fix.
 */
export type PublishErrorKind = 'retriable' | 'refused' | 'topic' | 'timestamp' | 'fatal'

/** Kafka error types caused by the records of a request, that retrying cannot fix. */
const REFUSED_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_RECORD',
])
/** A topic of the request cannot be written: it may be created (or authorized) any moment. */
const TOPIC_TYPES = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'TOPIC_AUTHORIZATION_FAILED'])
const TIMESTAMP_TYPES = new Set(['INVALID_TIMESTAMP'])
/** Configuration problems no retry will fix: the worker stops and says so. */
const FATAL_TYPES = new Set([
  'CLUSTER_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'UNSUPPORTED_SASL_MECHANISM',
])

/**
 * Reads the Kafka error type anywhere in the error's tree: kafkajs names it `type` and wraps
 * protocol errors in retry errors (`cause`, `originalError`); @platformatic/kafka names it
 * `apiId` and gathers the errors of a request or of its retries in `errors` (AggregateError).
 * Branches on Kafka's error types, never on message text; anything unknown is treated as
 * retriable, because giving up would mean stopping, not dropping.
 */
export function classifyPublishError(error: unknown): { kind: PublishErrorKind; type: string | undefined } {
  // A retriable error's own type (NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT...) is what /status
  // shows as the reason sends fail.
  let firstType: string | undefined
  for (const fields of errorTree(error)) {
    for (const type of [fields.type, fields.apiId]) {
      if (typeof type !== 'string') continue
      firstType ??= type
      if (REFUSED_TYPES.has(type)) return { kind: 'refused', type }
      if (TOPIC_TYPES.has(type)) return { kind: 'topic', type }
      if (TIMESTAMP_TYPES.has(type)) return { kind: 'timestamp', type }
      if (FATAL_TYPES.has(type)) return { kind: 'fatal', type }
    }
  }
  return { kind: 'retriable', type: firstType }
}
