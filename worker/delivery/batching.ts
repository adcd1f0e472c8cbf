/** Largest Kafka request the relay builds, whatever --batch-size allows (both delivery modes). */
export const MAX_REQUEST_BYTES = 8 * 1024 * 1024

/**
 * What one Kafka request may hold, for both delivery modes: at most --batch-size records and
 * MAX_REQUEST_BYTES, and at most --max-message-bytes for one topic. Kafka limits a partition's
 * record batch to its max.message.bytes, and the clients put a request's records for one
 * partition into one batch: bounding each topic's bytes bounds each of its partitions', so a full
 * request of large events is never refused as a whole.
 */
export class RequestBudget {
  private count = 0
  private bytes = 0
  private readonly topicBytes = new Map<string, number>()

  constructor(private readonly limits: { batchSize: number; maxMessageBytes: number }) {}

  /** Counts the record in if it fits, and says whether it did. The first record always fits. */
  add(topic: string, size: number): boolean {
    const forTopic = (this.topicBytes.get(topic) ?? 0) + size
    const full =
      this.count >= this.limits.batchSize ||
      this.bytes + size > MAX_REQUEST_BYTES ||
      forTopic > this.limits.maxMessageBytes
    if (this.count > 0 && full) return false
    this.count++
    this.bytes += size
    this.topicBytes.set(topic, forTopic)
    return true
  }
}

/**
 * How many items, from `start` on, one request may hold (RequestBudget); at least one. Both
 * deliveries cut their requests this way: at-least-once from the head of its queue, exactly-once
 * a Kafka transaction into several requests.
 */
export function requestLength<T>(
  items: readonly T[],
  start: number,
  limits: { batchSize: number; maxMessageBytes: number },
  sizeOf: (item: T) => { topic: string; bytes: number },
): number {
  const budget = new RequestBudget(limits)
  let end = start
  while (end < items.length) {
    const { topic, bytes } = sizeOf(items[end] as T)
    if (!budget.add(topic, bytes)) break
    end++
  }
  return end - start
}

/**
 * How both deliveries search a batch Kafka refused for the record it refuses: halved, the first
 * half tried before the second (records keep their order), until the refused record is alone.
 */
export function halves<T>(items: T[]): [T[], T[]] {
  const middle = Math.ceil(items.length / 2)
  return [items.slice(0, middle), items.slice(middle)]
}
