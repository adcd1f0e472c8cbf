/**
 * A consumer process for the inbox tests (and the billing demo's shape): applies order events
 * to the invoices table through createInbox. Configured by the environment: DATABASE_URL,
 * KAFKA_BROKERS, INBOX_TOPIC, INBOX_GROUP, INBOX_NAME. Logs JSON lines; SIGTERM stops gracefully.
 */
import { createInbox } from '../../inbox/index.js'
import { createLogger } from '../../worker/operations/logger.js'
import { type OrderEvents, writeInvoice } from './inbox.js'
import { createAppClient } from './prisma.js'

const env = (name: string) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const logger = createLogger(process.env.LOG_LEVEL ?? 'info', 'json')
const prisma = createAppClient(env('DATABASE_URL'))
const inbox = createInbox<OrderEvents, typeof prisma>({
  prisma,
  kafka: { brokers: env('KAFKA_BROKERS').split(',') },
  topics: [env('INBOX_TOPIC')],
  group: env('INBOX_GROUP'),
  name: env('INBOX_NAME'),
  logger,
  sessionTimeoutMs: 6000,
  handlers: {
    'order.created': async (event, tx) => {
      await writeInvoice(event, tx)
      // A handler that takes a moment, as real ones do, so a kill lands inside transactions too.
      if (process.env.HANDLER_DELAY_MS) await new Promise((r) => setTimeout(r, Number(process.env.HANDLER_DELAY_MS)))
    },
  },
})
process.once('SIGTERM', () => {
  void inbox.stop().then(() => prisma.$disconnect().then(() => process.exit(0)))
})
await inbox.start()
