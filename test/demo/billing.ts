/**
 * `npm run demo:billing`: both halves of the pattern, end to end, on services started for you.
 * An orders app commits orders with tx.outbox.emit; outbox-worker streams them to Kafka; a billing
 * consumer (its own process, createInbox from prisma-outbox/inbox) writes one invoice per order
 * event. Midway the consumer is killed with SIGKILL and restarted; Kafka hands it again what it
 * had not committed. Exit code 0 only if every order has exactly one invoice.
 */
import { join } from 'node:path'
import type { EventOf } from '../../src/index.js'
import { createTestDatabase, inboxMigrationSql, invoicesMigrationSql, uniqueName } from '../helpers/database.js'
import { type InboxProcess, type OrderEvents, spawnInboxProcess } from '../helpers/inbox.js'
import { ensureTopics } from '../helpers/kafka.js'
import { createAppClient } from '../helpers/prisma.js'
import { spawnWorker } from '../helpers/worker.js'
import { startServices } from '../services/index.js'

const ORDERS = Number(process.env.DEMO_ORDERS ?? 400)
const say = (tag: string, text: string) => process.stdout.write(`${tag.padEnd(9)} ${text}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

say('[demo]', 'starting PostgreSQL (wal_level=logical) and Kafka...')
const services = await startServices((line) => say('[demo]', line))
const db = await createTestDatabase(services.databaseUrl)
await db.query(inboxMigrationSql)
await db.query(invoicesMigrationSql)
say('[demo]', `database ${db.name}: outbox, orders, inbox (prisma/outbox/inbox-migration.sql) and invoices tables`)
const prefix = uniqueName('billing')
const topic = `${prefix}.order`
const worker = await spawnWorker({
  DATABASE_URL: db.url,
  KAFKA_BROKERS: services.kafkaBrokers.join(','),
  OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
  OUTBOX_SLOT: 'billing_demo',
  LOG_LEVEL: 'info',
})
await worker.waitForLog(/"msg":"streaming"/)
say('[worker]', 'outbox-worker streaming the outbox to Kafka')
// The relay would create the topic with its first event; created here so the consumer joins at once.
await ensureTopics(services.kafkaBrokers, [topic])

let billing: InboxProcess | undefined
const startBilling = async () => {
  billing = spawnInboxProcess({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: services.kafkaBrokers.join(','),
    INBOX_TOPIC: topic,
    INBOX_GROUP: 'billing',
    INBOX_NAME: 'billing',
    HANDLER_DELAY_MS: '5',
  })
  await billing.waitForLog(/"msg":"joined the consumer group"/)
  say('[billing]', `consumer ${billing.child.pid} joined group "billing" (${join('test/helpers', 'inbox-process.ts')})`)
}
const invoices = async () => Number((await db.query('SELECT count(*) AS n FROM invoices'))[0]?.n)

let code = 1
try {
  await startBilling()
  const prisma = createAppClient(db.url)
  for (let i = 1; i <= ORDERS; i++) {
    await prisma.$transaction(async (tx) => {
      const order = await tx.order.create({ data: { customer: `c${i % 7}`, total: (10 + i).toFixed(2) } })
      // The type map both sides share: emit checks the payload the handler will receive.
      const event: EventOf<OrderEvents, 'order.created'> = {
        aggregateType: 'order',
        aggregateId: order.id,
        type: 'order.created',
        payload: { orderId: String(order.id), seq: 0, amount: order.total.toFixed(2) },
      }
      await tx.outbox.emit(event)
    })
    if (i % 100 === 0) say('[app]', `${i} orders committed, each with its order.created event`)
    if (i === Math.floor(ORDERS / 2)) {
      // Killed once a quarter of the orders is billed: mid-stream, with work in hand.
      const deadline = Date.now() + 20_000
      while ((await invoices()) < ORDERS / 4 && Date.now() < deadline) await sleep(50)
      say('[demo]', `kill -9 of the billing consumer with ${await invoices()} invoices written`)
      await billing?.kill('SIGKILL')
      // Restarted at once; the orders keep coming while it rejoins the group.
      void startBilling()
    }
    await sleep(5)
  }
  await prisma.$disconnect()
  const deadline = Date.now() + 60_000
  while ((await invoices()) < ORDERS && Date.now() < deadline) await sleep(200)
  await sleep(500)
  const [check] = await db.query<{ rows: string; orders: string; twice: string }>(
    `SELECT count(*) AS rows, count(DISTINCT order_id) AS orders,
            (SELECT count(*) FROM (SELECT 1 FROM invoices GROUP BY event_id HAVING count(*) > 1) t) AS twice
     FROM invoices`,
  )
  const ok = Number(check?.rows) === ORDERS && Number(check?.orders) === ORDERS && Number(check?.twice) === 0
  process.stdout.write(
    [
      '',
      'Summary',
      `  orders committed   ${ORDERS}`,
      `  invoices written   ${check?.rows} for ${check?.orders} orders; events applied twice: ${check?.twice}`,
      `  ${ok ? 'OK: every order billed exactly once through a kill -9 of the consumer' : 'FAILED: an order was billed twice or not at all'}`,
      '',
    ].join('\n'),
  )
  code = ok ? 0 : 1
} catch (error) {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`)
} finally {
  await billing?.kill('SIGTERM')
  await worker.kill('SIGTERM')
  await db.dispose().catch(() => {})
  await services.dispose()
}
process.exit(code)
