import type { WorkerConfig } from './config.js'
import { errorFields, type Logger } from './logger.js'
import type { Metrics } from './metrics.js'
import type { Publisher } from './publisher.js'

/** How often topics already known to be unavailable are asked about again. */
const RECHECK_MS = 5_000
/** Kafka is asked at most this often while sends keep failing. */
const CHECK_EVERY_MS = 1_000
/** A metadata request that does not answer in this time counts as "cannot tell". */
const CHECK_TIMEOUT_MS = 5_000

/**
 * Which topics cannot be written (missing with auto-creation off, or not authorized), since when,
 * and whether the wait for them is over. With auto-creation off one event for a missing topic
 * would otherwise hold every later event forever, with nothing naming the topic: here the log
 * and `outbox_topic_unavailable{topic}` name it within seconds, and after `missingTopicTimeoutMs`
 * its events go to the dead-letter topic (or the worker stops, by --on-poison).
 */
export class TopicAvailability {
  private readonly unavailable = new Map<string, number>()
  private lastCheck = 0

  constructor(
    private readonly config: WorkerConfig,
    private readonly publisher: Publisher,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /** Topics that cannot be written now (for readiness and status). */
  get blocked(): string[] {
    return [...this.unavailable.keys()]
  }

  /** Unavailable for longer than the wait: their events are dead-lettered (or stop the worker). */
  expired(topic: string): boolean {
    const since = this.unavailable.get(topic)
    return since !== undefined && Date.now() - since >= this.config.missingTopicTimeoutMs
  }

  /**
   * Asks Kafka about these topics (at most once a second; `force` for a known-unavailable one,
   * at most every few seconds) and records the answer. Resolves to whether Kafka answered.
   */
  async check(topics: string[], { force = false } = {}): Promise<boolean> {
    const now = Date.now()
    if (now - this.lastCheck < (force ? RECHECK_MS : CHECK_EVERY_MS)) return true
    this.lastCheck = now
    let missing: string[]
    try {
      missing = await withTimeout(this.publisher.unavailableTopics(topics), CHECK_TIMEOUT_MS)
    } catch (error) {
      this.logger.debug(errorFields(error), 'could not ask Kafka which topics exist')
      return false
    }
    for (const topic of topics) {
      const known = this.unavailable.has(topic)
      if (missing.includes(topic) && !known) {
        this.unavailable.set(topic, now)
        this.metrics.topicUnavailable.set({ topic }, 1)
        this.logger.error(
          { topic, waitMs: this.config.missingTopicTimeoutMs, onPoison: this.config.onPoison },
          `Kafka topic "${topic}" does not exist or this worker may not write to it: create it ` +
            '(and its .dlq topic) or grant WRITE and DESCRIBE on it; until then its events wait, ' +
            `then go to the dead-letter topic (--on-poison dlq) or stop the worker (--on-poison stop)`,
        )
      } else if (!missing.includes(topic) && known) {
        this.unavailable.delete(topic)
        this.metrics.topicUnavailable.remove({ topic })
        this.logger.info({ topic }, `Kafka topic "${topic}" is available again`)
      }
    }
    return true
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
