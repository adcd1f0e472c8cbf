/**
 * The relay end to end, with the worker as a separate process (its real CLI), real PostgreSQL and
 * real Kafka: delivery, ordering, confirm rules, crash and takeover.
 */
import { afterEach, describe, expect, inject, test } from 'vitest'
import { toOutboxRow } from '../../src/event.js'
import type { OutboxEvent } from '../../src/index.js'
import { type TestDatabase, uniqueName } from '../helpers/database.js'
import { type ReceivedMessage, recordCount, testKafka } from '../helpers/kafka.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { type AppClient, createAppClient } from '../helpers/prisma.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import {
  confirmedLsn,
  currentLsn,
  eventTransactions,
  insertEvents,
  replayedTransactions,
  slotReplays,
  waitForConfirmed,
} from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
let prisma: AppClient
let slot: string
let prefix: string
const { startWorker, consume, useKafkaClient } = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
  prisma = createAppClient(db.url)
})
afterEach(async () => {
  await prisma.$disconnect()
})

/** Whether emit would accept the event under `limit` bytes (no SQL runs). */
function fits(event: OutboxEvent, limit: number): boolean {
  try {
    toOutboxRow(event, '01900000-0000-7000-8000-000000000000', limit)
    return true
  } catch {
    return false
  }
}

/** Per topic and key (one partition), the sequence numbers of first deliveries must increase. */
function outOfOrder(messages: ReceivedMessage[]): number {
  const seen = new Set<string>()
  const last = new Map<string, number>()
  let violations = 0
  for (const m of messages) {
    const id = m.headers.id as string
    if (seen.has(id)) continue
    seen.add(id)
    const seq = (JSON.parse(m.value ?? '{}') as { seq: number }).seq
    const stream = `${m.topic}/${m.key}`
    if ((last.get(stream) ?? -1) > seq) violations++
    last.set(stream, seq)
  }
  return violations
}

test('the payload reaches Kafka as the exact text PostgreSQL stored (no number rounding)', async () => {
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await consume([`${prefix}.order`])
  // Raw JSON text: a JS number literal would already be rounded before reaching PostgreSQL.
  const payloadText = '{"total": 12.50, "n": 12345678901234567890, "f": 0.1, "e": 1e2}'
  const [id] = await insertEvents(db, [{ aggregateId: 'big', payloadText }])
  const [message] = await consumer.waitFor(1)
  expect(message?.headers.id).toBe(id)
  // jsonb's own text form, as docs/extension.md describes it: keys shorter first, exponents written
  // out, digits kept; a JSON.parse/stringify round trip would print 12345678901234567000 and 12.5.
  expect(message?.value).toBe('{"e": 100, "f": 0.1, "n": 12345678901234567890, "total": 12.50}')
})

test('an idle outbox on a busy database: the slot keeps advancing, so WAL is not retained', async () => {
  await db.query('CREATE TABLE busy (id serial primary key, v text)')
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/)
  const before = await confirmedLsn(db, slot)
  for (let i = 0; i < 20; i++)
    await db.query(`INSERT INTO busy (v) SELECT repeat('x', 500) FROM generate_series(1, 200)`)
  const target = await currentLsn(db)
  expect(target - before).toBeGreaterThan(100_000n)
  await waitForConfirmed(db, slot, target, 20_000)
})

test('two workers on one slot: one streams, the other stands by and takes over after the first is killed', async () => {
  const first = await startWorker()
  await first.waitForLog(/"msg":"streaming"/)
  const second = await startWorker()
  await second.waitForLog(/"msg":"slot is held by another worker: standing by"/)
  expect(await second.active()).toBe(false)
  expect(await first.active()).toBe(true)

  const consumer = await consume([`${prefix}.order`])
  const before = await insertEvents(db, [{ aggregateId: 'x', payload: { seq: 1 } }])
  await consumer.waitFor(1)
  const killedAt = Date.now()
  await first.kill('SIGKILL')
  await second.waitForLog(/"msg":"streaming"/, 30_000)
  const takeoverMs = Date.now() - killedAt
  expect(takeoverMs).toBeLessThan(10_000)
  const after = await insertEvents(db, [{ aggregateId: 'x', payload: { seq: 2 } }])
  await waitUntil('event after takeover', async () => consumer.messages.some((m) => m.headers.id === after[0]), 20_000)
  expect(consumer.messages.map((m) => m.headers.id)).toEqual(expect.arrayContaining([...before, ...after]))
  console.log(`standby took over ${takeoverMs} ms after the active worker was killed`)
})

