import {
  type API,
  addPartitionsToTxnV3,
  type Callback,
  type ClusterMetadata,
  kGetApi,
  type MessageRecord,
  Producer,
} from '@platformatic/kafka'
import { Kafka } from 'kafkajs'
import type { WorkerConfig } from '../../operations/config.js'
import { errorTree } from '../../operations/error-tree.js'
import type { Logger } from '../../operations/logger.js'
import { LazyAdmin } from '../kafkajs-admin.js'
import { kafkaClientConfig } from '../kafkajs-publisher.js'
import { keyHash } from '../key-hash.js'
import { fence, platformaticClientOptions, platformaticMessage, producerOptions } from '../platformatic-publisher.js'
import { classifyPublishError } from '../publisher.js'
import type { KafkaRecord } from '../records.js'
import { ensureCheckpointTopic, readCheckpoint, TRANSACTION_TIMEOUT_MS, timedOut } from './kafkajs-transactional.js'
import { checkpointTopic, transactionalId } from './settings.js'
import type { TransactionalPublisher } from './transactional-publisher.js'

type StringProducer = Producer<string, string, string, string>
type StringTransaction = Awaited<ReturnType<StringProducer['beginTransaction']>>

/**
 * How long the library waits before asking again when Kafka answers CONCURRENT_TRANSACTIONS: the
 * previous transaction's commit markers are still being written, which takes milliseconds. The
 * next transaction's first request meets that answer every few transactions under load, so this
 * wait is in the commit→consume latency of the events behind it (kafkajs waits 100 ms). Each
 * retry waits longer; the library's budget of retries (3) is unchanged, so a broker that stops
 * answering holds a request no longer than with at-least-once.
 */
const CONCURRENT_TRANSACTIONS_DELAYS_MS = [10, 100, 500]
const OTHER_RETRY_DELAY_MS = 250
/**
 * How long initializing the id, or adding a transaction's partitions, goes on asking while Kafka
 * answers CONCURRENT_TRANSACTIONS (it is still ending the previous transaction): nothing is
 * written until either succeeds, so asking again is safe, and a slow commit must not end the
 * session.
 */
const CONCURRENT_TRANSACTIONS_WAIT_MS = 10_000

/**
 * Kafka's last answer was CONCURRENT_TRANSACTIONS. The library gathers its attempts' errors in
 * one error (code PLT_KFK_MULTIPLE): only the last attempt's says how the request ended.
 */
function concurrentTransactions(error: unknown): boolean {
  const { code, errors } = error as { code?: unknown; errors?: unknown }
  const last = code === 'PLT_KFK_MULTIPLE' && Array.isArray(errors) ? errors.at(-1) : error
  for (const { apiId } of errorTree(last)) if (apiId === 'CONCURRENT_TRANSACTIONS') return true
  return false
}

function retryDelay(_client: unknown, _operation: string, attempt: number, _retries: number, error: unknown): number {
  if (!concurrentTransactions(error)) return OTHER_RETRY_DELAY_MS
  return CONCURRENT_TRANSACTIONS_DELAYS_MS[Math.min(attempt, CONCURRENT_TRANSACTIONS_DELAYS_MS.length) - 1] as number
}

/**
 * The producer, adding partitions to its transactions with AddPartitionsToTxn version 3. The
 * library asks with the highest version the broker offers; from version 4 on (Kafka 3.6+), that
 * request is the brokers' own (KIP-890), which a broker with an authorizer allows only to
 * principals with ClusterAction, so a worker holding the ACLs exactly-once documents would be
 * refused every transaction. Version 3 is what Kafka's own Java client sends.
 */
class TransactionalProducer extends Producer<string, string, string, string> {
  override [kGetApi]<RequestArguments extends Array<unknown>, ResponseType>(
    name: string,
    callback: Callback<API<RequestArguments, ResponseType>>,
  ): void {
    if (name === 'AddPartitionsToTxn')
      callback(null, addPartitionsToTxnV3.api as unknown as API<RequestArguments, ResponseType>)
    else super[kGetApi](name, callback)
  }
}

