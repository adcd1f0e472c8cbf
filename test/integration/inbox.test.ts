/**
 * The inbox on real PostgreSQL and Kafka, in this process: each event applied once, per key in
 * order; a resent record skipped; a handler that fails retried, then parked with its key held;
 * poison records parked without stopping the consumer; a database outage retried, never parked;
 * a graceful stop that commits what it did.
 */
import { createRequire } from 'node:module'
import { KafkaJSConnectionError } from 'kafkajs'
import { v7 as uuidv7 } from 'uuid'
import { afterEach, beforeEach, describe, expect, inject, test, vi } from 'vitest'
import { createInbox, type Handlers, type Inbox, type InboxOptions, type TransactionOf } from '../../inbox/index.js'
import { runCli } from '../helpers/cli.js'
import { type TestDatabase, uniqueName } from '../helpers/database.js'
import {
  createInboxDatabase,
  invoiceReport,
  type OrderEvents,
  orderEvents,
  produceEvents,
  produceRaw,
  type TestEvent,
  writeInvoice,
} from '../helpers/inbox.js'
import { ensureTopics, testKafka } from '../helpers/kafka.js'
import { type AppClient, createAppClient } from '../helpers/prisma.js'
import { spawnWorker } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

const brokers = inject('kafkaBrokers')
let db: TestDatabase
let prisma: AppClient
let topic: string
const inboxes: Inbox[] = []

beforeEach(async () => {
  db = await createInboxDatabase(inject('databaseUrl'))
  prisma = createAppClient(db.url)
  topic = uniqueName('inbox')
  await ensureTopics(brokers, [topic])
})
afterEach(async () => {
  await Promise.all(inboxes.splice(0).map((inbox) => inbox.stop()))
  await prisma.$disconnect()
  await db.dispose()
})

type Tx = TransactionOf<AppClient>
type Options = InboxOptions<OrderEvents, AppClient, Tx>

async function startInbox(handlers: Handlers<OrderEvents, Tx>, options: Partial<Options> = {}) {
  const inbox = createInbox<OrderEvents, AppClient>({
    prisma,
    kafka: { brokers },
    topics: [topic],
    group: uniqueName('group'),
    name: 'billing',
    retryInitialMs: 20,
    retryMaxMs: 100,
    sessionTimeoutMs: 6000,
    handlers,
    ...options,
  })
  inboxes.push(inbox)
  await inbox.start()
  return inbox
}

const metric = async (inbox: Inbox, name: string, labels: Record<string, string> = {}) => {
  const found = (await inbox.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)
  const value = found?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
  return Number(value?.value ?? 0)
}
const invoices = async () => Number((await db.query('SELECT count(*) AS n FROM invoices'))[0]?.n)
const statuses = async () =>
  Object.fromEntries(
    (await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM inbox GROUP BY status')).map(
      (r) => [r.status, Number(r.n)],
    ),
  )

test('each event is applied once, in order per key; the same 1,000 records produced again change nothing', async () => {
  const events = orderEvents(1000, 25)
  await produceEvents(brokers, topic, events)
  const inbox = await startInbox({ 'order.created': writeInvoice })
  await waitUntil('1,000 invoices', async () => (await invoices()) === 1000, 60_000)
  await waitUntil('ready', () => inbox.ready(), 10_000)

  // The relay resending: a republish sends the same events (same ids) again.
  await produceEvents(brokers, topic, events)
  await waitUntil(
    '1,000 duplicates skipped',
    async () => (await metric(inbox, 'inbox_records_skipped_duplicate_total')) === 1000,
    60_000,
  )
  const report = await invoiceReport(db)
  expect(report).toEqual({ rows: 1000, distinct: 1000, repeated: [], outOfOrder: [] })
  expect(await metric(inbox, 'inbox_records_handled_total')).toBe(1000)
  expect(await statuses()).toEqual({ handled: 1000 })
  const lag = (await inbox.metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'inbox_lag_records')
  expect(lag?.values.every((v) => v.value === 0)).toBe(true)
})

