import { type Consumer, type IHeaders, Kafka, type KafkaMessage, logLevel } from 'kafkajs'

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
 *
 * This is the checker of every delivery test, so it must outlive the faults it watches. A kafkajs
 * consumer that meets an error it deems not retriable (seen after a broker restart) stops for
 * good, silently: the tests then saw a worker that had delivered everything as one that stalled.
 * So a crashed consumer is replaced by a new one of the same group, and a record read twice (the
 * new consumer starts from the last committed offset) is kept once: `messages` is what Kafka
 * holds, one entry per record, whatever the checker went through.
 */
export async function collectTopics(
  brokers: string[],
  topics: RegExp | string[],
  options: { fromBeginning?: boolean } = {},
) {
  const groupId = `test-${Math.random().toString(36).slice(2)}`
  const messages: ReceivedMessage[] = []
  const seen = new Set<string>()
  /** Per `topic/partition`, the offset after the last batch read (transaction markers included). */
  const positions = new Map<string, bigint>()
  let consumer: Consumer | undefined
  let stopped = false
  if (Array.isArray(topics)) await ensureTopics(brokers, topics)

  const startConsumer = async (): Promise<Promise<void>> => {
    const fresh = testKafka(brokers).consumer({
      groupId,
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
    consumer = fresh
    fresh.on(fresh.events.END_BATCH_PROCESS, ({ payload }) => {
      const at = `${payload.topic}/${payload.partition}`
      const next = BigInt(payload.lastOffset) + 1n
      if (next > (positions.get(at) ?? 0n)) positions.set(at, next)
    })
    fresh.on(fresh.events.CRASH, ({ payload }) => {
      if (payload.restart || stopped) return // kafkajs restarts it itself
      process.stderr.write(`test consumer ${groupId} crashed (${payload.error.message}); starting a new one\n`)
      const replace = async () => {
        while (!stopped) {
          try {
            await startConsumer()
            if (stopped) await consumer?.disconnect() // stop() ran while it started
            return
          } catch {
            await new Promise((r) => setTimeout(r, 1000))
          }
        }
      }
      void replace()
    })
    await fresh.connect()
    await fresh.subscribe({
      topics: Array.isArray(topics) ? topics : [topics],
      fromBeginning: options.fromBeginning ?? true,
    })
    // Resolve only once partitions are assigned: until then nothing is fetched, and a latency
    // measured from a commit made meanwhile would include the group join.
    const joined = new Promise<void>((resolve) => fresh.on(fresh.events.GROUP_JOIN, () => resolve()))
    await fresh.run({
      eachMessage: async ({ topic, partition, message }) => {
        const at = `${topic}/${partition}/${message.offset}`
        if (seen.has(at)) return
        seen.add(at)
        messages.push(toReceived(topic, partition, message))
      },
    })
    return joined
  }

  const joined = await startConsumer()
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
    /**
     * Resolves once every partition has been read up to where it ends now: whatever Kafka holds
     * at the call is then in `messages`. The end of a finished Kafka transaction is its marker,
     * which the read passes too.
     */
    async readToEnd(timeoutMs = 30_000): Promise<void> {
      if (!Array.isArray(topics)) throw new Error('readToEnd needs the topics by name')
      const admin = testKafka(brokers).admin()
      await admin.connect()
      const ends = new Map<string, bigint>()
      try {
        for (const topic of topics)
          for (const p of await admin.fetchTopicOffsets(topic))
            if (BigInt(p.high) > BigInt(p.low)) ends.set(`${topic}/${p.partition}`, BigInt(p.high))
      } finally {
        await admin.disconnect()
      }
      const deadline = Date.now() + timeoutMs
      const behind = () => [...ends].filter(([at, end]) => (positions.get(at) ?? 0n) < end)
      while (behind().length > 0) {
        if (Date.now() > deadline)
          throw new Error(
            `not read to the end after ${timeoutMs} ms: ${behind()
              .map(([at, end]) => `${at} at ${positions.get(at) ?? 0n} of ${end}`)
              .join(', ')}`,
          )
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    stop: async () => {
      stopped = true
      await consumer?.disconnect()
    },
  }
}

/** How many records the topics hold (the sum of their partitions' high watermarks). */
export async function recordCount(brokers: string[], topics: string[]): Promise<number> {
  const admin = testKafka(brokers).admin()
  await admin.connect()
  try {
    let count = 0
    for (const topic of topics)
      for (const p of await admin.fetchTopicOffsets(topic)) count += Number(p.high) - Number(p.low)
    return count
  } finally {
    await admin.disconnect()
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
