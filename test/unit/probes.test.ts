/** The rules of docs/probes.md's table (worker/operations/probes.ts), and their options' checks. */
import { describe, expect, test } from 'vitest'
import { resolveConfig } from '../../worker/operations/config.js'
import {
  liveness,
  readiness,
  roleOf,
  STANDBY_KAFKA_CHECK_MS,
  standbyCheckMaxAgeMs,
  type WorkerFacts,
} from '../../worker/operations/probes.js'

const config = resolveConfig({ databaseUrl: 'postgresql://u@h/d', kafkaBrokers: 'k:9092' })
const now = 1_000_000_000

function facts(over: Partial<WorkerFacts>): WorkerFacts {
  return {
    state: 'streaming',
    now,
    heartbeatAt: now,
    standbyCheckedAt: undefined,
    session: { flowing: true },
    lastError: undefined,
    ...over,
  }
}

describe('readiness', () => {
  test('an active worker is ready exactly while its events flow, and says why not', () => {
    expect(readiness(facts({}), config).ok).toBe(true)
    const stalled = readiness(
      facts({ session: { flowing: false, reason: 'Kafka has acknowledged nothing for 31 s', fix: 'check' } }),
      config,
    )
    expect(stalled).toEqual({ ok: false, reason: 'Kafka has acknowledged nothing for 31 s', fix: 'check' })
  })

  test('a standby is ready while its last check of the database is recent, and only then', () => {
    const bound = standbyCheckMaxAgeMs(config)
    expect(readiness(facts({ state: 'standby', standbyCheckedAt: now - bound }), config).ok).toBe(true)
    const stale = readiness(facts({ state: 'standby', standbyCheckedAt: now - bound - 1 }), config)
    expect(stale.ok).toBe(false)
    expect(stale.fix).toMatch(/DATABASE_URL/)
    expect(readiness(facts({ state: 'standby', standbyCheckedAt: undefined }), config).ok).toBe(false)
  })

  test('a standby that has not reached Kafka lately is not ready: it could not deliver if it took over', () => {
    const bound = STANDBY_KAFKA_CHECK_MS + standbyCheckMaxAgeMs(config)
    const standby = { state: 'standby' as const, standbyCheckedAt: now }
    expect(readiness(facts({ ...standby, kafkaCheckedAt: now - bound }), config).ok).toBe(true)
    const unreachable = readiness(facts({ ...standby, kafkaCheckedAt: now - bound - 1 }), config)
    expect(unreachable.ok).toBe(false)
    expect(unreachable.reason).toMatch(/not reached Kafka/)
    expect(unreachable.fix).toMatch(/KAFKA_BROKERS/)
  })

  test('starting, reconnecting and stopping are not ready; reconnecting names the last error and its fix', () => {
    for (const state of ['idle', 'starting', 'stopping', 'stopped', 'failed'] as const)
      expect(readiness(facts({ state }), config).ok).toBe(false)
    const reconnecting = readiness(
      facts({ state: 'reconnecting', lastError: { message: 'connection terminated', fix: 'check PostgreSQL' } }),
      config,
    )
    expect(reconnecting).toEqual({
      ok: false,
      reason: 'reconnecting after: connection terminated',
      fix: 'check PostgreSQL',
    })
  })
})

describe('liveness', () => {
  test('alive while the loop shows progress within --liveness-timeout, whatever the state', () => {
    for (const state of ['starting', 'standby', 'streaming', 'reconnecting'] as const)
      expect(liveness(facts({ state, heartbeatAt: now - config.livenessTimeoutMs }), config).ok).toBe(true)
  })

  test('wedged past the bound: not alive, with the reason', () => {
    const wedged = liveness(facts({ heartbeatAt: now - config.livenessTimeoutMs - 1 }), config)
    expect(wedged.ok).toBe(false)
    expect(wedged.reason).toMatch(/no progress for 120 s .* wedged/)
  })

  test('a stopping worker is alive (the shutdown watchdog bounds it)', () => {
    expect(liveness(facts({ state: 'stopping', heartbeatAt: 0 }), config).ok).toBe(true)
  })
})

test('roles', () => {
  expect(roleOf('streaming')).toBe('active')
  expect(roleOf('standby')).toBe('standby')
  expect(roleOf('reconnecting')).toBe('starting')
  expect(roleOf('stopping')).toBe('stopping')
})

describe('options', () => {
  test('defaults: 30 s for a send, 2 min for liveness', () => {
    expect(config.readySendTimeoutMs).toBe(30_000)
    expect(config.livenessTimeoutMs).toBe(120_000)
  })

  test('a liveness bound a healthy loop could exceed is refused, naming the options to change', () => {
    expect(() =>
      resolveConfig({ databaseUrl: 'postgresql://u@h/d', kafkaBrokers: 'k:9092', livenessTimeoutMs: 15_000 }),
    ).toThrow(/livenessTimeoutMs \(15000 ms\) must be more than twice .*statusIntervalMs/)
  })

  test('unset, the liveness bound grows with a loop given longer steps (a standby polling every 2 min)', () => {
    const slow = resolveConfig({ databaseUrl: 'postgresql://u@h/d', kafkaBrokers: 'k:9092', standbyPollMs: 120_000 })
    expect(slow.livenessTimeoutMs).toBe(360_000)
  })

  test('the send bound must be positive', () => {
    expect(() =>
      resolveConfig({ databaseUrl: 'postgresql://u@h/d', kafkaBrokers: 'k:9092', readySendTimeoutMs: 0 }),
    ).toThrow(/readySendTimeoutMs must be a positive whole number/)
  })
})