test('a least-privilege role (REPLICATION, SELECT on the outbox table for the initial snapshot) is enough to stream', async () => {
  const role = uniqueName('outbox_worker')
  await db.query(`CREATE ROLE ${role} WITH LOGIN REPLICATION PASSWORD 'pw-${role}'`)
  await db.query(`GRANT SELECT ON outbox TO ${role}`)
  try {
    const url = new URL(db.url)
    url.username = role
    url.password = `pw-${role}`
    const worker = await startWorker({ DATABASE_URL: url.toString() })
    await worker.waitForLog(/"msg":"streaming"/)
    const consumer = await consume([`${prefix}.order`])
    const [id] = await insertEvents(db, [{ aggregateId: 'lp' }])
    const [message] = await consumer.waitFor(1)
    expect(message?.headers.id).toBe(id)
    expect(worker.output.join('\n')).not.toContain(`pw-${role}`)
    await worker.kill('SIGTERM')
  } finally {
    await db.query(`DROP OWNED BY ${role}`)
    await db.query(`DROP ROLE ${role}`)
  }
})

test('retention deletes delivered rows older than the period and keeps newer ones (delivery is unaffected)', async () => {
  const worker = await startWorker({ OUTBOX_RETENTION: '1h' })
  await worker.waitForLog(/"msg":"streaming"/)
  const consumer = await consume([`${prefix}.order`])
  // One transaction: three rows stamped two hours ago (as if long delivered), two fresh ones.
  const rows = await db.query<{ id: string; old: boolean }>(
    `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at)
     SELECT gen_random_uuid(), 'order', 'r' || i, 'order.created', '{}',
            CASE WHEN i <= 3 THEN now() - interval '2 hours' ELSE now() END
       FROM generate_series(1, 5) AS i
     RETURNING id, created_at < now() AS old`,
  )
  await consumer.waitFor(5)
  await worker.waitForLog(/retention: deleted old outbox rows/)
  const left = await db.query<{ id: string }>('SELECT id FROM outbox ORDER BY id')
  expect(left.map((r) => r.id).sort()).toEqual(
    rows
      .filter((r) => !r.old)
      .map((r) => r.id)
      .sort(),
  )
})

