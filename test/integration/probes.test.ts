/**
 * The probes as an orchestrator uses them (docs/probes.md): a standby is ready, so a rolling
 * update of two replicas goes through; the initial snapshot's rows are counted. Against the
 * suite's PostgreSQL and Kafka, with the worker run as a process. (Refused sends:
 * kafka-replicas.test.ts; a hung broker: broker-pause.test.ts; liveness: liveness.test.ts.)
 */
import { expect, test } from 'vitest'
import type { TestDatabase } from '../helpers/database.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { insertEvents, type WorkerProcess } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
let slot: string
let prefix: string
const fixture = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
})
const { startWorker, consume } = fixture

/** Polls until `check` holds; fails after `ms` with how long it waited. Returns the time it took. */
async function within(what: string, ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now()
  await waitUntil(what, check, ms, 50)
  return Date.now() - started
}

test('a standby (a second worker on the slot) is ready, and /status says it stands by', async () => {
  const first = await startWorker()
  await first.waitForLog(/"msg":"streaming"/)
  const second = await startWorker()
  await second.waitForLog(/"msg":"slot is held by another worker: standing by"/)
  await within('the standby ready', 5_000, () => second.ready())
  const status = await second.status()
  expect(status).toMatchObject({ role: 'standby', state: 'standby', ready: true, live: true, slot })
  expect((await first.status()).role).toBe('active')
  expect(await first.ready()).toBe(true)
  expect(await second.metric('outbox_streaming')).toBe(0)
  // Node's process metrics are served with the worker's.
  const text = await (await fetch(`http://127.0.0.1:${second.healthPort}/metrics`)).text()
  expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m)
})

test('a rolling update under load, as an orchestrator runs it: nothing lost, nothing reordered, no step waits forever', async () => {
  const topic = `${prefix}.order`
  const consumer = await consume([topic], { create: true })
  const replicas: WorkerProcess[] = [await startWorker(), await startWorker()]
  const streaming = async () =>
    (await Promise.all(replicas.map((r) => r.metric('outbox_streaming').catch(() => 0)))).includes(1)
  await within('one replica streaming', 30_000, streaming)

  // Writers commit events for a set of aggregates throughout; each aggregate's events are
  // committed one after another, so their commit order is their sequence number.
  const committed: { id: string; aggregate: string; seq: number }[] = []
  let writing = true
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const seqs = new Map<string, number>()
    for (let n = 0; writing; n++) {
      const aggregate = `a${w}-${n % 5}`
      const seq = (seqs.get(aggregate) ?? 0) + 1
      seqs.set(aggregate, seq)
      const [id] = await insertEvents(db, [{ aggregateId: aggregate, payload: { seq } }])
      committed.push({ id: id as string, aggregate, seq })
      await new Promise((r) => setTimeout(r, 10))
    }
  })

  try {
    for (let step = 0; step < 2; step++) {
      // The orchestrator's step: a new replica, ready within a bound, then an old one ended.
      const fresh = await startWorker()
      replicas.push(fresh)
      const waited = await within(`new replica ${step + 1} ready`, 30_000, () => fresh.ready())
      console.log(`rolling update step ${step + 1}: the new replica was ready after ${waited} ms`)
      const old = replicas.shift() as WorkerProcess
      const exit = await Promise.race([
        old.kill('SIGTERM'),
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000)),
      ])
      expect(exit).toBe(0)
    }
    await within('a replica streaming after the update', 30_000, streaming)
  } finally {
    // Also when a step fails: no writer may outlive the test's database.
    writing = false
    await Promise.all(writers)
  }
  expect(committed.length).toBeGreaterThan(100)

  await within('every committed event delivered', 60_000, async () => {
    const seen = new Set(consumer.messages.map((m) => m.headers.id))
    return committed.every((c) => seen.has(c.id))
  })
  // Per aggregate, the order of first delivery is the commit order (a redelivered copy may
  // follow, never precede).
  const firstSeen = new Map<string, string[]>()
  const seen = new Set<string>()
  for (const message of consumer.messages) {
    const id = message.headers.id as string
    if (seen.has(id)) continue
    seen.add(id)
    const list = firstSeen.get(message.key as string) ?? []
    list.push(id)
    firstSeen.set(message.key as string, list)
  }
  const byAggregate = new Map<string, string[]>()
  for (const c of [...committed].sort((a, b) => a.seq - b.seq))
    byAggregate.set(c.aggregate, [...(byAggregate.get(c.aggregate) ?? []), c.id])
  for (const [aggregate, ids] of byAggregate) expect(firstSeen.get(aggregate), aggregate).toEqual(ids)
})

test('the initial snapshot: its rows count in outbox_events_published_total', async () => {
  const before = await insertEvents(
    db,
    Array.from({ length: 7 }, (_, i) => ({ aggregateId: `s${i}` })),
  )
  const consumer = await consume([`${prefix}.order`], { create: true })
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/)
  await consumer.waitFor(before.length)
  await insertEvents(db, [{ aggregateId: 'after' }])
  await consumer.waitFor(before.length + 1)
  await within('8 published', 10_000, async () => (await worker.metric('outbox_events_published_total')) === 8)
  expect((await worker.status()).eventsPublished).toBe(8)
})
