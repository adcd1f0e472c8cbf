import { expect, test } from 'vitest'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { createMetrics } from '../../worker/operations/metrics.js'
import { ReplicationStream } from '../../worker/stream/stream.js'

const config: WorkerConfig = { ...DEFAULTS, databaseUrl: 'postgresql://x@127.0.0.1:1/db', kafkaBrokers: ['k:9092'] }

function stream(ended: unknown[]) {
  const s = new ReplicationStream(config, 0n, 1000, createMetrics(), {
    started: () => {},
    record: () => {},
    undecodable: () => {},
    tableLeft: () => {},
    tableReplaced: () => {},
    confirmed: () => {},
    delivered: () => {},
    ended: (error) => ended.push(error),
  })
  // The clock of silence and the check are private: reached into here, not exposed for tests.
  const inside = s as unknown as { lastReceived: number; checkAlive(): void }
  return { pause: () => s.pause(), inside }
}

test('a paused stream whose slot is not seen held by it past the receive timeout ends (a zombie with a full buffer)', () => {
  const ended: unknown[] = []
  const { pause, inside } = stream(ended)
  pause()
  inside.lastReceived = Date.now() - 10 * 60_000
  inside.checkAlive()
  expect(ended).toHaveLength(1)
  expect(String(ended[0])).toMatch(/reading paused and the slot not seen held by this connection/)
})

test('a silent, unpaused stream ends after the receive timeout; a recent message keeps it', () => {
  const ended: unknown[] = []
  const { inside } = stream(ended)
  inside.lastReceived = Date.now()
  inside.checkAlive()
  expect(ended).toHaveLength(0)
  inside.lastReceived = Date.now() - 2000
  inside.checkAlive()
  expect(String(ended[0])).toMatch(/no message from PostgreSQL for \d+ ms/)
})
