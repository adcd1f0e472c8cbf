/**
 * Message mode end to end: `outbox({ mode: 'message' })` in a transaction → the worker (its real
 * CLI, unchanged configuration) → Kafka, next to table mode on the same database.
 */
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import type { OutboxEvent } from '../../src/index.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics, type ReceivedMessage } from '../helpers/kafka.js'
import { type AppClient, createAppClient } from '../helpers/prisma.js'
import { spawnWorker, type WorkerProcess } from '../helpers/worker.js'

let db: TestDatabase
let prefix: string
let worker: WorkerProcess
let consumer: Awaited<ReturnType<typeof collectTopics>>
const clients: AppClient[] = []

beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  prefix = uniqueName('t')
  worker = await spawnWorker({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: inject('kafkaBrokers').join(','),
    OUTBOX_SLOT: uniqueName('slot'),
    OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
  })
  await worker.waitForLog(/"msg":"streaming"/)
  consumer = await collectTopics(inject('kafkaBrokers'), [`${prefix}.order`, `${prefix}.explicit`])
})
afterEach(async () => {
  await worker.kill()
  await consumer.stop()
  await Promise.all(clients.splice(0).map((c) => c.$disconnect()))
  await db.dispose()
})

function client(...args: Parameters<typeof createAppClient>[1 | 2][]): AppClient {
  const made = createAppClient(db.url, ...(args as [never, never]))
  clients.push(made)
  return made
}

/** The record for an event id, once it has arrived. */
async function received(id: string): Promise<ReceivedMessage> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const found = consumer.messages.find((m) => m.headers.id === id)
    if (found) return found
    if (Date.now() > deadline) throw new Error(`event ${id} did not arrive\n${worker.output.slice(-20).join('\n')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Emits in a transaction; returns the id and the transaction's now() in ms (created_at). */
async function emitIn(prisma: AppClient, event: OutboxEvent): Promise<{ id: string; nowMs: number }> {
  return prisma.$transaction(async (tx) => {
    await tx.order.create({ data: { customer: 'ada', total: '12.50' } })
    const id = await tx.outbox.emit(event)
    const [row] = await tx.$queryRawUnsafe<{ ms: string }[]>(
      'SELECT floor(extract(epoch FROM now()) * 1000)::bigint::text AS ms',
    )
    return { id, nowMs: Number(row?.ms) }
  })
}

// Keys in no particular order and spaced: both modes send jsonb's text of it, not this.
const event = (topic?: string): OutboxEvent => ({
  aggregateType: 'order',
  aggregateId: 'o-42',
  type: 'order.created',
  payload: { total: '12.50', id: 42, lines: [{ sku: 'a', qty: 1 }], note: 'é "quoted" \\ ✓' },
  headers: { tenant: 'acme' },
  ...(topic ? { topic } : {}),
})

test('a message-mode event reaches Kafka as the same record as a table-mode one', async () => {
  const table = await emitIn(client(), event())
  const message = await emitIn(client({ mode: 'message' }), event())
  const wrapped = await emitIn(client({ mode: 'message' }, { withOutbox: true }), event(`${prefix}.explicit`))

  const [fromTable, fromMessage, fromWrapped] = await Promise.all([table, message, wrapped].map((e) => received(e.id)))
  const same = (m: ReceivedMessage | undefined) => ({
    key: m?.key,
    value: m?.value,
    headers: { ...m?.headers, id: undefined },
  })
  expect(same(fromMessage)).toEqual(same(fromTable))
  expect(same(fromWrapped)).toEqual(same(fromTable))
  expect(fromTable?.value).toBe(
    '{"id": 42, "note": "é \\"quoted\\" \\\\ ✓", "lines": [{"qty": 1, "sku": "a"}], "total": "12.50"}',
  )
  expect(fromMessage?.topic).toBe(`${prefix}.order`)
  expect(fromWrapped?.topic).toBe(`${prefix}.explicit`)
  // The timestamp is created_at in both modes: the transaction's now().
  expect(fromTable?.timestamp).toBe(table.nowMs)
  expect(fromMessage?.timestamp).toBe(message.nowMs)
  expect(fromWrapped?.timestamp).toBe(wrapped.nowMs)
  // Message mode wrote no rows.
  expect(await db.query('SELECT id FROM outbox')).toEqual([{ id: table.id }])
})

test.each([
  ['', false],
  [' (withOutbox)', true],
])("a rolled-back transaction's message never arrives; emitMany's arrive in order%s", async (_, wrapped) => {
  const prisma = client({ mode: 'message' }, { withOutbox: wrapped })
  let rolledBack = ''
  await expect(
    prisma.$transaction(async (tx) => {
      rolledBack = await tx.outbox.emit(event())
      throw new Error('payment declined')
    }),
  ).rejects.toThrow('payment declined')
  const ids = await prisma.$transaction(async (tx) =>
    tx.outbox.emitMany([1, 2, 3].map((n) => ({ ...event(), payload: { n } }))),
  )
  const last = await received(ids[2] as string)
  expect(last.value).toBe('{"n": 3}')
  const arrived = consumer.messages.map((m) => m.headers.id)
  expect(arrived).not.toContain(rolledBack)
  expect(arrived.filter((id) => ids.includes(id as string))).toEqual(ids)
})

test("another outbox's messages and anyone else's on the same database are not delivered", async () => {
  // Another app, configured for another outbox table: its messages carry that table's prefix.
  const otherApp = client({ mode: 'message', table: 'other.outbox' })
  const foreign = await otherApp.$transaction(async (tx) => tx.outbox.emit(event()))
  await db.query(`SELECT pg_logical_emit_message(true, 'some-other-tool', 'not an event')`)
  const ours = await emitIn(client({ mode: 'message' }), event())
  await received(ours.id)
  expect(consumer.messages.map((m) => m.headers.id)).not.toContain(foreign)
  expect(consumer.messages).toHaveLength(1)
})
