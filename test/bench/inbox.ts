/**
 * `npm run bench -- --only=inbox [--events=N]`: events/s through the inbox against plain kafkajs
 * consumers of the same topic (the inbox's client), each with its own consumer group:
 *   plain      eachBatch, nothing done per record: what the client and broker allow;
 *   plain+tx   the same handler write (one invoice row) in its own prisma.$transaction, no inbox:
 *              what the database allows one transaction per record;
 *   inbox      createInbox with that handler: the inbox's own cost is the gap to plain+tx.
 * Rates are from the first record received to the last; the group join is not counted. The two
 * database variants run twice, ABBA, so a machine getting slower or faster favours neither.
 */
import { createInbox } from '../../inbox/index.js'
import { createInboxDatabase, type OrderEvents, orderEvents, produceEvents, writeInvoice } from '../helpers/inbox.js'
import { testKafka } from '../helpers/kafka.js'
import { createAppClient } from '../helpers/prisma.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface InboxBenchResult {
  variant: 'plain' | 'plain+tx' | 'inbox'
  events: number
  perS: number
}

/** Partitions handled at once by every variant: the inbox's default. */
const CONCURRENCY = 4

export async function benchInbox(databaseUrl: string, brokers: string[], events: number): Promise<InboxBenchResult[]> {
  const db = await createInboxDatabase(databaseUrl)
  const prisma = createAppClient(db.url, undefined, { pool: { max: CONCURRENCY + 2 } })
  const topic = `bench.inbox.${db.name}`
  try {
    await produceEvents(brokers, topic, orderEvents(events, 1000))
    const results: InboxBenchResult[] = []
    for (const [run, variant] of (['plain', 'plain+tx', 'inbox', 'inbox', 'plain+tx'] as const).entries()) {
      let first = 0
      let last = 0
      let count = 0
      const seen = () => {
        count++
        last = Date.now()
        if (first === 0) first = last
      }
      const group = `bench-${variant.replace('+', '-')}-${run}-${db.name}`
      let stop: () => Promise<void>
      if (variant === 'inbox') {
        const inbox = createInbox<OrderEvents, typeof prisma>({
          prisma,
          kafka: { brokers },
          topics: [topic],
          group,
          name: group,
          partitionsConcurrently: CONCURRENCY,
          handlers: {
            'order.created': async (event, tx) => {
              await writeInvoice(event, tx)
              seen()
            },
          },
        })
        await inbox.start()
        stop = () => inbox.stop()
      } else {
        const consumer = testKafka(brokers).consumer({ groupId: group, maxWaitTimeInMs: 100 })
        await consumer.connect()
        await consumer.subscribe({ topics: [topic], fromBeginning: true })
        await consumer.run({
          partitionsConsumedConcurrently: CONCURRENCY,
          eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
            for (const message of batch.messages) {
              if (variant === 'plain+tx') {
                const payload = JSON.parse(message.value?.toString() ?? 'null') as OrderEvents['order.created']
                const id = message.headers?.id?.toString() ?? ''
                await prisma.$transaction(async (tx) => writeInvoice({ id, payload }, tx))
              }
              seen()
              resolveOffset(message.offset)
            }
            await heartbeat()
          },
        })
        stop = () => consumer.disconnect()
      }
      const deadline = Date.now() + 600_000
      while (count < events && Date.now() < deadline) await sleep(100)
      await stop()
      results.push({ variant, events: count, perS: count / Math.max(0.001, (last - first) / 1000) })
    }
    return results
  } finally {
    await prisma.$disconnect()
    await db.dispose()
  }
}
