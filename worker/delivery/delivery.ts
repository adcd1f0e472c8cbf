import type { WorkerConfig } from '../operations/config.js'
import { OutboxPoisonEventError } from '../operations/errors.js'
import { errorFields, type Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { waitBeforeRetry } from '../retry-policy.js'
import { halves, requestLength } from './batching.js'
import {
  type DeliveryHooks,
  type DeliveryItem,
  type EventDelivery,
  type SendError,
  sendErrorOf,
} from './event-delivery.js'
import { deadLetterAcknowledged, deadLetterFor, deadLetterRefused } from './poison.js'
import { classifyPublishError, type Publisher } from './publisher.js'
import { type KafkaRecord, poisonReason, restamped } from './records.js'
import { SendLoop } from './send-loop.js'
import { TopicAvailability, unavailableTopicProblem } from './topic-availability.js'

type SendResult =
  | { kind: 'ok' }
  | { kind: 'refused'; type: string }
  /** These topics stayed unavailable past --missing-topic-timeout. */
  | { kind: 'topics'; topics: string[] }
  /** A topic of several was refused: send each topic on its own to find which. */
  | { kind: 'split-by-topic' }
  /** A record's time is outside what its topic accepts: send the batch again, stamped now. */
  | { kind: 'timestamp' }

/** Records to send together; `stampedNow`: stamped with the time of each attempt (see sendWithRetry). */
interface Part {
  items: DeliveryItem[]
  stampedNow: boolean
}

/**
 * The sending half of a session: takes records in stream order, batches them, sends them with
 * retries until Kafka acknowledges, and deals with poison. One batch is in flight at a time, so
 * records of one key reach Kafka in stream order. A batch is what one request may hold
 * (RequestBudget).
 */
export class Delivery implements EventDelivery {
  private readonly loop = new SendLoop()
  private readonly topics: TopicAvailability
  lastError: SendError | undefined
  /** At-least-once retries a failed send within the session, and sends records as they come. */
  readonly ending = false
  readonly waitingForCommit = false

  constructor(
    private readonly config: WorkerConfig,
    private readonly publisher: Publisher,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly hooks: DeliveryHooks,
  ) {
    this.topics = new TopicAvailability('at-least-once', config, publisher, metrics, logger)
  }

  /** Nothing queued and nothing in flight. */
  get idle(): boolean {
    return this.loop.queue.length === 0 && !this.loop.busy
  }

  /** Topics that cannot be written now: delivery is held up by them. */
  get blockedTopics(): string[] {
    return this.topics.blocked
  }

  enqueue(item: DeliveryItem): void {
    this.loop.enqueue(item)
  }

  /** Publishes until close(); rejects on what must stop the worker (poison with `stop`, fatal errors). */
  async run(): Promise<void> {
    await this.loop.run({
      take: () => this.takeBatch(),
      send: async (batch) => {
        await this.publish(batch)
        return true
      },
      acknowledged: (batch) => this.hooks.acknowledged(batch),
    })
  }

  /** Stops sending and waits for the send in flight (SendLoop.close). */
  async close(): Promise<void> {
    await this.loop.close(this.publisher)
    this.topics.clear()
  }

  private takeBatch(): DeliveryItem[] {
    const queue = this.loop.queue
    return queue.splice(0, requestLength(queue, 0, this.config, itemSize))
  }

  /** Publishes a batch; poison records go to the dead-letter topic (or stop the worker). */
  private async publish(batch: DeliveryItem[]): Promise<void> {
    const waited = [...new Set(batch.map((i) => i.record.topic).filter((t) => this.topics.expired(t)))]
    if (waited.length > 0) await this.topics.check(waited, { force: true })
    const probing = new Set(waited.filter((t) => this.topics.probeDenied(t)))
    const good: DeliveryItem[] = []
    for (const item of batch) {
      const reason =
        item.poison ??
        poisonReason(item.record, this.config.maxMessageBytes, item.bytes) ??
        (this.topics.expired(item.record.topic) && !probing.has(item.record.topic)
          ? unavailableTopicProblem(item.record.topic)
          : undefined)
      if (reason) await this.poison(item, reason)
      else good.push(item)
    }
    if (good.length > 0) await this.sendAll(good)
  }

  /**
   * Sends items until Kafka has them all (or their dead letters). Each send ends in one result
   * (failedSend classifies), and each result has one action, which gives the parts to send next:
   *
   * | result         | action (nextParts)                                                      |
   * |----------------|-------------------------------------------------------------------------|
   * | ok             | done                                                                    |
   * | timestamp      | send them again stamped now (restampedPart)                             |
   * | split-by-topic | send each topic's records on their own, to find the topic refused      |
   * | topics         | dead-letter the records of topics unavailable past the wait, send the rest |
   * | refused        | halve the part until the record Kafka refuses is alone: dead-letter it  |
   *
   * A part's next parts are all sent before any part after it, in their order, and every action
   * keeps the items' order within a topic: so records of one key reach Kafka in stream order.
   */
  private async sendAll(items: DeliveryItem[]): Promise<void> {
    // The parts still to send, the next one last.
    const pending: Part[] = [{ items, stampedNow: false }]
    for (let part = pending.pop(); part !== undefined; part = pending.pop()) {
      const result = await this.sendWithRetry(
        part.items.map((i) => i.record),
        part.stampedNow,
      )
      pending.push(...(await this.nextParts(part, result)).reverse())
    }
  }

  private async nextParts({ items }: Part, result: SendResult): Promise<Part[]> {
    switch (result.kind) {
      case 'ok':
        return []
      case 'timestamp':
        return [this.restampedPart(items)]
      case 'split-by-topic':
        return byTopic(items).map((group) => ({ items: group, stampedNow: false }))
      case 'topics': {
        const rest: DeliveryItem[] = []
        for (const item of items) {
          if (result.topics.includes(item.record.topic))
            await this.poison(item, unavailableTopicProblem(item.record.topic))
          else rest.push(item)
        }
        return rest.length > 0 ? [{ items: rest, stampedNow: false }] : []
      }
      case 'refused': {
        if (items.length === 1) {
          await this.poison(items[0] as DeliveryItem, `Kafka refused it: ${result.type}`)
          return []
        }
        this.logger.warn(
          { records: items.length, type: result.type },
          'Kafka refused a batch: splitting it to find the record (is --max-message-bytes above the broker limit?)',
        )
        return halves(items).map((half) => ({ items: half, stampedNow: false }))
      }
    }
  }

  /**
   * Good events all the same (a backlog older than the topic's limit, or a clock ahead of the
   * broker's): sent again, in order, stamped with the time they are sent. Not dead-lettered.
   */
  private restampedPart(items: DeliveryItem[]): Part {
    this.logger.warn(
      { records: items.length, topics: [...new Set(items.map((i) => i.record.topic))] },
      "Kafka refused a record's timestamp (INVALID_TIMESTAMP: the row's created_at is outside the topic's message.timestamp.before.max.ms / after.max.ms): sending the batch again stamped with the current time, each record's own time in its originalTimestamp header",
    )
    const now = Date.now()
    return { items: items.map((item) => ({ ...item, record: restamped(item.record, now) })), stampedNow: true }
  }

  /**
   * Sends until Kafka acknowledges, retrying retriable errors forever (retry-policy.ts).
   * Resolves to what happened; throws on fatal errors and when the delivery is closed.
   */
  private async sendWithRetry(records: KafkaRecord[], stampedNow = false): Promise<SendResult> {
    const topics = [...new Set(records.map((r) => r.topic))]
    const { signal } = this.loop
    for (let attempt = 0; ; attempt++) {
      // A closed delivery sends nothing more.
      if (signal.aborted) throw new DeliveryClosedError()
      this.metrics.heartbeat.beat()
      // Records stamped with the time they are sent are stamped again at each attempt: a
      // stamp from before a long outage could fall outside the topic's limit in turn.
      const now = Date.now()
      // Through a promise: a publisher whose send throws before returning one fails like any other.
      const sending = this.loop.track(
        Promise.resolve().then(() =>
          this.publisher.send(stampedNow ? records.map((r) => ({ ...r, timestamp: String(now) })) : records),
        ),
      )
      try {
        await sending
        this.metrics.kafkaConnected.set(1)
        this.lastError = undefined
        this.topics.written(topics)
        this.metrics.batchSize.observe(records.length)
        return { kind: 'ok' }
      } catch (error) {
        if (signal.aborted) throw new DeliveryClosedError()
        const result = await this.failedSend(error, topics, stampedNow)
        if (result) return result
        this.logger.warn(
          {
            ...errorFields(error),
            // Kafka's own error type: a client's wrapper (AggregateError) does not name it.
            type: this.lastError?.type,
            attempt: attempt + 1,
            records: records.length,
          },
          'Kafka send failed; retrying with backoff (nothing is confirmed meanwhile)',
        )
        await waitBeforeRetry(this.config, attempt, signal)
      }
    }
  }

  /**
   * What a failed send means: a result for sendAll to act on, undefined to send the same records
   * again after a pause, or a throw when no retry can help.
   */
  private async failedSend(error: unknown, topics: string[], stampedNow: boolean): Promise<SendResult | undefined> {
    // A TypeError, or a rejection that is no Error, is a bug in a publisher, not an outage:
    // retrying it would hide it behind a live worker. The worker stops and shows it.
    if (!(error instanceof Error) || error instanceof TypeError) throw error
    const { kind, type } = classifyPublishError(error)
    this.lastError = sendErrorOf(this.metrics, error, { kind, type })
    if (kind === 'refused') return { kind: 'refused', type: type ?? 'refused' }
    if (kind === 'fatal') throw error
    // Stamped now and still refused: the broker's clock is far off; retried like an outage.
    if (kind === 'timestamp' && !stampedNow) return { kind: 'timestamp' }
    // Kafka answering a metadata request means it is up: then a topic may be the problem.
    const answered = await this.topics.check(topics)
    // A send failed: whether metadata answers does not make events flow (NOT_ENOUGH_REPLICAS
    // answers metadata and refuses every send).
    this.metrics.kafkaConnected.set(0)
    if (kind === 'topic' && answered && !topics.some((t) => this.topics.blocked.includes(t))) {
      // Listed, yet refused: this worker may see the topic but not write to it.
      if (topics.length > 1) return { kind: 'split-by-topic' }
      this.topics.markDenied(topics[0] as string)
    }
    const expired = topics.filter((t) => this.topics.expired(t))
    if (expired.length > 0) return { kind: 'topics', topics: expired }
    return undefined
  }

  private async poison(item: DeliveryItem, reason: string): Promise<void> {
    const id = item.record.headers.id ?? '?'
    const dead = deadLetterFor(item.record, reason, this.config, this.logger)
    // A dead letter is stamped with the time it is written (toDeadLetter): never 'timestamp'.
    const result = await this.sendWithRetry([dead], true)
    if (result.kind === 'refused') throw deadLetterRefused(id, reason, dead.topic, result.type)
    if (result.kind === 'topics')
      throw new OutboxPoisonEventError(
        id,
        `${reason}; and so is its dead-letter topic: ${unavailableTopicProblem(dead.topic)}`,
      )
    if (result.kind !== 'ok') throw new Error(`a dead letter's send ended as ${result.kind}, not acknowledged`)
    deadLetterAcknowledged(this.metrics, this.hooks, { id, topic: item.record.topic, reason })
  }
}

function itemSize(item: DeliveryItem): { topic: string; bytes: number } {
  return { topic: item.record.topic, bytes: item.bytes }
}

/** Each topic's items in their order; records of different topics have none in Kafka. */
function byTopic(items: DeliveryItem[]): DeliveryItem[][] {
  const groups = new Map<string, DeliveryItem[]>()
  for (const item of items) {
    const group = groups.get(item.record.topic)
    if (group) group.push(item)
    else groups.set(item.record.topic, [item])
  }
  return [...groups.values()]
}

/** The delivery was closed while a send was being tried: the session is ending, not failing. */
class DeliveryClosedError extends Error {
  constructor() {
    super('delivery closed')
    this.name = 'DeliveryClosedError'
  }
}