/**
 * The @platformatic/kafka transactional publisher of one session, with kafkajs-transactional's
 * contract: a producer with the worker's transactional id, initialized once, by connect(), at the
 * start of a session that has just taken the slot (which fences any other holder of the id).
 * After a failure whose outcome Kafka did not tell (anything but a refusal of the records) the
 * producer is fenced (its connections reset and closed) and the session ends. The checkpoint
 * topic is created and read with kafkajs, through a consumer group, as kafkajs-transactional
 * does: the hot path, the transactions, is this client's.
 */
export function createPlatformaticTransactionalPublisher(config: WorkerConfig, logger: Logger): TransactionalPublisher {
  const id = transactionalId(config)
  const topic = checkpointTopic(config)
  const otherKafka = new Kafka(kafkaClientConfig(config, logger))
  const admin = new LazyAdmin(otherKafka)
  let producer: StringProducer | undefined
  /** The producer epoch connect() was given: a producer whose epoch changed is never used again. */
  let epoch: number | undefined
  let closed = false

  const drop = async () => {
    const old = producer
    producer = undefined
    await fence(old)
  }

  /**
   * The producer as connect() initialized it. The library initializes the id again by itself
   * when a transaction begins after Kafka reported the producer fenced; that would fence the
   * worker that took over the slot, so such a producer is refused here instead.
   */
  const current = (): StringProducer => {
    if (!producer || producer.producerEpoch !== epoch)
      throw new Error('the transactional producer was dropped after a failure: the session ends')
    return producer
  }

  /**
   * Sends the chunks in one transaction: its partitions added at once, then one request per
   * partition (see partitionMessages); `commit` false aborts it (a probe).
   */
  const transact = async (chunks: KafkaRecord[][], commit: boolean) => {
    const p = current()
    const started = Date.now()
    let transaction: StringTransaction | undefined
    try {
      transaction = await p.beginTransaction()
      const metadata = await p.metadata({ topics: topicsOf(chunks), autocreateTopics: true })
      const requests = chunks.flatMap((chunk) => [...partitionMessages(chunk, metadata)])
      await addPartitions(transaction, metadata, requests)
      for (const messages of requests) {
        // The library sends outside any transaction once it has dropped one (after fencing):
        // never let a record go that way.
        if (p.transaction !== transaction) throw new Error('the Kafka transaction was ended by the client')
        await transaction.send({ messages })
      }
      if (commit) await transaction.commit()
      else await transaction.abort()
    } catch (error) {
      // A refusal of the records leaves the producer usable once aborted (a refused record is
      // probed with it): Kafka appended nothing of the refused request, and the library counts
      // sequence numbers only for what was appended. After anything else (a timeout, a lost
      // connection) a request may have been appended without the library knowing, and its
      // sequence numbers would be reused: the producer is dropped. Kafka aborts what it left
      // open when the id is next initialized, by a new session (or after the transaction timeout).
      const aborted =
        refusedOnly(error) && transaction !== undefined && !transaction.completed
          ? await transaction.abort().then(
              () => true,
              () => false,
            )
          : false
      if (!aborted) await drop()
      throw timedOut(error, Date.now() - started) ?? error
    }
  }

  return {
    async connect() {
      await ensureCheckpointTopic(await admin.connected(), topic)
      const deadline = Date.now() + CONCURRENT_TRANSACTIONS_WAIT_MS
      for (;;) {
        if (closed) throw new Error('this publisher is closed')
        const fresh: StringProducer = new TransactionalProducer({
          ...producerOptions(platformaticClientOptions(config)),
          transactionalId: id,
          // The library sends this to Kafka as the transaction timeout when it initializes the id
          // (and as the broker's wait for in-sync replicas, which the request timeout bounds).
          timeout: TRANSACTION_TIMEOUT_MS,
          retryDelay,
        })
        producer = fresh
        try {
          // Beginning a transaction initializes the id (Kafka bumps the epoch, fencing any other
          // producer with it and aborting its open transaction); cancelling sends nothing. A new
          // producer asks with no id and epoch (-1): the library's default (0, 0) names an epoch
          // Kafka has already bumped past, which it refuses as PRODUCER_FENCED.
          const first = await fresh.beginTransaction({ producerId: -1n, producerEpoch: -1 })
          await first.cancel()
          epoch = fresh.producerEpoch
          return
        } catch (error) {
          await drop()
          // Kafka is still ending the previous holder's transaction: asked again, by a new
          // producer (the library keeps a transaction whose start failed, and refuses another).
          if (!concurrentTransactions(error) || Date.now() > deadline) throw error
        }
      }
    },
    readCheckpoint: () => readCheckpoint(config, otherKafka, admin, topic, id),
    commitTransaction: (chunks, checkpoint) => transact([...chunks, [checkpoint]], true),
    probe: (records) => transact([records], false),
    unavailableTopics: (topics) => admin.unavailable(topics),
    async disconnect() {
      closed = true
      await Promise.all([drop(), admin.disconnect()])
    },
  }
}

