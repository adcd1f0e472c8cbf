import type { WorkerConfig } from '../operations/config.js'
import { errorFields, type Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import type { Publisher } from './publisher.js'
import { withTimeout } from './with-timeout.js'

/** How often topics already known to be unavailable are asked about again. */
const RECHECK_MS = 5_000
/** Kafka is asked at most this often while sends keep failing. */
const CHECK_EVERY_MS = 1_000
/** A metadata request that does not answer in this time counts as "cannot tell". */
const CHECK_TIMEOUT_MS = 5_000

/** The fix for a topic Kafka will not take records for: in logs, dead letters and /status. */
export const UNAVAILABLE_TOPIC_FIX = 'create it (and its .dlq topic) or grant WRITE and DESCRIBE on it'

export function unavailableTopicProblem(topic: string): string {
  return `Kafka topic "${topic}" does not exist or this worker may not write to it: ${UNAVAILABLE_TOPIC_FIX}`
}

/**
 * Which topics cannot be written (missing with auto-creation off, or not authorized), since when,
 * and whether the wait for them is over, for both delivery modes. With auto-creation off one
 * event for a missing topic would otherwise hold every later event forever, with nothing naming
 * the topic: here the log and `outbox_topic_unavailable{topic}` name it within seconds. At least
 * once, after `missingTopicTimeoutMs` its events go to the dead-letter topic (or the worker stops,
 * by --on-poison); exactly-once waits for the topic (it never asks expired()). Which of the two
 * a log line promises depends on the delivery running, not on --delivery: the initial snapshot
 * and `republish` send at least once in either mode.
 */
export class TopicAvailability {
  /** Missing, as metadata says: cleared when metadata lists them again. */
  private readonly unavailable = new Map<string, number>()
  /**
   * Refused by the broker (TOPIC_AUTHORIZATION_FAILED) though listed: a principal may DESCRIBE a
   * topic it may not WRITE. Cleared only by a successful send to it.
   */
  private readonly denied = new Map<string, number>()
  private lastCheck = 0
  private lastAnswered = true
  private readonly lastProbe = new Map<string, number>()
  /** When Kafka last acknowledged records for each topic: newer than any answer asked before it. */
  private readonly lastWritten = new Map<string, number>()

  constructor(
    /** What the delivery using it does with events of a topic that stays unavailable. */
    private readonly delivery: 'at-least-once' | 'exactly-once',
    private readonly config: WorkerConfig,
    private readonly publisher: Pick<Publisher, 'unavailableTopics'> | { unavailableTopics?: undefined },
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /** Topics that cannot be written now (for readiness and status). */
  get blocked(): string[] {
    return [...new Set([...this.unavailable.keys(), ...this.denied.keys()])]
  }

  /** Unavailable for longer than the wait: their events are dead-lettered (or stop the worker). */
  expired(topic: string): boolean {
    const since = this.unavailable.get(topic) ?? this.denied.get(topic)
    return since !== undefined && Date.now() - since >= this.config.missingTopicTimeoutMs
  }

  /**
   * For a denied topic past its wait: whether to try a real send again (at most every few
   * seconds), since only a send tells whether the grant came; otherwise its events are poison.
   */
  probeDenied(topic: string): boolean {
    if (!this.denied.has(topic)) return false
    const now = Date.now()
    if (now - (this.lastProbe.get(topic) ?? 0) < RECHECK_MS) return false
    this.lastProbe.set(topic, now)
    return true
  }

  /** The broker refused to let this worker write to `topic`. */
  markDenied(topic: string): void {
    if (this.denied.has(topic)) return
    this.denied.set(topic, Date.now())
    this.reportUnavailable(topic)
  }

  /**
   * Kafka acknowledged records for these topics: they exist and are writable. The gauge is
   * cleared even for a topic this instance never named: exactly-once keeps it across sessions.
   */
  written(topics: string[]): void {
    const now = Date.now()
    for (const topic of topics) {
      this.lastWritten.set(topic, now)
      const wasDenied = this.denied.delete(topic)
      const wasMissing = this.unavailable.delete(topic)
      if (wasDenied || wasMissing) this.reportAvailable(topic)
      else this.metrics.topicUnavailable.remove({ topic })
    }
  }

  /** The session is over: its topics leave the metric (the next session asks again). */
  clear(): void {
    for (const topic of this.blocked) this.metrics.topicUnavailable.remove({ topic })
    this.unavailable.clear()
    this.denied.clear()
  }

  /**
   * Asks Kafka about these topics (at most once a second; `force` for a known-unavailable one,
   * at most every few seconds) and records the answer. Resolves to whether Kafka answered.
   */
  async check(topics: string[], { force = false } = {}): Promise<boolean> {
    const now = Date.now()
    if (now - this.lastCheck < (force ? RECHECK_MS : CHECK_EVERY_MS)) return this.lastAnswered
    this.lastCheck = now
    let missing: string[]
    try {
      if (!this.publisher.unavailableTopics) throw new Error('this publisher cannot ask which topics exist')
      missing = await withTimeout(this.publisher.unavailableTopics(topics), CHECK_TIMEOUT_MS)
    } catch (error) {
      this.logger.debug(errorFields(error), 'could not ask Kafka which topics exist')
      this.lastAnswered = false
      return false
    }
    this.lastAnswered = true
    for (const topic of topics) {
      const known = this.unavailable.has(topic)
      // Kafka acknowledged records for it since the question was asked: the answer is stale.
      if ((this.lastWritten.get(topic) ?? 0) >= now) continue
      if (missing.includes(topic) && !known) {
        this.unavailable.set(topic, now)
        if (!this.denied.has(topic)) this.reportUnavailable(topic)
      } else if (!missing.includes(topic) && known) {
        this.unavailable.delete(topic)
        if (!this.denied.has(topic)) this.reportAvailable(topic)
      } else if (!missing.includes(topic) && !this.denied.has(topic)) {
        // Listed: a gauge an earlier session set (exactly-once keeps it across sessions) is stale.
        this.metrics.topicUnavailable.remove({ topic })
      }
    }
    return true
  }

  private reportUnavailable(topic: string): void {
    this.metrics.topicUnavailable.set({ topic }, 1)
    if (this.delivery === 'exactly-once')
      this.logger.error({ topic }, `${unavailableTopicProblem(topic)}; exactly-once delivery waits until it can`)
    else
      this.logger.error(
        { topic, waitMs: this.config.missingTopicTimeoutMs, onPoison: this.config.onPoison },
        `${unavailableTopicProblem(topic)}; until then its events wait, then go to the dead-letter topic (--on-poison dlq) or stop the worker (--on-poison stop)`,
      )
  }

  private reportAvailable(topic: string): void {
    this.metrics.topicUnavailable.remove({ topic })
    this.logger.info({ topic }, `Kafka topic "${topic}" is available again`)
  }
}