test('through the real relay: 1,000 events emitted, relayed, consumed; `outbox-worker republish` sends them all again and nothing is applied twice', async () => {
  const prefix = uniqueName('relay')
  const env = {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: brokers.join(','),
    OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
    OUTBOX_SLOT: uniqueName('slot'),
  }
  await ensureTopics(brokers, [`${prefix}.order`])
  const worker = await spawnWorker(env)
  try {
    await worker.waitForLog(/"msg":"streaming"/)
    const ids: string[] = []
    for (let batch = 0; batch < 10; batch++) {
      await prisma.$transaction(async (tx) => {
        const events = Array.from({ length: 100 }, (_, i) => ({
          aggregateType: 'order',
          aggregateId: `o${i % 20}`,
          type: 'order.created' as const,
          payload: { orderId: `o${i % 20}`, seq: batch * 5 + Math.floor(i / 20), amount: '9.90' },
        }))
        ids.push(...(await tx.outbox.emitMany(events)))
      })
    }
    topic = `${prefix}.order`
    const inbox = await startInbox({ 'order.created': writeInvoice })
    await waitUntil('1,000 invoices', async () => (await invoices()) === 1000, 60_000)

    const republish = await runCli(['republish', '--since', ids[0] as string], { ...env, LOG_FORMAT: 'json' })
    expect(republish.code, republish.all).toBe(0)
    await waitUntil(
      '1,000 duplicates skipped',
      async () => (await metric(inbox, 'inbox_records_skipped_duplicate_total')) === 1000,
      60_000,
    )
    expect(await invoiceReport(db)).toEqual({ rows: 1000, distinct: 1000, repeated: [], outOfOrder: [] })
    const applied = await db.query<{ event_id: string }>('SELECT event_id FROM invoices')
    expect(new Set(applied.map((r) => r.event_id))).toEqual(new Set(ids))
  } finally {
    await worker.kill('SIGTERM')
  }
})