/**
 * Kafka refused the records, and every error in the tree is Kafka's answer (or gathers such
 * answers): no timeout or connection error, whose request Kafka may have appended unseen.
 */
function refusedOnly(error: unknown): boolean {
  if (classifyPublishError(error).kind !== 'refused') return false
  for (const fields of errorTree(error)) {
    const { apiId, errors } = fields as { apiId?: unknown; errors?: unknown }
    if (apiId === undefined && !(Array.isArray(errors) && errors.length > 0)) return false
  }
  return true
}

const topicsOf = (chunks: KafkaRecord[][]) => [...new Set(chunks.flat().map((record) => record.topic))]

/**
 * Adds every partition the transaction writes to, in one request before its records (the library
 * would add each partition as its send comes, a round trip each). Asked again while Kafka answers
 * CONCURRENT_TRANSACTIONS, up to CONCURRENT_TRANSACTIONS_WAIT_MS.
 */
async function addPartitions(
  transaction: StringTransaction,
  metadata: ClusterMetadata,
  requests: ReturnType<typeof platformaticMessage>[][],
) {
  // The library reads a message's topic and partition only: one of each request (one partition).
  const placed = requests
    .map(([first]) => ({ topic: first?.topic, partition: first?.partition }))
    .filter((message) => message.partition !== undefined) as MessageRecord[]
  const deadline = Date.now() + CONCURRENT_TRANSACTIONS_WAIT_MS
  for (;;) {
    try {
      await transaction.addPartitions(metadata, placed)
      return
    } catch (error) {
      if (!concurrentTransactions(error) || Date.now() > deadline) throw error
    }
  }
}

/**
 * The messages of one chunk, one send per partition, each with that partition's records in the
 * chunk's order, to be sent one after the other. The library sends a send's messages as one
 * request per partition leader, in parallel, under one retry each; a send for one partition is
 * one request, which has either been answered or failed before anything else is sent, so the
 * sequence numbers the library keeps always match what Kafka appended (see transact).
 *
 * Each record's partition is set here, as the producer's partitioner would choose it (keyHash:
 * murmur2 of the key, as Kafka's Java client, over the partition count of the metadata the
 * library sends by).
 */
export function partitionMessages(records: KafkaRecord[], metadata: ClusterMetadata) {
  const grouped = new Map<string, ReturnType<typeof platformaticMessage>[]>()
  for (const record of records) {
    const count = metadata.topics.get(record.topic)?.partitionsCount
    const message = platformaticMessage(record)
    if (count) message.partition = keyHash(Buffer.from(record.key)) % count
    const id = `${message.partition ?? ''}:${record.topic}`
    const group = grouped.get(id)
    if (group) group.push(message)
    else grouped.set(id, [message])
  }
  return grouped.values()
}
