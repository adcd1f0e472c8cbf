/**
 * `outbox-worker republish --since <time|id>` sends exactly the rows asked for, in id order,
 * through the worker's publisher (same topic, key, headers), and says how many.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { v7 as uuidv7 } from 'uuid'
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics } from '../helpers/kafka.js'

let db: TestDatabase
let prefix: string
const consumers: { stop(): Promise<void> }[] = []

beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  prefix = uniqueName('t')
})
afterEach(async () => {
  await Promise.all(consumers.splice(0).map((c) => c.stop()))
  await db.dispose()
})

function cli(args: string[]) {
  return runCli(args, {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: inject('kafkaBrokers').join(','),
    OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
    LOG_FORMAT: 'json',
  })
}

async function emit(count: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const id = uuidv7()
    await db.query(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', 'a', 'order.created', $2)`,
      [id, JSON.stringify({ i })],
    )
    ids.push(id)
  }
  return ids
}

test('republish --since <id> sends that event and every later one, in order; --since <time> the rows created since', async () => {
  const consumer = await collectTopics(inject('kafkaBrokers'), [`${prefix}.order`])
  consumers.push(consumer)
  const early = await emit(5)
  await sleep(50)
  const time = new Date()
  await sleep(50)
  const late = await emit(3)

  const byId = await cli(['republish', '--since', early[3] as string])
  expect(byId.all).toContain('republish: published 5 rows')
  expect(byId.code).toBe(0)
  await consumer.waitFor(5)
  expect(consumer.messages.map((m) => m.headers.id)).toEqual([early[3], early[4], ...late])
  // The payload as PostgreSQL prints the jsonb, as the stream sends it.
  expect(consumer.messages[0]).toMatchObject({ key: 'a', value: '{"i": 3}' })

  const byTime = await cli(['republish', '--since', time.toISOString()])
  expect(byTime.code).toBe(0)
  await consumer.waitFor(8)
  expect(consumer.messages.slice(5).map((m) => m.headers.id)).toEqual(late)
})

test('republish without --since, or with a time without its zone: exit 2 naming --since', async () => {
  const missing = await cli(['republish'])
  expect(missing.code).toBe(2)
  expect(missing.all).toContain('republish needs --since <time|id>')
  const zoneless = await cli(['republish', '--since', '2026-11-20 10:00'])
  expect(zoneless.code).toBe(2)
  expect(zoneless.all).toContain('--since "2026-11-20 10:00" is neither an event id')
})