describe('failures', () => {
  test('a handler that fails three times then succeeds is applied once; the records behind it follow in order', async () => {
    const events = orderEvents(30, 3)
    const flaky = events[4]?.id
    let failures = 0
    await produceEvents(brokers, topic, events)
    const inbox = await startInbox({
      'order.created': async (event, tx) => {
        await writeInvoice(event, tx)
        if (event.id === flaky && failures < 3) {
          failures++
          throw new Error('payment service timed out')
        }
      },
    })
    await waitUntil('30 invoices', async () => (await invoices()) === 30, 30_000)
    expect(await invoiceReport(db)).toEqual({ rows: 30, distinct: 30, repeated: [], outOfOrder: [] })
    expect(failures).toBe(3)
    expect(await metric(inbox, 'inbox_handler_retries_total')).toBe(3)
    expect(await statuses()).toEqual({ handled: 30 })
  })

  test('a handler that always fails: parked after its attempts, its key waits, other keys flow; retryParked applies them in order once fixed', async () => {
    const events = orderEvents(40, 4) // keys o0..o3, 10 events each
    const poisoned = events.find((e) => e.key === 'o1' && (e.payload as { seq: number }).seq === 3)?.id
    let broken = true
    await produceEvents(brokers, topic, events)
    const inbox = await startInbox(
      {
        'order.created': async (event, tx) => {
          if (broken && event.id === poisoned) throw new Error('customer record missing')
          await writeInvoice(event, tx)
        },
      },
      { attempts: 3 },
    )
    // o1's seq 0..2 applied, seq 3 failed, seq 4..9 wait; the 30 events of other keys applied.
    await waitUntil(
      '33 invoices and o1 held',
      async () => (await invoices()) === 33 && (await statuses()).waiting === 6,
      30_000,
    )
    expect(await statuses()).toEqual({ handled: 33, failed: 1, waiting: 6 })
    const [failed] = await db.query('SELECT error, attempts, key FROM inbox WHERE status = $1', ['failed'])
    expect(failed).toMatchObject({ error: 'customer record missing', attempts: 3, key: 'o1' })
    expect(await metric(inbox, 'inbox_records_parked_total', { reason: 'failed' })).toBe(1)
    expect(await metric(inbox, 'inbox_records_parked_total', { reason: 'waiting' })).toBe(6)

    // New records of the held key wait too, behind the parked ones.
    const o1 = (seq: number) => ({
      id: uuidv7(),
      key: 'o1',
      type: 'order.created',
      payload: { orderId: 'o1', seq, amount: '1.00' },
    })
    await produceEvents(brokers, topic, [o1(10)])
    await waitUntil('the new o1 record waits', async () => (await statuses()).waiting === 7, 30_000)

    // Still broken: the retry stops at the failed record, the key keeps waiting.
    const stillBroken = await inbox.retryParked()
    expect(stillBroken.handled).toBe(0)
    expect(stillBroken.stillParked).toMatchObject([{ key: 'o1', eventId: poisoned }])

    broken = false
    expect(await inbox.retryParked()).toEqual({ handled: 8, stillParked: [] })
    expect(await invoiceReport(db)).toEqual({ rows: 41, distinct: 41, repeated: [], outOfOrder: [] })
    expect(await statuses()).toEqual({ handled: 41 })

    // And the key flows again.
    await produceEvents(brokers, topic, [o1(11)])
    await waitUntil('42 invoices', async () => (await invoices()) === 42, 30_000)
  })

  test("a handler's own connection error (a service it calls is down) uses up its attempts and is parked, not waited on as a database outage", async () => {
    const events = orderEvents(20, 2)
    const failing = events[0]?.id
    await produceEvents(brokers, topic, events)
    await startInbox(
      {
        'order.created': async (event, tx) => {
          // What fetch() throws when the service it calls refuses the connection.
          if (event.id === failing)
            throw new TypeError('fetch failed', {
              cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
            })
          await writeInvoice(event, tx)
        },
      },
      { attempts: 3 },
    )
    // Its key (o0) waits behind it; the other key flows. The wait ends on the whole end state:
    // o0's later records are parked one by one after the failure, so `failed` comes first.
    await waitUntil(
      'o0 failed and held, o1 applied',
      async () => (await invoices()) === 10 && (await statuses()).waiting === 9,
      30_000,
    )
    expect(await statuses()).toEqual({ handled: 10, failed: 1, waiting: 9 })
  })

  test('a handler that never settles: its attempt ends at transactionTimeoutMs, the record is parked, and the other records flow', async () => {
    const events = orderEvents(20, 2)
    const stuck = events[0]?.id
    await produceEvents(brokers, topic, events)
    await startInbox(
      {
        'order.created': async (event, tx) => {
          if (event.id === stuck) await new Promise(() => {})
          await writeInvoice(event, tx)
        },
      },
      { attempts: 2, transactionTimeoutMs: 1000 },
    )
    await waitUntil('1 failed', async () => (await statuses()).failed === 1, 30_000)
    await waitUntil('o1 applied', async () => (await invoices()) === 10, 30_000)
    const [row] = await db.query<{ error: string }>(`SELECT error FROM inbox WHERE status = 'failed'`)
    expect(row?.error).toMatch(/did not finish within transactionTimeoutMs \(1000 ms\)/)
  })

  test("onFailure 'continue': the failed record is parked and its key's later records are applied", async () => {
    const events = orderEvents(10, 1)
    const failing = events[2]?.id
    await produceEvents(brokers, topic, events)
    await startInbox(
      {
        'order.created': async (event, tx) => {
          if (event.id === failing) throw new Error('always')
          await writeInvoice(event, tx)
        },
      },
      { attempts: 2, onFailure: 'continue' },
    )
    await waitUntil('9 invoices', async () => (await invoices()) === 9, 30_000)
    await waitUntil('1 parked', async () => (await statuses()).failed === 1, 10_000)
    expect(await statuses()).toEqual({ handled: 9, failed: 1 })
  })

  test('poison records (no event headers, a value that is not JSON) are named in the log and parked; the rest flows', async () => {
    const lines: { level: string; fields: object; message: string }[] = []
    const logger = {
      debug() {},
      info() {},
      warn: (fields: object, message: string) => lines.push({ level: 'warn', fields, message }),
      error: (fields: object, message: string) => lines.push({ level: 'error', fields, message }),
      child: () => logger,
    }
    const [first, second] = orderEvents(2, 2) as [TestEvent, TestEvent]
    await produceEvents(brokers, topic, [first])
    await produceRaw(brokers, topic, [
      { key: 'o0', value: 'hello, not an event' },
      { key: 'o0', value: '{"broken json', headers: { id: 'e-bad-json', type: 'order.created' } },
    ])
    await produceEvents(brokers, topic, [second])
    await startInbox({ 'order.created': writeInvoice }, { logger })
    await waitUntil('2 invoices', async () => (await invoices()) === 2, 30_000)
    await waitUntil('2 poison rows', async () => (await statuses()).poison === 2, 10_000)
    const poison = lines.filter((l) => /poison record parked/.test(l.message))
    expect(poison.map((l) => l.message)).toEqual([
      expect.stringContaining('no "id" header'),
      expect.stringContaining('value is not JSON'),
    ])
    expect(poison[0]?.fields).toMatchObject({ topic, key: 'o0' })
    const rows = await db.query('SELECT event_id, value FROM inbox WHERE status = $1 ORDER BY "offset"', ['poison'])
    expect(rows.map((r) => r.value)).toEqual(['hello, not an event', '{"broken json'])
  })
})

