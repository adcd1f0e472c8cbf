import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import {
  Admin,
  type BaseOptions,
  type Producer as KafkaProducer,
  type MessageToProduce,
  Producer,
  type ProducerOptions,
  stringSerializers,
} from '@platformatic/kafka'
import type { WorkerConfig } from '../operations/config.js'
import { keyHash } from './key-hash.js'
import { memo } from './memo.js'
import type { Publisher } from './publisher.js'
import type { KafkaRecord } from './records.js'
import { resetConnection } from './reset-connection.js'

type StringProducer = KafkaProducer<string, string, string, string>

/** The options both clients of one publisher share: brokers, client id, TLS, SASL, timeouts. */
export function platformaticClientOptions(config: WorkerConfig): BaseOptions {
  const options: BaseOptions = {
    clientId: config.kafkaClientId,
    bootstrapBrokers: config.kafkaBrokers,
    connectTimeout: 3000,
    // Retries inside the library stay short, as with kafkajs: the relay's own loop retries
    // forever with backoff and a fresh producer, and logs each failure once.
    retries: 3,
    retryDelay: 250,
    metadataMaxAge: 5000,
  }
  if (config.kafkaSsl) {
    options.tls = config.kafkaSslCaFile ? { ca: [readFileSync(config.kafkaSslCaFile, 'utf8')] } : {}
    // SNI and certificate checks by host name, as kafkajs does; not for brokers given by address.
    if (config.kafkaBrokers.every((broker) => !isIP(broker.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')))) {
      options.tlsServerName = true
    }
  }
  if (config.kafkaSaslMechanism) {
    options.sasl = {
      // Kafka's spelling (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); the config keeps kafkajs's.
      mechanism: config.kafkaSaslMechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
      username: config.kafkaSaslUsername ?? '',
      password: config.kafkaSaslPassword ?? '',
    }
  }
  return options
}

/**
 * The producer settings of both publishers (at-least-once and transactional): idempotent, acks
 * from all in-sync replicas, Kafka's Java partitioner, string serializers.
 */
export function producerOptions(options: BaseOptions): ProducerOptions<string, string, string, string> {
  return {
    ...options,
    idempotent: true,
    acks: -1,
    // How long the broker may wait for all in-sync replicas, as kafkajs's default.
    timeout: 30_000,
    requestTimeout: 30_000,
    autocreateTopics: true,
    // Header names repeat on every record (id, type, aggregateType, aggregateId): their bytes are
    // made once. The library only reads what a serializer returns.
    serializers: { ...stringSerializers, headerKey: headerNameSerializer },
    // Kafka's Java client (and kafkajs) place a key by murmur2 & 0x7fffffff; the library's
    // default keeps the sign bit, which puts some keys on other partitions. Switching clients
    // must not move an aggregate to another partition. Its compatibilityPartitioner places keys
    // as this does, ~15 times slower (key-hash.ts).
    partitioner: javaCompatiblePartitioner,
  }
}

/**
 * The library's compatibilityPartitioner (the key is the serialized Buffer; the library takes the
 * result modulo the partition count), with the worker's keyHash.
 */
function javaCompatiblePartitioner(_message: unknown, key: Buffer | undefined): number {
  return Buffer.isBuffer(key) ? keyHash(key) : 0
}

/** Names up to this many characters are kept: the worker's own four, and any app's usual ones. */
const CACHED_HEADER_NAME_LENGTH = 64

const headerNameBytes = memo((name) => {
  // Memory of its own: a slice of Node's shared 8 KiB pool, kept, would keep the whole pool alive.
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(name, 'utf8'))
  bytes.write(name, 'utf8')
  return bytes
}, 100)

/**
 * The library's string serializer for header names, with the bytes of short names made once
 * (at most 100 of them, 192 bytes each, are kept); a long name is serialized as the library would.
 */
function headerNameSerializer(name?: string): Buffer | undefined {
  if (typeof name !== 'string') return undefined
  return name.length <= CACHED_HEADER_NAME_LENGTH ? headerNameBytes(name) : Buffer.from(name, 'utf8')
}

/** A record as the library sends it. */
export function platformaticMessage(record: KafkaRecord): MessageToProduce<string, string, string, string> {
  // A Map, which the library takes as it is; an object it copies into one through Object.entries.
  const headers = new Map<string, string>()
  for (const name in record.headers) {
    if (Object.hasOwn(record.headers, name)) headers.set(name, record.headers[name] as string)
  }
  return {
    topic: record.topic,
    key: record.key,
    // A null value is a tombstone, as kafkajs sends it (the serializer maps it to null).
    value: record.value as string,
    headers,
    timestamp: BigInt(record.timestamp),
  }
}

/**
 * Cuts a client off for good: resets (RST) every connection it holds, which fails its requests in
 * flight at once, then closes it, which closes its connection pool so that no new connection can
 * be made (the equivalent of kafkajs-publisher's FencedSockets). The library's own close ends
 * sockets gracefully, and the kernel would keep retransmitting an unacknowledged produce request.
 */
export async function fence(client: StringProducer | Admin | undefined): Promise<void> {
  if (!client) return
  for (const [, connection] of client.connections) if (connection.socket) resetConnection(connection.socket)
  try {
    // force: a send in flight would otherwise make the producer refuse to close.
    if (client instanceof Admin) await client.close()
    else await client.close(true)
  } catch {
    // Closing a reset connection may report the reset: the client is closed either way.
  }
}

/**
 * The @platformatic/kafka publisher of one session, with kafkajs-publisher's contract: an
 * idempotent producer (the library then forces acks=all and one request in flight, so records of
 * one partition are written in the order given), dropped and fenced after a failed send so the
 * next send starts with a clean producer id; disconnect() fences everything, so nothing of this
 * session can reach Kafka after the next session's records.
 */
export function createPlatformaticPublisher(config: WorkerConfig): Publisher {
  const options = platformaticClientOptions(config)
  let producer: StringProducer | undefined
  let admin: Admin | undefined
  let closed = false

  const connected = async (): Promise<StringProducer> => {
    if (closed) throw new Error('this publisher is closed')
    if (producer) return producer
    const fresh: StringProducer = new Producer(producerOptions(options))
    producer = fresh
    return fresh
  }
  const drop = async () => {
    const old = producer
    producer = undefined
    await fence(old)
  }

  return {
    async connect() {
      try {
        // The library connects lazily: asking for the cluster's metadata proves Kafka answers.
        await (await connected()).metadata({ topics: [] })
      } catch (error) {
        await drop()
        throw error
      }
    },
    async send(records) {
      try {
        const p = await connected()
        await p.send({
          messages: records.map(platformaticMessage),
        })
      } catch (error) {
        await drop()
        throw error
      }
    },
    async unavailableTopics(topics) {
      if (closed) throw new Error('this publisher is closed')
      admin ??= new Admin(options)
      try {
        // A metadata request for all topics lists those that exist and this client may see.
        const existing = new Set(await admin.listTopics({ includeInternals: true }))
        return topics.filter((topic) => !existing.has(topic))
      } catch (error) {
        const old = admin
        admin = undefined
        await fence(old)
        throw error
      }
    },
    async disconnect() {
      closed = true
      const oldAdmin = admin
      admin = undefined
      await Promise.all([drop(), fence(oldAdmin)])
    },
  }
}
