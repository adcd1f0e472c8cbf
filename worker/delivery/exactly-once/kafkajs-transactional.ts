import { randomUUID } from 'node:crypto'
import { type Admin, Kafka, type Producer } from 'kafkajs'
import type { WorkerConfig } from '../../operations/config.js'
import { OutboxSetupError } from '../../operations/errors.js'
import type { Logger } from '../../operations/logger.js'
import type { Lsn } from '../../stream/lsn.js'
import { FencedSockets, kafkaClientConfig } from '../kafkajs-publisher.js'
import type { KafkaRecord } from '../records.js'
import { parseCheckpoint, transactionalId } from './checkpoint.js'
import type { TransactionalPublisher } from './transactional-publisher.js'

/** How long reading the checkpoint may take before the session gives up and retries. */
const READ_TIMEOUT_MS = 60_000

/**
 * The kafkajs transactional publisher of one session: a producer with the worker's
 * transactional id (idempotent, acks=all, one request in flight, as kafkajs requires). After a
 * failure the producer is dropped and its sockets reset, as the at-least-once publisher does; the
 * next one initializes the id again, which aborts whatever the dropped one left open.
 */
export function createKafkajsTransactionalPublisher(config: WorkerConfig, logger: Logger): TransactionalPublisher {
  const id = transactionalId(config)
  const topic = config.checkpointTopic
  const producerSockets = new FencedSockets()
  const otherSockets = new FencedSockets()
  const kafka = new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: producerSockets.factory })
  const otherKafka = new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: otherSockets.factory })
  let producer: Producer | undefined
  let admin: Admin | undefined

  const connected = async (): Promise<Producer> => {
    if (producer) return producer
    const fresh = kafka.producer({
      transactionalId: id,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
    })
    await fresh.connect()
    // kafkajs initializes the transactional id on the first transaction: do it now, so that
    // connect() fences the previous holder of the id before the checkpoint is read.
    const first = await fresh.transaction()
    await first.abort()
    producer = fresh
    return fresh
  }
  const drop = async () => {
    const old = producer
    producer = undefined
    producerSockets.resetAll()
    await old?.disconnect().catch(() => {})
  }
  const connectedAdmin = async (): Promise<Admin> => {
    if (admin) return admin
    const fresh = otherKafka.admin()
    await fresh.connect()
    admin = fresh
    return fresh
  }

  /** Sends the chunks in one transaction, a request each; `commit` false aborts it (a probe). */
  const transact = async (chunks: KafkaRecord[][], commit: boolean) => {
    let p: Producer
    try {
      p = await connected()
    } catch (error) {
      await drop()
      throw error
    }
    const transaction = await p.transaction()
    try {
      for (const chunk of chunks) await transaction.sendBatch({ acks: -1, topicMessages: byTopic(chunk) })
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
      if (!aborted) await drop()
      throw error
    }
  }

  return {
    async connect() {
      await ensureCheckpointTopic(await connectedAdmin(), topic)
      try {
        await connected()
      } catch (error) {
        await drop()
        throw error
      }
    },
    async readCheckpoint(): Promise<Lsn | undefined> {
      const value = await readLatest(otherKafka, await connectedAdmin(), topic, id)
      return value === undefined ? undefined : parseCheckpoint(value, topic)
    },
    commitTransaction: (chunks, checkpoint) => transact([...chunks, [checkpoint]], true),
    probe: (records) => transact([records], false),
    async disconnect() {
      producerSockets.seal()
      otherSockets.seal()
      const oldAdmin = admin
      admin = undefined
      await Promise.all([drop(), oldAdmin?.disconnect().catch(() => {})])
    },
  }
}

function byTopic(records: KafkaRecord[]) {
  const topics = new Map<string, KafkaRecord[]>()
  for (const record of records) {
    const list = topics.get(record.topic)
    if (list) list.push(record)
    else topics.set(record.topic, [record])
  }
  return [...topics].map(([topic, list]) => ({
    topic,
    messages: list.map((r) => ({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp })),
  }))
}

/**
 * Creates the checkpoint topic, compacted, when it is missing. A compacted topic keeps each
 * worker's latest checkpoint for good; a plain one would lose it to retention (then the next
 * start after a replay would publish duplicates).
 */
async function ensureCheckpointTopic(admin: Admin, topic: string): Promise<void> {
  if ((await admin.listTopics()).includes(topic)) return
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    })
  } catch (error) {
    if ((error as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return
    const denied = JSON.stringify(error, Object.getOwnPropertyNames(error)).includes('AUTHORIZATION_FAILED')
    if (!denied) throw error
    throw new OutboxSetupError(
      `the checkpoint topic "${topic}" does not exist and this worker may not create it: create it with cleanup.policy=compact (kafka-topics.sh --create --topic ${topic} --partitions 1 --config cleanup.policy=compact), or grant CREATE, or name another with --checkpoint-topic`,
      { code: 'OUTBOX_CHECKPOINT_TOPIC', cause: error },
    )
  }
}

/**
 * The newest committed value for `key` in `topic`, read with read_committed from the beginning up
 * to the end offsets Kafka gave before the read. kafkajs reads only through consumer groups: a
 * group of its own, never committed, so no offsets are left behind.
 */
async function readLatest(kafka: Kafka, admin: Admin, topic: string, key: string): Promise<string | undefined> {
  const offsets = await admin.fetchTopicOffsets(topic)
  const remaining = new Map<number, bigint>()
  for (const { partition, high, low } of offsets) if (BigInt(high) > BigInt(low)) remaining.set(partition, BigInt(high))
  if (remaining.size === 0) return undefined
  const consumer = kafka.consumer({
    groupId: `${key}.checkpoint-read.${randomUUID()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1_000,
  })
  let latest: string | undefined
  let timer: NodeJS.Timeout | undefined
  try {
    const caughtUp = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`reading the checkpoint topic "${topic}" did not reach its end in ${READ_TIMEOUT_MS} ms`)),
        READ_TIMEOUT_MS,
      )
      // Emitted after every fetched batch, also one holding only transaction markers.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const end = remaining.get(payload.partition)
        if (end !== undefined && BigInt(payload.lastOffset) >= end - 1n) remaining.delete(payload.partition)
        if (remaining.size === 0) resolve()
      })
    })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        if (message.key?.toString('utf8') === key) latest = message.value?.toString('utf8')
      },
    })
    await caughtUp
    return latest
  } finally {
    clearTimeout(timer)
    await consumer.disconnect().catch(() => {})
  }
}