test("the inbox's transactions run at read committed even when the app's client defaults to repeatable read", async () => {
  // Its checks after waiting on a key's lock must see what committed during the wait.
  const strict = createAppClient(db.url, undefined, { isolationLevel: 'RepeatableRead' })
  const levels = new Set<string>()
  await produceEvents(brokers, topic, orderEvents(10, 2))
  await startInbox(
    {
      'order.created': async (event, tx) => {
        const [row] = await tx.$queryRawUnsafe<{ level: string }[]>(
          `SELECT current_setting('transaction_isolation') AS level`,
        )
        levels.add(String(row?.level))
        await writeInvoice(event, tx)
      },
    },
    { prisma: strict },
  )
  await waitUntil('10 invoices', async () => (await invoices()) === 10, 30_000)
  expect([...levels]).toEqual(['read committed'])
  // The client itself does default to repeatable read: the inbox overrides it.
  const outside = await strict.$transaction((tx) =>
    tx.$queryRawUnsafe<{ level: string }[]>(`SELECT current_setting('transaction_isolation') AS level`),
  )
  expect(outside[0]?.level).toBe('repeatable read')
  await strict.$disconnect()
})

test('a database connection lost mid-stream is retried, never parked', async () => {
  const events = orderEvents(300, 10)
  await produceEvents(brokers, topic, events)
  const inbox = await startInbox(
    {
      'order.created': async (event, tx) => {
        await writeInvoice(event, tx)
        await new Promise((r) => setTimeout(r, 2))
      },
    },
    { attempts: 2 },
  )
  await waitUntil('some invoices', async () => (await invoices()) > 20, 30_000)
  // Every connection of the consumer's pool is cut, twice, while records are in transactions.
  for (let i = 0; i < 2; i++) {
    await db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    )
    await new Promise((r) => setTimeout(r, 200))
  }
  await waitUntil('300 invoices', async () => (await invoices()) === 300, 60_000)
  expect(await invoiceReport(db)).toEqual({ rows: 300, distinct: 300, repeated: [], outOfOrder: [] })
  expect(await statuses()).toEqual({ handled: 300 })
  expect(await metric(inbox, 'inbox_records_parked_total', { reason: 'failed' })).toBe(0)
})

