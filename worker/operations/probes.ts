import type { SessionHealth } from '../session.js'
import type { WorkerConfig } from './config.js'

/**
 * The rules of /healthz, /readyz, /status and `outbox-worker status`, in one place; the table in
 * docs/probes.md is their documentation. Everything here is a pure function of what the worker
 * knows at one moment, so the table can be tested without services.
 */

/** Where a worker is in its lifecycle (worker.ts moves it; the probes read it). */
export type WorkerState =
  | 'idle'
  | 'starting'
  | 'standby'
  | 'streaming'
  | 'reconnecting'
  | 'stopping'
  | 'stopped'
  | 'failed'

/** What an orchestrator (or an operator) needs to know of a worker's part. */
export type Role = 'active' | 'standby' | 'starting' | 'stopping'

export interface WorkerFacts {
  state: WorkerState
  now: number
  /** When the run loop last showed progress (Metrics.heartbeat). */
  heartbeatAt: number
  /** When a standby's last check of the database and the slot succeeded. */
  standbyCheckedAt: number | undefined
  /** When this worker last reached Kafka outside a session (at start, then a standby's check). */
  kafkaCheckedAt?: number | undefined
  /** The streaming session's health, when one streams. */
  session: SessionHealth | undefined
  /** The last error the run loop met (a lost stream, a failed set-up), with its fix. */
  lastError: { message: string; fix: string } | undefined
}

export interface Verdict {
  ok: boolean
  reason?: string
  fix?: string
}

/**
 * A standby's check (prepare: connect 5 s, then queries of up to 15 s each) repeats every
 * --standby-poll-ms; one older than this means the checks stopped succeeding, or stopped.
 */
/** How often a standby checks that it reaches Kafka (a connection and a metadata request). */
export const STANDBY_KAFKA_CHECK_MS = 30_000

export function standbyCheckMaxAgeMs(config: Pick<WorkerConfig, 'standbyPollMs'>): number {
  return config.standbyPollMs + 30_000
}

export function roleOf(state: WorkerState): Role {
  switch (state) {
    case 'streaming':
      return 'active'
    case 'standby':
      return 'standby'
    case 'idle':
    case 'starting':
    case 'reconnecting':
      return 'starting'
    case 'stopping':
    case 'stopped':
    case 'failed':
      return 'stopping'
  }
}

/**
 * Alive unless the run loop has shown no progress for --liveness-timeout. An outage is no wedge:
 * retries, standby checks and a session's status updates all show progress, so a worker waiting
 * out Kafka or PostgreSQL stays alive, and only a loop stuck on something that never settles is
 * restarted. A stopping worker is alive: the CLI's shutdown watchdog bounds the stop.
 */
export function liveness(facts: WorkerFacts, config: Pick<WorkerConfig, 'livenessTimeoutMs'>): Verdict {
  if (facts.state === 'stopping' || facts.state === 'stopped') return { ok: true }
  if (facts.state === 'failed') return { ok: false, reason: 'the worker failed', fix: facts.lastError?.fix }
  const silentMs = facts.now - facts.heartbeatAt
  if (silentMs <= config.livenessTimeoutMs) return { ok: true }
  return {
    ok: false,
    reason: `the run loop has shown no progress for ${Math.round(silentMs / 1000)} s (more than --liveness-timeout, ${config.livenessTimeoutMs} ms): it is wedged`,
    fix: 'restart the worker (the liveness probe does); report it with the log',
  }
}

/**
 * Ready when the worker does its part: an active one whose events flow (see
 * ReplicationSession.health), or a standby that can take over (its last check of the database
 * and the slot succeeded lately). Not ready while starting, reconnecting or stopping.
 */
export function readiness(facts: WorkerFacts, config: Pick<WorkerConfig, 'standbyPollMs'>): Verdict {
  switch (facts.state) {
    case 'streaming': {
      const session = facts.session
      if (!session) return { ok: false, reason: 'no session', fix: 'wait' }
      return session.flowing ? { ok: true } : { ok: false, reason: session.reason, fix: session.fix }
    }
    case 'standby': {
      const age = facts.standbyCheckedAt === undefined ? Number.POSITIVE_INFINITY : facts.now - facts.standbyCheckedAt
      if (age <= standbyCheckMaxAgeMs(config)) {
        // A standby that took over without reaching Kafka could not deliver: it checks Kafka
        // every STANDBY_KAFKA_CHECK_MS (worker.ts), and is ready while its last check is fresh.
        const kafkaAge = facts.now - (facts.kafkaCheckedAt ?? Number.NEGATIVE_INFINITY)
        if (facts.kafkaCheckedAt === undefined || kafkaAge <= STANDBY_KAFKA_CHECK_MS + standbyCheckMaxAgeMs(config))
          return { ok: true }
        return {
          ok: false,
          reason: `standing by, but it has not reached Kafka for ${Math.round(kafkaAge / 1000)} s: it could not deliver if it took over`,
          fix: 'check KAFKA_BROKERS and that the brokers are up',
        }
      }
      return {
        ok: false,
        reason: `standing by, but its last successful check of the database is ${Number.isFinite(age) ? `${Math.round(age / 1000)} s` : 'not yet'} old`,
        fix: 'check DATABASE_URL and that PostgreSQL is up',
      }
    }
    case 'reconnecting':
      return {
        ok: false,
        reason: `reconnecting${facts.lastError ? ` after: ${facts.lastError.message}` : ''}`,
        fix: facts.lastError?.fix ?? 'wait; the worker retries by itself',
      }
    case 'idle':
    case 'starting':
      return { ok: false, reason: 'starting', fix: 'wait; if it lasts, see lastError and the log' }
    default:
      return { ok: false, reason: facts.state, fix: 'none needed: the worker is stopping' }
  }
}
