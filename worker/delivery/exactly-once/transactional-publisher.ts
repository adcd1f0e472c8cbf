import { errorTree } from '../../operations/error-tree.js'
import { classifyPublishError, type PublishErrorKind } from '../publisher.js'
import type { KafkaRecord } from '../records.js'
import type { Checkpoint } from './checkpoint.js'

/**
 * What exactly-once delivery needs from a Kafka client: a transactional producer and a
 * read_committed read of the checkpoint. One per replication session, like Publisher.
 *
 * `connect` initializes the transactional id (Kafka bumps its epoch: any other producer with the
 * same id, a worker that lost the slot, is fenced, and its open transaction aborted). Only then
 * is the checkpoint read, so nothing the fenced producer had in flight can land after the read.
 */
export interface TransactionalPublisher {
  connect(): Promise<void>
  /** The latest committed checkpoint of this transactional id, undefined when none. */
  readCheckpoint(): Promise<Checkpoint | undefined>
  /**
   * One Kafka transaction: the records (one request per chunk, in order; see chunkRecords), then
   * the checkpoint record, then commit. Resolves once
   * committed. On any failure the transaction is aborted (or left to Kafka to abort, when the
   * producer is dropped) before it rejects: nothing of it is ever visible to read_committed.
   */
  commitTransaction(chunks: KafkaRecord[][], checkpoint: KafkaRecord): Promise<void>
  /**
   * Sends the records in a transaction that is then aborted: whether Kafka accepts them, without
   * making them visible. Used to find a refused record by halving.
   */
  probe(records: KafkaRecord[]): Promise<void>
  /** Which of these topics do not exist (or may not be seen): named after a failed transaction. */
  unavailableTopics?(topics: string[]): Promise<string[]>
  disconnect(): Promise<void>
}

/**
 * Another producer with our transactional id has initialized since ours (a worker took over the
 * slot). Kafka error types (kafkajs's `type`, @platformatic/kafka's `apiId`), and their codes for
 * clients that do not know the newer ones by name (kafkajs predates PRODUCER_FENCED).
 */
const FENCED_TYPES = new Set(['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH'])
const FENCED_CODES = new Set([47, 90])

/** The worker may not use its transactional id (an ACL is missing): no retry can help. */
export function transactionalIdDenied(error: unknown): boolean {
  for (const { type, apiId, code } of errorTree(error))
    if (
      type === 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED' ||
      apiId === 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED' ||
      code === 53
    )
      return true
  return false
}

export type TransactionErrorKind = PublishErrorKind | 'fenced'

/** Like classifyPublishError, with `fenced`: this producer can never commit again. */
export function classifyTransactionError(error: unknown): { kind: TransactionErrorKind; type: string | undefined } {
  for (const { type, apiId, code } of errorTree(error)) {
    for (const name of [type, apiId])
      if (typeof name === 'string' && FENCED_TYPES.has(name)) return { kind: 'fenced', type: name }
    if (typeof code === 'number' && FENCED_CODES.has(code)) return { kind: 'fenced', type: `code ${code}` }
  }
  return classifyPublishError(error)
}
