import { Admin as PlatformaticAdmin } from '@platformatic/kafka'
import { type Admin, type ICustomPartitioner, Kafka } from 'kafkajs'
import type { WorkerConfig } from '../../operations/config.js'
import { errorTree } from '../../operations/error-tree.js'
import { OutboxSetupError } from '../../operations/errors.js'
import type { Logger } from '../../operations/logger.js'
import { LazyAdmin } from '../kafkajs-admin.js'
import { javaCompatiblePartitioner } from '../kafkajs-partitioner.js'
import { DroppableProducer } from '../kafkajs-producer.js'
import { kafkaClientConfig } from '../kafkajs-publisher.js'
import { FencedSockets } from '../kafkajs-sockets.js'
import { platformaticClientOptions } from '../platformatic-publisher.js'
import type { KafkaRecord } from '../records.js'
import { withTimeout } from '../with-timeout.js'
import { type Checkpoint, parseCheckpoint } from './checkpoint.js'
import { readLatest } from './checkpoint-read.js'
import { type PartitionCounts, partitionRequests } from './partition-requests.js'
import { checkpointTopic, transactionalId } from './settings.js'
import { classifyTransactionError, type TransactionalPublisher } from './transactional-publisher.js'

/**
 * Kafka aborts a transaction still open after this long. A PostgreSQL transaction is one Kafka
 * transaction, so it must be sent within it (see docs/exactly-once.md); a worker that dies for good holds
 * read_committed consumers of its topics back at most this long. Below the broker's default
 * transaction.max.timeout.ms (15 min).
 */
export const TRANSACTION_TIMEOUT_MS = 300_000

/**
 * How long a transaction waits for its topics' partitions before it goes without them: reading
 * them takes a round trip; a Kafka that does not answer would hold the transaction up for the
 * admin's retries, on top of its own.
 */
const PARTITIONS_WAIT_MS = 5_000

/**
 * How many partitions each worker's producer last saw for each topic, recorded by its partitioner
 * as it places each record (the metadata it sends by), so that the requests of a transaction are
 * grouped by the partitions the producer will choose, also right after partitions are added.
 * Kept for the process, not the session: a session that starts after a failure, often while
 * Kafka is still in trouble, must not depend on reading metadata first. One map per brokers and
 * transactional id: workers created side by side (createWorker) each have their own producer.
 */
const partitionCountsSeen = new Map<string, PartitionCounts>()

function countsOfProducer(config: WorkerConfig, id: string): PartitionCounts {
  const key = `${config.kafkaBrokers.join(',')}\u0000${id}`
  let counts = partitionCountsSeen.get(key)
  if (!counts) {
    counts = new Map()
    partitionCountsSeen.set(key, counts)
  }
  return counts
}

/**
 * The worker's kafkajs partitioner (Kafka's Java client's placement), recording the count it was
 * given into `counts`.
 */
function countingPartitioner(counts: PartitionCounts): ICustomPartitioner {
  return () => {
    const partitioner = javaCompatiblePartitioner()
    return (args) => {
      counts.set(args.topic, args.partitionMetadata.length)
      return partitioner(args)
    }
  }
}

/**
 * The kafkajs transactional publisher of one session: a producer with the worker's
 * transactional id (idempotent, acks=all, one request in flight, as kafkajs requires). After a
 * failure the producer is dropped and its sockets reset, as the at-least-once publisher does, and
 * the session ends: only connect(), at the start of a session that has just taken the slot,
 * initializes the id (a worker that lost the slot must never fence the one that took it).
 */
export function createKafkajsTransactionalPublisher(config: WorkerConfig, logger: Logger): TransactionalPublisher {
  const id = transactionalId(config)
  const topic = checkpointTopic(config)
  const counts = countsOfProducer(config, id)
  const producerSockets = new FencedSockets()
  const otherSockets = new FencedSockets()
  const kafka = new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: producerSockets.factory })
  const otherKafka = new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: otherSockets.factory })
  const producer = new DroppableProducer(producerSockets, async () => {
    const fresh = kafka.producer({
      transactionalId: id,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      transactionTimeout: TRANSACTION_TIMEOUT_MS,
      createPartitioner: countingPartitioner(counts),
    })
    await fresh.connect()
    // kafkajs initializes the transactional id on the first transaction: do it now, so that
    // connect() fences the previous holder of the id before the checkpoint is read.
    const first = await fresh.transaction()
    await first.abort()
    return fresh
  })
  const admin = new LazyAdmin(otherKafka)

  /**
   * Each topic's partition count: the producer's own (see partitionCountsSeen), and for a topic
   * this worker's producer has not sent to yet in this process, the admin's metadata, asked for up to
   * PARTITIONS_WAIT_MS. A topic whose count is unknown still goes as the producer groups it.
   */
  const partitionCounts = async (chunks: KafkaRecord[][]): Promise<PartitionCounts> => {
    const topics = [...new Set(chunks.flat().map((record) => record.topic))]
    const unknown = topics.filter((topic) => !counts.has(topic))
    if (unknown.length > 0) {
      for (const [topic, count] of (await readPartitionCounts(unknown)) ?? [])
        if (!counts.has(topic)) counts.set(topic, count)
    }
    return counts
  }
  /** The topics' partition counts, or undefined when Kafka does not tell within PARTITIONS_WAIT_MS. */
  const readPartitionCounts = async (topics: string[]): Promise<Map<string, number> | undefined> => {
    try {
      const reading = admin.connected().then((a) => a.fetchTopicMetadata({ topics }))
      const metadata = await withTimeout(reading, PARTITIONS_WAIT_MS)
      return new Map(metadata.topics.map((topic) => [topic.name, topic.partitions.length]))
    } catch {
      return undefined
    }
  }

  /**
   * Sends the chunks in one transaction, a request per partition (see partitionRequests);
   * `commit` false aborts it (a probe).
   */
  const transact = async (chunks: KafkaRecord[][], commit: boolean) => {
    const p = producer.current
    if (!p) throw new Error('the transactional producer was dropped after a failure: the session ends')
    const started = Date.now()
    const partitions = await partitionCounts(chunks)
    const transaction = await p.transaction()
    try {
      for (const chunk of chunks)
        for (const request of partitionRequests(chunk, partitions))
          await transaction.sendBatch({ acks: -1, topicMessages: request })
      if (commit) await transaction.commit()
      else await transaction.abort()
    } catch (error) {
      // Aborted, the producer can go on (a refused record is probed with it). When the abort
      // fails too, it is dropped: Kafka aborts what it left open when the id is next initialized,
      // by a new session (or after transaction.timeout.ms).
      const aborted = await transaction.abort().then(
        () => true,
        () => false,
      )
      if (!aborted) await producer.drop()
      throw timedOut(error, Date.now() - started) ?? error
    }
  }

  return {
    async connect() {
      await ensureCheckpointTopic(await admin.connected(), topic)
      try {
        await producer.connected()
      } catch (error) {
        await producer.drop()
        throw error
      }
    },
    readCheckpoint: () => readCheckpoint(config, otherKafka, admin, topic, id),
    commitTransaction: (chunks, checkpoint) => transact([...chunks, [checkpoint]], true),
    probe: (records) => transact([records], false),
    unavailableTopics: (topics) => admin.unavailable(topics),
    async disconnect() {
      producerSockets.seal()
      otherSockets.seal()
      await Promise.all([producer.drop(), admin.disconnect()])
    },
  }
}

