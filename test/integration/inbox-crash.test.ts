/**
 * The inbox through crashes: consumer processes killed with SIGKILL at random points while events
 * flow, restarted each time, and a group of two losing one member mid-stream. The business table
 * must end with exactly one row per event, and each key's rows in the order its events were sent.
 */
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import { type TestDatabase, uniqueName } from '../helpers/database.js'
import {
  createInboxDatabase,
  type InboxProcess,
  invoiceReport,
  orderEvents,
  produceEvents,
  spawnInboxProcess,
} from '../helpers/inbox.js'
import { ensureTopics } from '../helpers/kafka.js'

const brokers = inject('kafkaBrokers')
let db: TestDatabase
let topic: string
const processes: InboxProcess[] = []

beforeEach(async () => {
  db = await createInboxDatabase(inject('databaseUrl'))
  topic = uniqueName('inbox_crash')
  await ensureTopics(brokers, [topic])
})
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.kill('SIGKILL')))
  await db.dispose()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const invoices = async () => Number((await db.query('SELECT count(*) AS n FROM invoices'))[0]?.n)

function consumer(group: string, extra: Record<string, string> = {}): InboxProcess {
  const child = spawnInboxProcess({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: brokers.join(','),
    INBOX_TOPIC: topic,
    INBOX_GROUP: group,
    INBOX_NAME: 'billing',
    ...extra,
  })
  processes.push(child)
  return child
}

async function waitForInvoices(count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while ((await invoices()) < count) {
    if (Date.now() > deadline) throw new Error(`${await invoices()} of ${count} invoices after ${timeoutMs} ms`)
    await sleep(200)
  }
}

test('kill -9 at random points while 10,000 events flow, restarted each time: one row per event, keys in order', async () => {
  const events = orderEvents(10_000, 200)
  const group = uniqueName('group')
  // Events keep arriving while the consumer is killed: ten batches, half a second apart.
  const producing = (async () => {
    for (let i = 0; i < events.length; i += 1000) {
      await produceEvents(brokers, topic, events.slice(i, i + 1000))
      await sleep(500)
    }
  })()
  let kills = 0
  while (kills < 4 && (await invoices()) < events.length) {
    const child = consumer(group)
    await child.waitForLog(/"msg":"joined the consumer group"/)
    await sleep(300 + Math.random() * 1500)
    await child.kill('SIGKILL')
    kills++
  }
  await producing
  consumer(group)
  await waitForInvoices(events.length, 60_000)
  await sleep(500) // anything applied twice would show up now
  expect(kills).toBeGreaterThanOrEqual(3)
  expect(await invoiceReport(db)).toEqual({ rows: 10_000, distinct: 10_000, repeated: [], outOfOrder: [] })
  const [inbox] = await db.query(
    `SELECT count(*) AS n, count(*) FILTER (WHERE status = 'handled') AS handled FROM inbox`,
  )
  expect(inbox).toEqual({ n: '10000', handled: '10000' })
}, 150_000)

test('two consumers in one group, one killed mid-stream: every event applied once, each key in order', async () => {
  const events = orderEvents(3000, 40)
  const group = uniqueName('group')
  await produceEvents(brokers, topic, events)
  // A few milliseconds per record, so both members hold partitions for a while.
  const first = consumer(group, { HANDLER_DELAY_MS: '3' })
  const second = consumer(group, { HANDLER_DELAY_MS: '3' })
  await Promise.all([first, second].map((c) => c.waitForLog(/"msg":"joined the consumer group"/)))
  await waitForInvoices(600, 60_000)
  await first.kill('SIGKILL')
  await waitForInvoices(events.length, 90_000)
  await sleep(500)
  expect(await invoiceReport(db)).toEqual({ rows: 3000, distinct: 3000, repeated: [], outOfOrder: [] })
}, 150_000)
