import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { v7 as uuidv7 } from 'uuid'
import { createTestDatabase, inboxMigrationSql, invoicesMigrationSql, type TestDatabase } from './database.js'
import { ensureTopics, testKafka } from './kafka.js'
import type { AppClient } from './prisma.js'

const root = join(import.meta.dirname, '../..')

/** The payloads the example consumer handles, shared with the emitting side in a real app. */
export interface OrderEvents {
  'order.created': { orderId: string; seq: number; amount: string }
}

/** A test database with the inbox table and the example consumer's invoices table. */
export async function createInboxDatabase(adminUrl: string): Promise<TestDatabase> {
  const db = await createTestDatabase(adminUrl)
  await db.query(inboxMigrationSql)
  await db.query(invoicesMigrationSql)
  return db
}

export interface TestEvent {
  id: string
  key: string
  type: string
  payload: unknown
}

/** `count` order events spread over `keys` orders, each order's `seq` counting up from 0. */
export function orderEvents(count: number, keys: number, prefix = 'o'): TestEvent[] {
  const next = new Map<string, number>()
  return Array.from({ length: count }, (_, i) => {
    const key = `${prefix}${i % keys}`
    const seq = next.get(key) ?? 0
    next.set(key, seq + 1)
    return { id: uuidv7(), key, type: 'order.created', payload: { orderId: key, seq, amount: '9.90' } }
  })
}

/** Produces events as the relay does: key = aggregateId, headers id/type/aggregateType, JSON value. */
export async function produceEvents(brokers: string[], topic: string, events: TestEvent[]): Promise<void> {
  await ensureTopics(brokers, [topic])
  const producer = testKafka(brokers).producer()
  await producer.connect()
  try {
    for (let i = 0; i < events.length; i += 1000) {
      await producer.send({
        topic,
        messages: events.slice(i, i + 1000).map((e) => ({
          key: e.key,
          value: typeof e.payload === 'string' ? e.payload : JSON.stringify(e.payload),
          headers: { id: e.id, type: e.type, aggregateType: 'order', aggregateId: e.key },
        })),
      })
    }
  } finally {
    await producer.disconnect()
  }
}

/** Produces raw records (poison: no headers, a value that is not JSON). */
export async function produceRaw(
  brokers: string[],
  topic: string,
  messages: { key: string; value: string; headers?: Record<string, string> }[],
): Promise<void> {
  const producer = testKafka(brokers).producer()
  await producer.connect()
  try {
    await producer.send({ topic, messages })
  } finally {
    await producer.disconnect()
  }
}

/** The example consumer's effect: one invoice row per order event applied. */
export async function writeInvoice(
  event: { id: string; payload: OrderEvents['order.created'] },
  tx: Pick<AppClient, 'invoice'>,
): Promise<void> {
  await tx.invoice.create({
    data: { eventId: event.id, orderId: event.payload.orderId, seq: event.payload.seq, amount: event.payload.amount },
  })
}

/** Rows per event id, and keys whose rows were applied out of seq order. */
export async function invoiceReport(db: TestDatabase) {
  const rows = await db.query<{ event_id: string; order_id: string; seq: number }>(
    'SELECT event_id, order_id, seq FROM invoices ORDER BY applied',
  )
  const perEvent = new Map<string, number>()
  const lastSeq = new Map<string, number>()
  const outOfOrder = new Set<string>()
  for (const row of rows) {
    perEvent.set(row.event_id, (perEvent.get(row.event_id) ?? 0) + 1)
    if ((lastSeq.get(row.order_id) ?? -1) > row.seq) outOfOrder.add(row.order_id)
    lastSeq.set(row.order_id, row.seq)
  }
  const repeated = [...perEvent].filter(([, n]) => n > 1).map(([id]) => id)
  return { rows: rows.length, distinct: perEvent.size, repeated, outOfOrder: [...outOfOrder] }
}

export interface InboxProcess {
  child: ChildProcess
  output: string[]
  exited: Promise<number | null>
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>
  kill(signal?: NodeJS.Signals): Promise<number | null>
}

/** Runs test/helpers/inbox-process.ts (a consumer applying order events) as a process of its own. */
export function spawnInboxProcess(env: Record<string, string>): InboxProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/helpers/inbox-process.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const onData = (data: Buffer) => output.push(...data.toString('utf8').split('\n').filter(Boolean))
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    child,
    output,
    exited,
    async waitForLog(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs
      while (!output.some((line) => pattern.test(line))) {
        if (child.exitCode !== null) throw new Error(`inbox process exited (${child.exitCode}):\n${output.join('\n')}`)
        if (Date.now() > deadline)
          throw new Error(`no log line ${pattern} in ${timeoutMs} ms:\n${output.slice(-30).join('\n')}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}
