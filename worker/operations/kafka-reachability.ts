import type { PublisherFactory } from '../delivery/publisher.js'
import { errorFields, type Logger } from './logger.js'
import { STANDBY_KAFKA_CHECK_MS } from './probes.js'

/**
 * Whether this worker can reach Kafka, as readiness needs to know it: a publisher connected as a
 * session would connect it, then let go. At start the worker waits until this succeeds (a first
 * start that cannot reach Kafka must not create a slot); a standby checks again in the background
 * every STANDBY_KAFKA_CHECK_MS, since its readiness promises it could take over, and that needs
 * Kafka as much as the slot.
 */
export class KafkaReachability {
  /** When Kafka was last reached; a failed check leaves it to age, and readiness with it. */
  checkedAt: number | undefined
  private standbyCheck: Promise<void> | undefined

  constructor(
    private readonly deps: {
      createPublisher: PublisherFactory
      logger: Logger
      /** Rejects when the worker is stopped: a check in flight does not hold the stop up. */
      stopped: () => Promise<never>
      signal: AbortSignal
      now?: () => number
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)()
  }

  /** Connects once; rejects with the client's error when Kafka cannot be reached. */
  async check(): Promise<void> {
    const publisher = this.deps.createPublisher()
    try {
      await publisher.connect()
    } finally {
      await publisher.disconnect().catch(() => {})
    }
    this.checkedAt = this.now()
  }

  /**
   * A standby's check, at most every STANDBY_KAFKA_CHECK_MS and one at a time. The worker does not
   * wait for it (the slot is tried on meanwhile); the promise is for tests.
   */
  checkAsStandby(): Promise<void> {
    if (this.standbyCheck) return this.standbyCheck
    if (this.now() - (this.checkedAt ?? 0) < STANDBY_KAFKA_CHECK_MS) return Promise.resolve()
    this.standbyCheck = Promise.race([this.check(), this.deps.stopped()])
      .catch((error: unknown) => {
        if (!this.deps.signal.aborted)
          this.deps.logger.warn(errorFields(error), 'standing by, but Kafka is not reachable: not ready')
      })
      .finally(() => {
        this.standbyCheck = undefined
      })
    return this.standbyCheck
  }
}