// The scenarios that exercise the Kafka client run once per supported client.
describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  useKafkaClient(client)

  test('5,000 events in 500 transactions (and 50 rolled back): exactly the committed ones arrive, complete and in order per key', async () => {
    const worker = await startWorker()
    await worker.waitForLog(/"msg":"streaming"/)
    const committed = new Map<string, { aggregateType: string; aggregateId: string; seq: number; topic: string }>()
    const seqByAggregate = new Map<string, number>()
    for (let t = 0; t < 550; t++) {
      const rollback = t % 11 === 10
      const events = Array.from({ length: 10 }, (_, i) => {
        const aggregateId = `agg-${(t * 10 + i) % 97}`
        const aggregateType = i % 2 === 0 ? 'order' : 'invoice'
        const explicit = i === 9 ? `${prefix}.explicit` : undefined
        const stream = `${explicit ?? aggregateType}/${aggregateId}`
        const seq = (seqByAggregate.get(stream) ?? 0) + 1
        if (!rollback) seqByAggregate.set(stream, seq)
        return {
          aggregateType,
          aggregateId,
          type: `${aggregateType}.changed`,
          payload: { seq, t, i, note: 'é✓' },
          headers: { tenant: `tenant-${t % 3}` },
          ...(explicit ? { topic: explicit } : {}),
        }
      })
      const ids = await prisma
        .$transaction(async (tx) => {
          const ids = await tx.outbox.emitMany(events)
          if (rollback) throw new Error('rolled back on purpose')
          return ids
        })
        .catch(() => [] as string[])
      ids.forEach((id, i) => {
        const e = events[i] as (typeof events)[number]
        committed.set(id, {
          aggregateType: e.aggregateType,
          aggregateId: e.aggregateId,
          seq: e.payload.seq,
          topic: e.topic ?? `${prefix}.${e.aggregateType}`,
        })
      })
    }
    expect(committed.size).toBe(5000)
    const endLsn = await currentLsn(db)

    const consumer = await consume([`${prefix}.order`, `${prefix}.invoice`, `${prefix}.explicit`])
    await consumer.waitFor(5000, 90_000)
    await waitForConfirmed(db, slot, endLsn)
    // Everything Kafka holds now, read to the end of every partition: nothing extra can hide.
    const topics = [`${prefix}.order`, `${prefix}.invoice`, `${prefix}.explicit`]
    await consumer.waitFor(await recordCount(inject('kafkaBrokers'), topics), 30_000)
    const messages = consumer.messages

    const deliveredIds = new Set(messages.map((m) => m.headers.id))
    expect(deliveredIds.size).toBe(5000)
    expect([...deliveredIds].every((id) => committed.has(id as string))).toBe(true)

    const createdAt = new Map(
      (
        await db.query<{ id: string; ms: string }>(
          `SELECT id, floor(extract(epoch FROM created_at) * 1000)::bigint::text AS ms FROM outbox`,
        )
      ).map((r) => [r.id, Number(r.ms)]),
    )
    for (const m of messages) {
      const expected = committed.get(m.headers.id as string)
      expect(m.topic).toBe(expected?.topic)
      expect(m.key).toBe(expected?.aggregateId)
      expect(JSON.parse(m.value ?? 'null')).toMatchObject({ seq: expected?.seq, note: 'é✓' })
      expect(m.headers).toMatchObject({
        type: `${expected?.aggregateType}.changed`,
        aggregateType: expected?.aggregateType,
        aggregateId: expected?.aggregateId,
      })
      expect(m.headers.tenant).toMatch(/^tenant-\d$/)
      expect(m.timestamp).toBe(createdAt.get(m.headers.id as string))
    }
    expect(outOfOrder(messages)).toBe(0)
  })

  test('kill -9 mid-stream, then restart: every committed event arrives, in order per key; a duplicate is the same record', async () => {
    const topic = `${prefix}.order`
    const committed: string[] = []
    for (let t = 0; t < 40; t++)
      committed.push(
        ...(await insertEvents(
          db,
          Array.from({ length: 50 }, (_, i) => ({ aggregateId: `a${i % 7}`, payload: { seq: t * 50 + i } })),
        )),
      )
    // The backlog is committed first, and this worker sends one event a request (a few ms each,
    // seconds for all), so the kill comes while most of it is still on its way.
    const consumer = await consume([topic])
    const first = await startWorker({ OUTBOX_BATCH_SIZE: '1' })
    await waitUntil('some events delivered', async () => consumer.messages.length >= 50, 30_000)
    await first.kill('SIGKILL')
    // In flight at the kill: Kafka, read to its end, holds some of the events and not all.
    const held = await recordCount(inject('kafkaBrokers'), [topic])
    await consumer.waitFor(held, 30_000)
    expect(new Set(consumer.messages.map((m) => m.headers.id)).size).toBeLessThan(committed.length)

    await startWorker({ OUTBOX_BATCH_SIZE: '50' })
    await waitUntil(
      'all committed events delivered',
      async () => new Set(consumer.messages.map((m) => m.headers.id)).size >= committed.length,
      60_000,
    )
    const ids = consumer.messages.map((m) => m.headers.id as string)
    expect(new Set(ids)).toEqual(new Set(committed))
    // A duplicate is the same event again: same id, key and payload.
    const byId = new Map<string, ReceivedMessage>()
    for (const m of consumer.messages) {
      const id = m.headers.id as string
      const earlier = byId.get(id)
      if (earlier) expect([m.key, m.value]).toEqual([earlier.key, earlier.value])
      byId.set(id, m)
    }
    expect(outOfOrder(consumer.messages)).toBe(0)
  })

  test('SIGTERM during a stream: exit 0, what Kafka acknowledged is confirmed, nothing lost after restart', async () => {
    // The default status interval (10 s): the periodic status update must not be what confirms
    // before the exit; the worker's own confirms (on each acknowledgement, and the final one on
    // the way out) must.
    const env = { OUTBOX_BATCH_SIZE: '100', OUTBOX_STATUS_INTERVAL_MS: '10000' }
    const worker = await startWorker(env)
    await worker.waitForLog(/"msg":"streaming"/)
    const topic = `${prefix}.order`
    const consumer = await consume([topic])
    const transactions: string[][] = []
    for (let t = 0; t < 30; t++)
      transactions.push(
        await insertEvents(
          db,
          Array.from({ length: 100 }, (_, i) => ({ aggregateId: `k${i % 5}`, payload: { seq: t * 100 + i } })),
        ),
      )
    const committed = transactions.flat()
    const endLsn = await currentLsn(db)
    await waitUntil('some events delivered', async () => consumer.messages.length >= 300, 20_000)
    expect(await worker.kill('SIGTERM')).toBe(0)

    // What Kafka holds once the worker is gone, read to the end of every partition.
    const held = await recordCount(inject('kafkaBrokers'), [topic])
    await consumer.waitFor(held, 30_000)
    const inKafka = new Set(consumer.messages.map((m) => m.headers.id))
    const xidOf = await eventTransactions(db)
    const replayed = await replayedTransactions(db, slot)
    // The longest prefix of transactions Kafka holds whole: the worker may confirm exactly these.
    // Its last one may still replay (its records sent before reading stopped, its commit
    // message not yet read); every one before it must not, every one after it must.
    let whole = 0
    while (whole < transactions.length && transactions[whole]?.every((id) => inKafka.has(id))) whole++
    expect(whole).toBeGreaterThanOrEqual(2)
    const replays = transactions.map((ids) => replayed.has(xidOf.get(ids[0] as string) as string))
    expect(replays.slice(0, whole - 1)).toEqual(new Array(whole - 1).fill(false))
    expect(replays.slice(whole)).toEqual(new Array(transactions.length - whole).fill(true))

    const restarted = await startWorker(env)
    await waitUntil(
      'all committed events delivered',
      async () => new Set(consumer.messages.map((m) => m.headers.id)).size >= committed.length,
      60_000,
    )
    await waitForConfirmed(db, slot, endLsn)
    expect(new Set(consumer.messages.map((m) => m.headers.id))).toEqual(new Set(committed))
    await restarted.kill('SIGTERM')
  })

  describe('poison events', () => {
    test('go to the dead-letter topic with the reason, and the stream continues', async () => {
      const worker = await startWorker({ OUTBOX_MAX_MESSAGE_BYTES: '2000' })
      await worker.waitForLog(/"msg":"streaming"/)
      const consumer = await consume([`${prefix}.order`, `${prefix}.order.dlq`, 'bad_topic_.dlq'])
      const [big, badTopic, fine] = await insertEvents(db, [
        { aggregateId: 'p', payload: { blob: 'x'.repeat(5000) } },
        { aggregateId: 'p', payload: {}, topic: 'bad topic!' },
        { aggregateId: 'p', payload: { ok: true } },
      ])
      // All three ids, not three records: a retried send may deliver a record twice (at-least-once).
      await waitUntil(
        'the two dead letters and the event after them',
        async () => [big, badTopic, fine].every((id) => consumer.messages.some((m) => m.headers.id === id)),
        30_000,
      )
      const byId = new Map(consumer.messages.map((m) => [m.headers.id, m]))
      expect(byId.get(big)).toMatchObject({
        topic: `${prefix}.order.dlq`,
        value: null,
        headers: { originalTopic: `${prefix}.order` },
      })
      expect(byId.get(big)?.headers.error).toMatch(/too large/)
      expect(byId.get(badTopic)).toMatchObject({ topic: 'bad_topic_.dlq', headers: { originalTopic: 'bad topic!' } })
      expect(byId.get(badTopic)?.headers.error).toMatch(/invalid topic/)
      expect(byId.get(fine)).toMatchObject({ topic: `${prefix}.order`, value: '{"ok": true}' })
      expect(await worker.metric('outbox_events_dead_lettered_total')).toBe(2)
    })

    test('what emit accepts under a size limit, the worker publishes under the same limit', async () => {
      const limit = 4000
      const worker = await startWorker({ OUTBOX_MAX_MESSAGE_BYTES: String(limit) })
      await worker.waitForLog(/"msg":"streaming"/)
      const consumer = await consume([`${prefix}.order`, `${prefix}.order.dlq`])
      const strict = createAppClient(db.url, { maxEventBytes: limit, traceContext: false })
      const zeros = (count: number) => ({
        aggregateType: 'order',
        aggregateId: 'z',
        type: 'zeros',
        payload: new Array<number>(count).fill(0),
      })
      // The longest array of zeros emit accepts: about limit / 3, as jsonb prints "0, " per item,
      // though JSON.stringify writes only "0,".
      let most = 0
      while (fits(zeros(most + 1), limit)) most++
      expect(JSON.stringify(zeros(most + 1).payload).length).toBeLessThan(limit * 0.7)
      try {
        const id = await strict.outbox.emit(zeros(most))
        await expect(strict.outbox.emit(zeros(most + 1))).rejects.toThrow(`over the ${limit}-byte maximum`)
        const [message] = await consumer.waitFor(1)
        expect(message).toMatchObject({ topic: `${prefix}.order`, headers: { id } })
        expect(message?.value).toBe(`[${new Array(most).fill('0').join(', ')}]`)
      } finally {
        await strict.$disconnect()
      }
    })

    test('events whose timestamp the topic refuses (INVALID_TIMESTAMP) arrive in order, stamped when sent, their own time in a header', async () => {
      // Kafka refuses records older than the topic's message.timestamp.before.max.ms (or newer
      // than ...after.max.ms, one hour by default since Kafka 4.0). The same record is refused
      // every time, so retrying it as it is would hold up everything behind it for good; these
      // are good events all the same, so they are not dead-lettered either. The dead-letter
      // topic has the limit too (a broker-wide setting would give it to every topic).
      const limited = [{ name: 'message.timestamp.before.max.ms', value: '3600000' }]
      const admin = testKafka(inject('kafkaBrokers')).admin()
      await admin.connect()
      await admin.createTopics({
        topics: [
          { topic: `${prefix}.order`, numPartitions: 1, configEntries: limited },
          { topic: `${prefix}.order.dlq`, numPartitions: 1, configEntries: limited },
        ],
      })
      await admin.disconnect()
      const worker = await startWorker()
      await worker.waitForLog(/"msg":"streaming"/)
      const consumer = await consume([`${prefix}.order`, `${prefix}.order.dlq`])
      const sentAfter = Date.now()
      // created_at in whole ms, cut as the worker cuts it (a JS Date), not rounded.
      const rows = await db.query<{ id: string; created: string }>(
        `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at)
         SELECT gen_random_uuid(), 'order', 'ts', 'order.created', jsonb_build_object('seq', i),
                CASE WHEN i = 2 THEN now() - interval '2 days' ELSE now() END
           FROM generate_series(1, 3) AS i
         RETURNING id, floor(extract(epoch FROM created_at) * 1000)::bigint::text AS created`,
      )
      const ids = rows.map((r) => r.id)
      await waitUntil(
        'the three events',
        async () => ids.every((id) => consumer.messages.some((m) => m.headers.id === id)),
        30_000,
      )
      // In order (first deliveries), none dead-lettered.
      const firsts = [...new Set(consumer.messages.map((m) => m.headers.id))]
      expect(firsts).toEqual(ids)
      expect(consumer.messages.every((m) => m.topic === `${prefix}.order`)).toBe(true)
      const old = consumer.messages.filter((m) => m.headers.id === ids[1])
      for (const copy of old) {
        expect(copy.timestamp).toBeGreaterThanOrEqual(sentAfter)
        expect(copy.headers.originalTimestamp).toBe(rows[1]?.created)
      }
      expect(await worker.metric('outbox_events_dead_lettered_total')).toBe(0)
    })

    test('with --on-poison stop the worker exits 4 without confirming, and delivers once the cause is fixed', async () => {
      const worker = await startWorker({ OUTBOX_MAX_MESSAGE_BYTES: '1000', OUTBOX_ON_POISON: 'stop' })
      await worker.waitForLog(/"msg":"streaming"/)
      const [id] = await insertEvents(db, [{ aggregateId: 'p', payload: { blob: 'x'.repeat(3000) } }])
      expect(await worker.exited).toBe(4)
      expect(worker.output.join('\n')).toContain(`event ${id} cannot be published`)
      expect(await slotReplays(db, slot, id as string)).toBe(true)

      const consumer = await consume([`${prefix}.order`])
      await startWorker({ OUTBOX_ON_POISON: 'stop' }) // the fix: the default 1 MiB limit
      const [message] = await consumer.waitFor(1)
      expect(message?.headers.id).toBe(id)
    })
  })
})
