import { readFileSync } from 'node:fs'
import { isIP, connect as netConnect, Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { type Admin, type ISocketFactory, Kafka, type KafkaConfig, logLevel, type SASLOptions } from 'kafkajs'
import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import { DroppableProducer, topicMessages } from './kafkajs-producer.js'
import type { Publisher } from './publisher.js'
import { resetConnection } from './reset-connection.js'

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
 * The sockets of one kafkajs client, so that a producer given up on can be cut off for good.
 * kafkajs's disconnect ends a socket gracefully, so the kernel keeps retransmitting a request the
 * broker has not acknowledged yet (for minutes, through a partition); and a send that fails while
 * disconnected makes kafkajs reconnect on its own. Resetting the sockets (RST) drops what is
 * unsent, and once sealed no new connection can be made.
 */
export class FencedSockets {
  private readonly sockets = new Set<Socket>()
  private sealed = false

  readonly factory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    if (this.sealed) {
      const dead = new Socket()
      process.nextTick(() => dead.destroy(new Error('this publisher is closed')))
      return dead
    }
    const socket = ssl
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
      : netConnect({ host, port }, onConnect)
    socket.setKeepAlive(true, 60_000)
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    return socket
  }

  /**
   * Resets every open connection. kafkajs listens for 'error' and 'end', not 'close': without
   * the error it would learn of the reset only when its request timed out (30 s).
   */
  resetAll(): void {
    for (const socket of this.sockets) {
      resetConnection(socket)
      socket.emit('error', new Error('connection reset: the relay gave this producer up'))
    }
    this.sockets.clear()
  }

  /** Resets every open connection and refuses new ones. */
  seal(): void {
    this.sealed = true
    this.resetAll()
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
  const adminKafka = new Kafka({ ...kafkaClientConfig(config, logger), socketFactory: adminSockets.factory })
  const producer = new DroppableProducer(producerSockets, async () => {
    const fresh = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true })
    await fresh.connect()
    return fresh
  })
  let admin: Admin | undefined

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
    async unavailableTopics(topics) {
      if (!admin) {
        const fresh = adminKafka.admin()
        admin = fresh
        await fresh.connect()
      }
      // A metadata request for all topics lists those that exist and this client may see.
      const existing = new Set(await admin.listTopics())
      return topics.filter((topic) => !existing.has(topic))
    },
    async disconnect() {
      producerSockets.seal()
      adminSockets.seal()
      const oldAdmin = admin
      admin = undefined
      await Promise.all([producer.drop(), oldAdmin?.disconnect().catch(() => {})])
    },
  }
}
