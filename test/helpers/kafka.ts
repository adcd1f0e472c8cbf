import { type IHeaders, Kafka, type KafkaMessage, logLevel } from 'kafkajs'

export interface ReceivedMessage {
  topic: string
  partition: number
  key: string | null
  value: string | null
  headers: Record<string, string>
  timestamp: number
  offset: string
  receivedAt: number
}

export function testKafka(brokers: string[]): Kafka {
  return new Kafka({ clientId: 'prisma-outbox-test', brokers, logLevel: logLevel.NOTHING })
}

export function decodeHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) out[name] = Array.isArray(value) ? String(value[0]) : String(value)
  }
  return out
}

function toReceived(topic: string, partition: number, message: KafkaMessage): ReceivedMessage {
  return {
    topic,
    partition,
    key: message.key?.toString('utf8') ?? null,
    value: message.value?.toString('utf8') ?? null,
    headers: decodeHeaders(message.headers),
    timestamp: Number(message.timestamp),
    offset: message.offset,
    receivedAt: Date.now(),
  }
}

/**
 * Consumes the topics into `messages` (from the beginning unless told otherwise), until stopped.
 * `waitFor(n)` resolves once n messages have arrived (or rejects after the timeout).
 */
export async function collectTopics(
  brokers: string[],
  topics: RegExp | string[],
  options: { fromBeginning?: boolean } = {},
) {
  const consumer = testKafka(brokers).consumer({
    groupId: `test-${Math.random().toString(36).slice(2)}`,
    // What exactly-once asks of consumers (and kafkajs's default): aborted transactions unseen.
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    metadataMaxAge: 1000,
    // After a broker restart the group must be rejoined; with kafkajs's defaults (30 s session,
    // 60 s rebalance) the fault tests would wait on the checker, not on the relay.
    sessionTimeout: 6000,
    rebalanceTimeout: 6000,
    heartbeatInterval: 1000,
  })
  const messages: ReceivedMessage[] = []
  if (Array.isArray(topics)) await ensureTopics(brokers, topics)
  await consumer.connect()
  await consumer.subscribe({
    topics: Array.isArray(topics) ? topics : [topics],
    fromBeginning: options.fromBeginning ?? true,
  })
  // Resolve only once partitions are assigned: until then nothing is fetched, and a latency
  // measured from a commit made meanwhile would include the group join.
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()))
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      messages.push(toReceived(topic, partition, message))
    },
  })
  await Promise.race([joined, new Promise((r) => setTimeout(r, 30_000))])
  return {
    messages,
    async waitFor(count: number, timeoutMs = 60_000): Promise<ReceivedMessage[]> {
      const deadline = Date.now() + timeoutMs
      while (messages.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`expected ${count} Kafka messages, got ${messages.length} after ${timeoutMs} ms`)
        }
        await new Promise((r) => setTimeout(r, 50))
      }
      return messages
    },
    stop: () => consumer.disconnect(),
  }
}

/**
 * Creates the topics (4 partitions, like the broker's auto-created ones) unless they exist, and
 * returns once every partition has a leader. kafkajs's own `waitForLeaders` retries only
 * LEADER_NOT_AVAILABLE; a KRaft broker that has not applied the new topic's metadata yet answers
 * UNKNOWN_TOPIC_OR_PARTITION instead (seen failing CI's PostgreSQL 14 cell), so this polls itself.
 */
export async function ensureTopics(brokers: string[], topics: string[]): Promise<void> {
  const admin = testKafka(brokers).admin()
  await admin.connect()
  try {
    await admin.createTopics({ waitForLeaders: false, topics: topics.map((topic) => ({ topic, numPartitions: 4 })) })
    const deadline = Date.now() + 30_000
    for (;;) {
      try {
        const { topics: found } = await admin.fetchTopicMetadata({ topics })
        if (found.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return
      } catch (error) {
        if (!(error as { retriable?: boolean }).retriable || Date.now() > deadline) throw error
      }
      if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} have no leaders after 30 s`)
      await new Promise((r) => setTimeout(r, 100))
    }
  } finally {
    await admin.disconnect()
  }
}
