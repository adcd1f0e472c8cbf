import { readFileSync } from 'node:fs'
import { Kafka, type KafkaConfig, logLevel, type SASLOptions } from 'kafkajs'
import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import { LazyAdmin } from './kafkajs-admin.js'
import { javaCompatiblePartitioner } from './kafkajs-partitioner.js'
import { DroppableProducer, topicMessages } from './kafkajs-producer.js'
import { FencedSockets } from './kafkajs-sockets.js'
import type { Publisher } from './publisher.js'

export function kafkaClientConfig(config: WorkerConfig, logger: Logger): KafkaConfig {
  const kafkaLogger = logger.child({ component: 'kafkajs' })
  let sasl: SASLOptions | undefined
  if (config.kafkaSaslMechanism) {
    sasl = {
      mechanism: config.kafkaSaslMechanism,
      username: config.kafkaSaslUsername ?? '',
      password: config.kafkaSaslPassword ?? '',
    } as SASLOptions
  }
  return {
    clientId: config.kafkaClientId,
    brokers: config.kafkaBrokers,
    ssl: config.kafkaSsl
      ? config.kafkaSslCaFile
        ? { ca: [readFileSync(config.kafkaSslCaFile, 'utf8')] }
        : true
      : undefined,
    sasl,
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    // Retries inside kafkajs stay short: the relay's own loop retries forever with backoff
    // and a fresh producer, and logs each failure once.
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    // kafkajs logs every failed connection attempt; the relay reports outages itself.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) => {
        const { message, ...extra } = log
        if (level <= logLevel.WARN) kafkaLogger.debug(extra, message)
      },
  }
}

/**
 * The kafkajs publisher of one session: an idempotent producer with acks=all and one request in
 * flight, so records of one partition are written in the order given. After a failed send (whose
 * promise has settled: kafkajs's own retries are over) the producer is dropped, its connections
 * reset, and the next send builds a new one: a clean producer id and sequence numbers instead of
 * state half-broken by an outage, and nothing of the old one left in flight. disconnect() seals
 * it: whatever kafkajs still tries afterwards fails at once, so a send in flight settles quickly
 * and nothing of this session can reach Kafka after the next session's records.
 */
export function createKafkaPublisher(config: WorkerConfig, logger: Logger): Publisher {
  const producerSockets = new FencedSockets()
  const adminSockets = new FencedSockets()
  const kafka = new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: producerSockets.factory })
  const admin = new LazyAdmin(new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: adminSockets.factory }))
  const producer = new DroppableProducer(producerSockets, async () => {
    const fresh = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      createPartitioner: javaCompatiblePartitioner,
    })
    await fresh.connect()
    return fresh
  })

  return {
    async connect() {
      try {
        await producer.connected()
      } catch (error) {
        await producer.drop()
        throw error
      }
    },
    async send(records) {
      try {
        const p = await producer.connected()
        await p.sendBatch({ acks: -1, topicMessages: topicMessages(records) })
      } catch (error) {
        await producer.drop()
        throw error
      }
    },
    unavailableTopics: (topics) => admin.unavailable(topics),
    async disconnect() {
      producerSockets.seal()
      adminSockets.seal()
      await Promise.all([producer.drop(), admin.disconnect()])
    },
  }
}