test('stop() finishes the record in hand and commits: the group resumes just past what was handled, and a new consumer finishes the rest', async () => {
  const events = orderEvents(200, 4)
  await produceEvents(brokers, topic, events)
  const group = uniqueName('group')
  const slow: Handlers<OrderEvents, Tx> = {
    'order.created': async (event, tx) => {
      await writeInvoice(event, tx)
      await new Promise((r) => setTimeout(r, 20))
    },
  }
  const first = await startInbox(slow, { group })
  await waitUntil('some invoices', async () => (await invoices()) > 10, 30_000)
  await first.stop()
  const done = await invoices()
  expect(done).toBeLessThan(200)
  expect(await first.ready()).toBe(false)
  // What the group has committed is where its next consumer starts: just past the last record
  // each partition handled. (Counting the next consumer's duplicates would not tell: a consumer
  // that rejoins its group under load reads again what it has not committed yet, by design.)
  const handledUpTo = await db.query<{ partition: number; next: string }>(
    `SELECT "partition", (max("offset") + 1)::text AS next FROM inbox WHERE status = 'handled' GROUP BY "partition"`,
  )
  expect(handledUpTo.length).toBeGreaterThan(0)
  const admin = testKafka(brokers).admin()
  await admin.connect()
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] }).finally(() => admin.disconnect())
  const committedByPartition = new Map(committed?.partitions.map((p) => [p.partition, p.offset]))
  for (const { partition, next } of handledUpTo) expect(committedByPartition.get(partition)).toBe(next)

  await startInbox({ 'order.created': writeInvoice }, { group })
  await waitUntil('200 invoices', async () => (await invoices()) === 200, 30_000)
  expect(await invoiceReport(db)).toMatchObject({ rows: 200, repeated: [], outOfOrder: [] })
})

test('stop() commits what it handled even when the coordinator fails the commits made as it stops', async () => {
  // kafkajs's own commit at stop is one attempt whose failure it drops: a coordinator slow to
  // answer then (a loaded broker) cost the next consumer every record since the last periodic
  // commit, up to a second of them. Here every commit fails for 1.5 s from the call to stop().
  const OffsetManager = createRequire(import.meta.url)('kafkajs/src/consumer/offsetManager') as {
    prototype: { commitOffsets(...args: unknown[]): Promise<void> }
  }
  const commit = OffsetManager.prototype.commitOffsets
  let lastCommit = 0
  let failUntil = Number.POSITIVE_INFINITY
  const commits = vi.spyOn(OffsetManager.prototype, 'commitOffsets').mockImplementation(async function (
    this: unknown,
    ...args: unknown[]
  ) {
    if (Date.now() >= failUntil && Date.now() < failUntil + 1500) {
      throw new KafkaJSConnectionError('the coordinator does not answer (injected)')
    }
    await commit.apply(this, args)
    lastCommit = Date.now()
  })
  try {
    await produceEvents(brokers, topic, orderEvents(200, 4))
    const group = uniqueName('group')
    const first = await startInbox(
      {
        'order.created': async (event, tx) => {
          await writeInvoice(event, tx)
          await new Promise((r) => setTimeout(r, 20))
        },
      },
      { group },
    )
    await waitUntil('some invoices', async () => (await invoices()) > 10, 30_000)
    // Half an autoCommitInterval after a periodic commit: records are handled and not committed yet.
    const since = Date.now()
    await waitUntil('a periodic commit', async () => lastCommit > since, 10_000)
    await new Promise((r) => setTimeout(r, 500))
    failUntil = Date.now()
    await first.stop()
    expect(await invoices()).toBeLessThan(200)

    const second = await startInbox({ 'order.created': writeInvoice }, { group })
    await waitUntil('200 invoices', async () => (await invoices()) === 200, 30_000)
    expect(await invoiceReport(db)).toMatchObject({ rows: 200, repeated: [], outOfOrder: [] })
    expect(await metric(second, 'inbox_records_skipped_duplicate_total')).toBe(0)
  } finally {
    commits.mockRestore()
  }
})

test('retention deletes handled rows older than retainHandledMs, never parked ones', async () => {
  const inbox = await startInbox({ 'order.created': writeInvoice }, { retainHandledMs: 60_000 })
  await db.query(
    `INSERT INTO inbox (consumer, event_id, status, topic, partition, "offset", handled_at)
     VALUES ('billing', 'old', 'handled', 't', 0, 1, now() - interval '2 minutes'),
            ('billing', 'new', 'handled', 't', 0, 2, now()),
            ('billing', 'parked', 'failed', 't', 0, 3, NULL),
            ('shipping', 'other', 'handled', 't', 0, 1, now() - interval '2 minutes')`,
  )
  expect(await inbox.purgeHandled()).toBe(1)
  const left = await db.query('SELECT event_id FROM inbox ORDER BY event_id')
  expect(left.map((r) => r.event_id)).toEqual(['new', 'other', 'parked'])
})
