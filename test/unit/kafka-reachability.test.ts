/**
 * Kafka's reachability outside a session (worker/operations/kafka-reachability.ts): when the
 * start-up and standby checks run, what they record for readiness, and what they log.
 */
import { expect, test, vi } from 'vitest'
import type { Publisher } from '../../worker/delivery/publisher.js'
import { KafkaReachability } from '../../worker/operations/kafka-reachability.js'
import type { Logger } from '../../worker/operations/logger.js'
import { STANDBY_KAFKA_CHECK_MS } from '../../worker/operations/probes.js'

function setup(connect: () => Promise<void> = async () => {}) {
  let clock = 1_000_000
  const disconnect = vi.fn(async () => {})
  const createPublisher = vi.fn(() => ({ connect, disconnect }) as unknown as Publisher)
  const warnings: [unknown, string][] = []
  const logger = { warn: (fields: unknown, msg: string) => warnings.push([fields, msg]) } as unknown as Logger
  const stop = new AbortController()
  const stopped = new Promise<never>((_, reject) =>
    stop.signal.addEventListener('abort', () => reject(new Error('stopped'))),
  )
  stopped.catch(() => {})
  const kafka = new KafkaReachability({
    createPublisher,
    logger,
    signal: stop.signal,
    stopped: () => stopped,
    now: () => clock,
  })
  return {
    kafka,
    createPublisher,
    disconnect,
    warnings,
    stop,
    advance: (ms: number) => (clock += ms),
    now: () => clock,
  }
}

test('a check connects a publisher and lets it go; Kafka counts as reached once it succeeds', async () => {
  const { kafka, createPublisher, disconnect, now } = setup()
  expect(kafka.checkedAt).toBeUndefined()
  await kafka.check()
  expect(createPublisher).toHaveBeenCalledTimes(1)
  expect(disconnect).toHaveBeenCalledTimes(1)
  expect(kafka.checkedAt).toBe(now())
})

test('a standby checks again only once STANDBY_KAFKA_CHECK_MS has passed since Kafka was last reached, one check at a time', async () => {
  const { kafka, createPublisher, advance, now } = setup()
  await kafka.check()
  const reachedAtStart = kafka.checkedAt
  advance(STANDBY_KAFKA_CHECK_MS - 1)
  await kafka.checkAsStandby()
  expect(createPublisher).toHaveBeenCalledTimes(1) // the start-up check only
  advance(1)
  const first = kafka.checkAsStandby()
  const second = kafka.checkAsStandby() // while the first is in flight
  await Promise.all([first, second])
  expect(createPublisher).toHaveBeenCalledTimes(2)
  expect(kafka.checkedAt).toBe(now())
  expect(kafka.checkedAt).not.toBe(reachedAtStart)
})

test("a standby's failed check warns, disconnects, and leaves checkedAt to age; a check cut short by stop() says nothing", async () => {
  let fail = new Error('connect ECONNREFUSED 127.0.0.1:9092')
  const { kafka, disconnect, warnings, advance, stop } = setup(async () => {
    throw fail
  })
  await kafka.checkAsStandby()
  expect(kafka.checkedAt).toBeUndefined()
  expect(disconnect).toHaveBeenCalledTimes(1)
  expect(warnings.map(([, msg]) => msg)).toEqual(['standing by, but Kafka is not reachable: not ready'])
  expect(warnings[0]?.[0]).toMatchObject({ error: 'connect ECONNREFUSED 127.0.0.1:9092' })
  advance(STANDBY_KAFKA_CHECK_MS)
  fail = new Error('stopped meanwhile')
  stop.abort()
  await kafka.checkAsStandby()
  expect(warnings).toHaveLength(1)
})
