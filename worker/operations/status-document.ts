import type { WorkerConfig } from './config.js'
import type { Metrics } from './metrics.js'
import { liveness, type Role, readiness, roleOf, type WorkerFacts, type WorkerState } from './probes.js'
import { redact } from './redact.js'

/** The `/status` document (docs/probes.md describes each field). */
export interface WorkerStatus {
  role: Role
  state: WorkerState
  live: boolean
  ready: boolean
  /** Why it is not ready (or not live), and what fixes it; null when both are fine. */
  reason: string | null
  fix: string | null
  lastError: { message: string; fix: string; at: string } | null
  slot: string
  confirmedLsn: string | null
  slotLagBytes: number
  oldestUnackedEventAgeSeconds: number
  bufferedEvents: number
  eventsPublished: number
  eventsDeadLettered: number
  topicsUnavailable: string[]
  heartbeatAgeSeconds: number
}

/** What the status document needs from the session streaming now, if any. */
export interface StatusOfSession {
  readonly lastSendError: { message: string; type: string | undefined; at: number } | undefined
  readonly bufferedEvents: number
  oldestUnackedAgeSeconds(now: number): number
}

export interface StatusInputs {
  facts: WorkerFacts
  config: WorkerConfig
  metrics: Metrics
  session: StatusOfSession | undefined
  /** The run loop's last failure (a lost replication stream), until it streams again. */
  lastError: { message: string; fix: string; at: number } | undefined
  confirmedLsn: string | undefined
}

/** What `/status` answers: the probes' verdicts with their reason and fix, and the gauges behind them. */
export async function statusDocument(inputs: StatusInputs): Promise<WorkerStatus> {
  const { facts, config, metrics, session } = inputs
  const now = facts.now
  const live = liveness(facts, config)
  const ready = readiness(facts, config)
  const sendError = session?.lastSendError
  const lastError = sendError
    ? {
        message: `Kafka send failed${sendError.type ? ` (${sendError.type})` : ''}: ${redact(sendError.message)}`,
        fix: ready.fix ?? 'none needed yet: the send is retried',
        at: new Date(sendError.at).toISOString(),
      }
    : inputs.lastError && { ...inputs.lastError, at: new Date(inputs.lastError.at).toISOString() }
  const value = async (metric: { get(): Promise<{ values: { value: number }[] }> }) =>
    (await metric.get()).values[0]?.value ?? 0
  const topics = (await metrics.topicUnavailable.get()).values
    .filter((v) => v.value === 1)
    .map((v) => String(v.labels.topic))
  const problem = !live.ok ? live : !ready.ok ? ready : undefined
  return {
    role: roleOf(facts.state),
    state: facts.state,
    live: live.ok,
    ready: ready.ok,
    // Reasons can quote a driver's or a broker's message: redacted like everything served.
    reason: problem?.reason ? redact(problem.reason) : null,
    fix: problem?.fix ? redact(problem.fix) : null,
    lastError: lastError ?? null,
    slot: config.slot,
    confirmedLsn: inputs.confirmedLsn ?? null,
    slotLagBytes: await value(metrics.slotLagBytes),
    oldestUnackedEventAgeSeconds: session?.oldestUnackedAgeSeconds(now) ?? 0,
    bufferedEvents: session?.bufferedEvents ?? 0,
    eventsPublished: await value(metrics.eventsPublished),
    eventsDeadLettered: await value(metrics.eventsDeadLettered),
    topicsUnavailable: topics,
    heartbeatAgeSeconds: (now - metrics.heartbeat.at) / 1000,
  }
}