/**
 * The latest committed checkpoint of the transactional id `id` in `topic` (readLatest), read with
 * kafkajs clients of the publisher's own, whichever client its transactions use.
 */
export async function readCheckpoint(
  config: WorkerConfig,
  kafka: Kafka,
  admin: LazyAdmin,
  topic: string,
  id: string,
): Promise<Checkpoint | undefined> {
  const read = (partitions: number[]) => highWatermarks(config, topic, partitions)
  const value = await readLatest(kafka, await admin.connected(), read, topic, id)
  return value === undefined ? undefined : parseCheckpoint(value, topic)
}

/**
 * Compacted, with small segments: compaction never cleans the active segment, so with Kafka's
 * default (1 GiB, 7 days) every checkpoint ever written would be re-read at each start.
 */
const CHECKPOINT_TOPIC_CONFIG = [
  { name: 'cleanup.policy', value: 'compact' },
  { name: 'segment.ms', value: String(10 * 60_000) },
  { name: 'segment.bytes', value: String(16 * 1024 * 1024) },
]

/**
 * Kafka aborted the transaction because it outlived TRANSACTION_TIMEOUT_MS: the producer's epoch
 * is bumped, which looks like fencing, but no other worker took over. Retried with back-off.
 */
export function timedOut(error: unknown, elapsedMs: number): Error | undefined {
  if (elapsedMs < TRANSACTION_TIMEOUT_MS || classifyTransactionError(error).kind !== 'fenced') return undefined
  return new Error(
    `the Kafka transaction took ${Math.round(elapsedMs / 1000)} s, longer than the transaction timeout (${TRANSACTION_TIMEOUT_MS / 1000} s), and Kafka aborted it: a PostgreSQL transaction this large cannot be delivered exactly once (see docs/exactly-once.md): ${(error as Error).message}`,
  )
}

/**
 * Creates the checkpoint topic, compacted, when it is missing. A compacted topic keeps each
 * worker's latest checkpoint for good; a plain one would lose it to retention (then the next
 * start after a replay would publish duplicates).
 */
export async function ensureCheckpointTopic(admin: Admin, topic: string): Promise<void> {
  if ((await admin.listTopics()).includes(topic)) return
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, configEntries: CHECKPOINT_TOPIC_CONFIG }],
    })
  } catch (error) {
    const types = [...errorTree(error)].map((fields) => fields.type)
    if (types.includes('TOPIC_ALREADY_EXISTS')) return
    // TOPIC_AUTHORIZATION_FAILED or CLUSTER_AUTHORIZATION_FAILED, at whatever depth kafkajs put it.
    if (!types.some((type) => typeof type === 'string' && type.endsWith('_AUTHORIZATION_FAILED'))) throw error
    throw new OutboxSetupError(
      `the checkpoint topic "${topic}" does not exist and this worker may not create it: create it compacted (kafka-topics.sh --create --topic ${topic} --partitions 1 --config cleanup.policy=compact --config segment.ms=600000 --config segment.bytes=16777216), or grant CREATE, or name another with --checkpoint-topic`,
      { code: 'OUTBOX_CHECKPOINT_TOPIC', cause: error },
    )
  }
}

/**
 * Each partition's high watermark (read_uncommitted ListOffsets, latest), which kafkajs cannot
 * ask for: its admin lists offsets read_committed, which stop at another producer's open
 * transaction. A client of its own, closed at once.
 */
export async function highWatermarks(
  config: WorkerConfig,
  topic: string,
  partitions: number[],
): Promise<Map<number, bigint>> {
  const admin = new PlatformaticAdmin(platformaticClientOptions(config))
  try {
    const listed = await admin.listOffsets({
      isolationLevel: 0, // READ_UNCOMMITTED
      topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp: -1n })) }],
    })
    const result = new Map<number, bigint>()
    for (const t of listed) for (const p of t.partitions) result.set(p.partitionIndex, p.offset)
    return result
  } finally {
    await admin.close().catch(() => {})
  }
}
