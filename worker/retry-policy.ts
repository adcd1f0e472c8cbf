import { setTimeout as sleep } from 'node:timers/promises'

/**
 * The product's one way to wait before trying again, the worker's and the inbox's: capped
 * exponential backoff with jitter. Attempt n (from 0) waits retryInitialMs × 2ⁿ, at most
 * retryMaxMs, times a random factor between 0.5 and 1, so that workers that failed together (one
 * Kafka outage, one deploy) do not come back together.
 *
 * Where it is used, and what bounds each use. The bounds are DEFAULT_RETRY (below) unless the row
 * says otherwise; the worker's --retry-initial-ms and --retry-max-ms, and the inbox's
 * retryInitialMs and retryMaxMs, change them.
 *
 * | where                                      | what is tried again                  | gives up                                 |
 * |--------------------------------------------|--------------------------------------|------------------------------------------|
 * | start-up (operations/until-reachable.ts)   | reaching PostgreSQL, then Kafka      | after --startup-timeout-ms: exit 3       |
 * | run loop (worker.ts reconnectAfter)        | a replication session                | never; from 0 again once one delivered   |
 * | at-least-once send (delivery.ts)           | one batch, until Kafka acknowledges  | never (nothing is confirmed meanwhile)   |
 * | exactly-once transaction                   | its session, through the run loop    | as the run loop                          |
 * | inbox handler (inbox/handle-record.ts)     | a record's handler, in a transaction | after `attempts`: the record is parked   |
 * | inbox, database down (same file)           | the record; uses up no attempt       | never: until the database answers        |
 * | inbox consumer (inbox/kafkajs-consumer.ts) | starting a replacement consumer      | never; bounds: CONSUMER_RESTART          |
 *
 * Kafka clients retry a request a few times on their own before our loop sees a failure; those
 * bounds are the clients' (kafkajs-publisher.ts, platformatic-publisher.ts).
 */
export interface RetryBounds {
  retryInitialMs: number
  retryMaxMs: number
}

/**
 * The default bounds, for the worker and the inbox alike. The relay has one job and one connection
 * each way: a retry every few seconds costs nothing, and the cap bounds how long delivery waits
 * after Kafka or PostgreSQL come back.
 */
export const DEFAULT_RETRY: RetryBounds = { retryInitialMs: 200, retryMaxMs: 5_000 }

/**
 * Starting a replacement inbox consumer: slower than DEFAULT_RETRY, since each try joins the
 * consumer group again and makes the group rebalance.
 */
export const CONSUMER_RESTART: RetryBounds = { retryInitialMs: 500, retryMaxMs: 10_000 }

export function retryDelayMs(bounds: RetryBounds, attempt: number, random: () => number = Math.random): number {
  // 2 ** 31 is far past any cap, and keeps the product finite for a very long outage.
  const exponential = bounds.retryInitialMs * 2 ** Math.min(attempt, 31)
  return Math.round(Math.min(bounds.retryMaxMs, exponential) * (0.5 + random() / 2))
}

/** Waits the attempt's delay; ends early (without throwing) when the signal aborts. */
export async function waitBeforeRetry(bounds: RetryBounds, attempt: number, signal: AbortSignal): Promise<void> {
  await sleep(retryDelayMs(bounds, attempt), undefined, { signal }).catch(() => {})
}
