import type { Metrics } from '../operations/metrics.js'
import type { TrackedTransaction } from '../stream/lsn-tracker.js'
import { type KafkaRecord, recordBytes } from './records.js'

/** One record on its way to Kafka, with the transaction to acknowledge once Kafka has it. */
export interface DeliveryItem {
  record: KafkaRecord
  bytes: number
  transaction: TrackedTransaction
  /** Known to be poison when received (an undecodable row): dead-lettered, never sent as is. */
  poison?: string
}

/** The item for a record, its size counted once (batches are cut by it: RequestBudget). */
export function deliveryItem(record: KafkaRecord, transaction: TrackedTransaction, poison?: string): DeliveryItem {
  const item: DeliveryItem = { record, bytes: recordBytes(record), transaction }
  if (poison !== undefined) item.poison = poison
  return item
}

export interface DeliveryHooks {
  /** Kafka has these records (or their dead letters), in the order they were enqueued. */
  acknowledged(items: DeliveryItem[]): void
  deadLettered(info: { id: string; topic: string; reason: string }): void
}

/** The last failed send, until a send succeeds: what /status shows as the reason. */
export interface SendError {
  message: string
  type: string | undefined
  at: number
}

/**
 * A failed send (at-least-once) or Kafka transaction (exactly-once), as both deliveries record it:
 * counted by kind, the heartbeat beaten (a failing send is no stuck worker), and returned as the
 * delivery's lastError.
 */
export function sendErrorOf(
  metrics: Metrics,
  error: unknown,
  classified: { kind: string; type: string | undefined },
): SendError {
  metrics.publishErrors.inc({ kind: classified.kind })
  metrics.heartbeat.beat()
  return { message: (error as Error | undefined)?.message ?? String(error), type: classified.type, at: Date.now() }
}

/**
 * What a replication session hands its events to: at-least-once (Delivery) or exactly-once
 * (TransactionalDelivery). The session needs nothing else from either.
 */
export interface EventDelivery {
  /** Nothing left that can be sent: a graceful stop waits for this. */
  readonly idle: boolean
  /** Topics that cannot be written now: delivery is held up by them. */
  readonly blockedTopics: string[]
  readonly lastError: SendError | undefined
  /** A failure is ending the session (exactly-once: a transaction failed); never so at-least-once. */
  readonly ending: boolean
  /**
   * The oldest buffered transaction's COMMIT is unread and it cannot be sent before: reading must
   * go on whatever the buffer holds (exactly-once sends whole transactions only).
   */
  readonly waitingForCommit: boolean
  enqueue(item: DeliveryItem): void
  /** Publishes until close(); rejects on what must stop the worker (poison with `stop`, fatal errors). */
  run(): Promise<void>
  /** Stops sending; resolves once no send of this delivery can still reach Kafka. */
  close(): Promise<void>
}
