import { randomUUID } from 'node:crypto'
import type { TestDatabase } from '../helpers/database.js'
import { collectTopics, ensureTopics } from '../helpers/kafka.js'

export interface LatencyResult {
  rate: number
  sent: number
  received: number
  p50: number
  p95: number
  p99: number
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

/** Events committed in the first seconds of each rate are delivered but not counted. */
const WARMUP_SECONDS = 2

/**
 * Commit-to-consume latency at a fixed rate: every 10 ms a writer commits rate/100 events in one
 * transaction and notes the time COMMIT returned; a consumer notes when each event arrives. Both
 * run in this process, so one clock measures both ends. Whatever relay is running delivers.
 * The figures are steady-state: a warm-up of WARMUP_SECONDS at the same rate comes first (a fresh
 * consumer, a fresh topic and JIT compilation otherwise dominate p99 of a short run).
 */
export async function measureLatency(
  db: TestDatabase,
  brokers: string[],
  topicPrefix: string,
  rate: number,
  seconds: number,
): Promise<LatencyResult> {
  // A fresh topic per rate (the relays route by aggregate type), read from its beginning.
  const aggregateType = `rate${rate}`
  await ensureTopics(brokers, [`${topicPrefix}.${aggregateType}`])
  const consumer = await collectTopics(brokers, [`${topicPrefix}.${aggregateType}`])
  const committedAt = new Map<string, number>()
  const perTick = Math.max(1, Math.round(rate / 100))
  const tickMs = (perTick / rate) * 1000
  const start = performance.now()
  const epoch = Date.now() - start
  const measureFrom = start + WARMUP_SECONDS * 1000
  let ticks = 0
  while (performance.now() - start < (WARMUP_SECONDS + seconds) * 1000) {
    const due = start + ticks * tickMs
    const wait = due - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    ticks++
    const ids = Array.from({ length: perTick }, () => randomUUID())
    await db.query(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
       SELECT id, $2, (abs(hashtext(id::text)) % 1000)::text, 'order.created', json_build_object('pad', repeat('x', 170))::jsonb
         FROM unnest($1::uuid[]) AS id`,
      [ids, aggregateType],
    )
    const now = performance.now()
    if (now >= measureFrom) for (const id of ids) committedAt.set(id, epoch + now)
  }
  const deadline = Date.now() + 30_000
  const arrived = () => consumer.messages.filter((m) => committedAt.has(m.headers.id ?? '')).length
  while (arrived() < committedAt.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  await consumer.stop()
  const latencies = consumer.messages
    .map((m) => m.receivedAt - (committedAt.get(m.headers.id ?? '') ?? Number.NaN))
    .filter((l) => Number.isFinite(l))
    .sort((a, b) => a - b)
  return {
    rate,
    sent: committedAt.size,
    received: latencies.length,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
  }
}
