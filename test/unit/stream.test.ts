import { expect, test } from 'vitest'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { createMetrics } from '../../worker/operations/metrics.js'
import { ReplicationStream, serverTcpSettings } from '../../worker/stream/stream.js'

const config: WorkerConfig = { ...DEFAULTS, databaseUrl: 'postgresql://x@127.0.0.1:1/db', kafkaBrokers: ['k:9092'] }

function stream(ended: unknown[], streamConfig: WorkerConfig = config) {
  const s = new ReplicationStream(streamConfig, 0n, 1000, createMetrics(), {
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
  return { stream: s, pause: () => s.pause(), inside }
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

test('a paused stream is judged by when the server last heard from it, not by the catalog showing it still holds the slot', () => {
  /** A paused stream whose backend (pid 42) the catalog shows holding the slot, heard `heardAgoMs` ago. */
  const pausedHeldStream = (ended: unknown[], heardAgoMs: number) => {
    const { stream: s, pause, inside } = stream(ended)
    const reach = inside as unknown as { backendPid(): number }
    reach.backendPid = () => 42
    s.streaming = true
    pause()
    inside.lastReceived = Date.now() - 10 * 60_000
    // The server keeps the time the update was sent, as the worker wrote it (status-update.ts).
    s.slotHolder(42, Date.now() - heardAgoMs)
    inside.checkAlive()
  }
  const heardJustNow: unknown[] = []
  pausedHeldStream(heardJustNow, 10)
  expect(heardJustNow).toHaveLength(0)
  // The receive timeout (1 s here) allows a status interval between a message received and the
  // update the server heard; a time the server heard from it directly is given that interval.
  const heardWithinDeadline: unknown[] = []
  pausedHeldStream(heardWithinDeadline, config.statusIntervalMs + 1000 - 300)
  expect(heardWithinDeadline).toHaveLength(0)
  // Still its slot, but the server has not heard from it for longer than that (a half-open
  // connection): the server frees the slot at its own deadline, so this ends first.
  const notHeard: unknown[] = []
  pausedHeldStream(notHeard, config.statusIntervalMs + 1000 + 300)
  expect(notHeard).toHaveLength(1)
  expect(String(notHeard[0])).toMatch(/reading paused/)
  // A send time ahead of this clock (a clock stepped back) proves nothing.
  const fromTheFuture: unknown[] = []
  pausedHeldStream(fromTheFuture, -60_000)
  expect(fromTheFuture).toHaveLength(1)
})

test("the server's TCP timeouts on the replication connection cannot end it before the worker's deadline", () => {
  for (const deadlineMs of [1_300, 13_600, 44_000, 60_000]) {
    const settings = Object.fromEntries(
      [...serverTcpSettings(deadlineMs).matchAll(/-c (\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]),
    )
    const keepaliveMs =
      (settings.tcp_keepalives_idle + settings.tcp_keepalives_interval * settings.tcp_keepalives_count) * 1000
    expect(keepaliveMs).toBeGreaterThan(deadlineMs)
    // Off: a paused stream holds a zero receive window for as long as it pauses, which Linux
    // counts against tcp_user_timeout; any bound would end a long pause (and free the slot).
    expect(settings.tcp_user_timeout).toBe(0)
  }
})

test("a paused stream's deadline (a status interval past the receive timeout) comes before the server's keepalives too", () => {
  // A status interval of 20 s (allowed up to a third of wal_sender_timeout).
  const slow: WorkerConfig = { ...config, statusIntervalMs: 20_000 }
  const { stream: s } = stream([], slow)
  const options = (s as unknown as { service: { clientConfig: { options: string } } }).service.clientConfig.options
  const idleMs = Number(/tcp_keepalives_idle=(\d+)/.exec(options)?.[1]) * 1000
  expect(idleMs).toBeGreaterThanOrEqual(1000 + slow.statusIntervalMs)
})
