/**
 * The inbox's consumer through broker restarts (kafkajs, its client): a consumer that stops for
 * good on an error it deems fatal would leave records unhandled without a sign (kafkajs#1011).
 * Every record produced must be applied once, and the inbox ready again, after each restart.
 * Uses a broker of its own, since it stops it.
 */
import { afterAll, beforeAll, expect, inject, test } from 'vitest'
import { createInbox } from '../../inbox/index.js'
import { type TestDatabase, uniqueName } from '../helpers/database.js'
import {
  createInboxDatabase,
  invoiceReport,
  type OrderEvents,
  orderEvents,
  produceEvents,
  writeInvoice,
} from '../helpers/inbox.js'
import { ensureTopics } from '../helpers/kafka.js'
import { createAppClient } from '../helpers/prisma.js'
import { type LocalKafka, startLocalKafka } from '../services/local-kafka.js'
import { waitUntil } from '../services/ports.js'

let kafka: LocalKafka
let db: TestDatabase

beforeAll(async () => {
  ;[kafka, db] = await Promise.all([startLocalKafka(), createInboxDatabase(inject('databaseUrl'))])
})
afterAll(async () => {
  await db?.dispose()
  await kafka?.dispose()
})

test('the broker restarted three times while records flow: each applied once, in key order, ready again after', async () => {
  const topic = uniqueName('inbox_restart')
  await ensureTopics(kafka.brokers, [topic])
  const prisma = createAppClient(db.url)
  const inbox = createInbox<OrderEvents, typeof prisma>({
    prisma,
    kafka: { brokers: kafka.brokers },
    topics: [topic],
    group: uniqueName('group'),
    name: 'billing',
    sessionTimeoutMs: 6000,
    handlers: { 'order.created': writeInvoice },
  })
  try {
    await inbox.start()
    const events = orderEvents(2000, 50)
    let sent = 0
    for (let restart = 0; restart < 3; restart++) {
      await produceEvents(kafka.brokers, topic, events.slice(sent, sent + 500))
      sent += 500
      await kafka.stop()
      await new Promise((r) => setTimeout(r, 2000))
      await kafka.start()
    }
    await produceEvents(kafka.brokers, topic, events.slice(sent))
    await waitUntil(
      'every invoice',
      async () => Number((await db.query('SELECT count(*) AS n FROM invoices'))[0]?.n) === events.length,
      90_000,
    )
    await waitUntil('ready', () => inbox.ready(), 30_000)
    expect(await invoiceReport(db)).toEqual({ rows: 2000, distinct: 2000, repeated: [], outOfOrder: [] })
  } finally {
    await inbox.stop()
    await prisma.$disconnect()
  }
}, 180_000)
