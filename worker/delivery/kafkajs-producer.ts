import type { Producer } from 'kafkajs'
import type { FencedSockets } from './kafkajs-sockets.js'
import type { KafkaRecord } from './records.js'

/**
 * A kafkajs producer made when first needed and dropped after a failure, its sockets reset
 * (FencedSockets): the next call makes a new one, with a clean producer id and sequence numbers
 * instead of state half-broken by an outage, and nothing of the old one left in flight.
 */
export class DroppableProducer {
  private producer: Producer | undefined

  constructor(
    private readonly sockets: FencedSockets,
    /** Makes and connects a producer (and, for transactions, initializes its id). */
    private readonly make: () => Promise<Producer>,
  ) {}

  /** The producer if one is connected; undefined after a drop, until connected() makes another. */
  get current(): Producer | undefined {
    return this.producer
  }

  async connected(): Promise<Producer> {
    this.producer ??= await this.make()
    return this.producer
  }

  async drop(): Promise<void> {
    const old = this.producer
    this.producer = undefined
    this.sockets.resetAll()
    await old?.disconnect().catch(() => {})
  }
}

/** A request's records grouped by topic, in the order given within each, as sendBatch takes them. */
export function topicMessages(records: KafkaRecord[]) {
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
