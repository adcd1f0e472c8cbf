import { randomUUID } from 'node:crypto'
import type { Admin, Kafka } from 'kafkajs'

/** The checkpoint read fails when it has made no progress for this long (not when it is long). */
export const READ_STALL_MS = 60_000

/**
 * The newest committed value for `key` in `topic`, read with read_committed from the beginning.
 * kafkajs reads only through consumer groups: a group of its own, never committed, so no offsets
 * are left behind.
 *
 * Where the read ends: the high watermark (read_uncommitted), not the last stable offset, taken
 * after this worker has initialized its transactional id, so past everything this id ever
 * committed. Another producer's transaction left open on the topic holds read_committed reads
 * back: the read then waits for it (and fails, naming the likely cause, when nothing moves for
 * READ_STALL_MS) rather than return an older checkpoint. kafkajs lists offsets read_committed
 * only, so the watermarks come from `highWatermarks` (another client).
 */
export async function readLatest(
  kafka: Kafka,
  admin: Admin,
  highWatermarks: (partitions: number[]) => Promise<Map<number, bigint>>,
  topic: string,
  key: string,
): Promise<string | undefined> {
  const offsets = await admin.fetchTopicOffsets(topic)
  const watermarks = await highWatermarks(offsets.map((o) => o.partition))
  const remaining = new Map<number, bigint>()
  for (const { partition, low } of offsets) {
    const high = watermarks.get(partition) ?? 0n
    if (high > BigInt(low)) remaining.set(partition, high)
  }
  if (remaining.size === 0) return undefined
  const consumer = kafka.consumer({
    groupId: `${key}.checkpoint-read.${randomUUID()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1_000,
  })
  const position = new Map<number, bigint>()
  let latest: string | undefined
  let timer: NodeJS.Timeout | undefined
  let caughtUp!: () => void
  let stalled!: (error: Error) => void
  const done = new Promise<void>((resolve, reject) => {
    caughtUp = resolve
    stalled = reject
  })
  const progressed = () => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      const at = [...remaining].map(([p, end]) => `partition ${p} at ${position.get(p) ?? 'start'} of ${end}`)
      stalled(
        new Error(
          `reading the checkpoint topic "${topic}" made no progress for ${READ_STALL_MS / 1000} s (${at.join(', ')}): Kafka is unreachable, or another producer has a transaction open on that topic (is it shared with another --transactional-id? the default is a topic per transactional id; set --checkpoint-topic to one only this worker writes)`,
        ),
      )
    }, READ_STALL_MS)
  }
  // Emitted after every fetched batch, also one holding only transaction markers.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    progressed()
    const { partition } = payload
    const end = remaining.get(partition)
    if (end === undefined) return
    position.set(partition, BigInt(payload.lastOffset) + 1n)
    if (BigInt(payload.lastOffset) >= end - 1n) remaining.delete(partition)
    if (remaining.size === 0) caughtUp()
  })
  try {
    progressed()
    const reading = (async () => {
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
          if (message.key?.toString('utf8') === key) latest = message.value?.toString('utf8')
        },
      })
      await done
    })()
    // Whichever settles last must not end the process as an unhandled rejection.
    reading.catch(() => {})
    done.catch(() => {})
    await Promise.race([reading, done])
    return latest
  } finally {
    clearTimeout(timer)
    await consumer.disconnect().catch(() => {})
  }
}
