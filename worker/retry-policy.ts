import { setTimeout as sleep } from 'node:timers/promises'

/**
 * The product's one way to wait before trying again, the worker's and the inbox's: capped
 * exponential backoff with jitter. Attempt n (from 0) waits retryInitialMs × 2ⁿ, at most retryMaxMs, times a random factor between
 * 0.5 and 1, so that workers that failed together (one Kafka outage, one deploy) do not come back
 * together.
 *
 * Where it is used, and what bounds each use:
 *
 * | where                                      | what is tried again                  | gives up                                 |
 * |--------------------------------------------|--------------------------------------|------------------------------------------|
 * | start-up (operations/until-reachable.ts)   | reaching PostgreSQL, then Kafka      | after --startup-timeout-ms: exit 3       |
 * | run loop (worker.ts reconnectAfter)        | a replication session                | never; from 0 again once one delivered   |
 * | at-least-once send (delivery.ts)           | one batch, until Kafka acknowledges  | never (nothing is confirmed meanwhile)   |
 * | exactly-once transaction                   | its session, through the run loop    | as the run loop                          |
 * | inbox handler (inbox/handle-record.ts)     | a record's handler, in a transaction | after `attempts`: the record is parked   |
 * | inbox, database down (same file)           | the record; uses up no attempt       | never: until the database answers        |
 * | inbox consumer (inbox/kafkajs-consumer.ts) | starting a replacement consumer      | never (CONSUMER_RESTART: 500 ms, 10 s)    |
 *
 * Kafka clients retry a request a few times on their own before our loop sees a failure; those
 * bounds are the clients' (kafkajs-publisher.ts, platformatic-publisher.ts).
 */
export interface RetryBounds {
  retryInitialMs: number
  retryMaxMs: number
}

export function retryDelayMs(bounds: RetryBounds, attempt: number, random: () => number = Math.random): number {
  // 2 ** 31 is far past any cap, and keeps the product finite for a very long outage.
  const exponential = bounds.retryInitialMs * 2 ** Math.min(attempt, 31)
  return Math.round(Math.min(bounds.retryMaxMs, exponential) * (0.5 + random() / 2))
}

/** Waits the attempt's delay; ends early (without throwing) when the signal aborts. */
export async function waitBeforeRetry(bounds: RetryBounds, attempt: number, signal: AbortSignal): Promise<void> {
  await sleep(retryDelayMs(bounds, attempt), undefined, { signal }).catch(() => {})
}
