/**
 * The foundation end to end, with no product code (but for the two accessors the worker keeps into
 * pg-logical-replication's private fields): the migration SQL creates the outbox table and
 * publication; a committed row comes out of a pgoutput slot; kafkajs produces it with acks from
 * every replica and a consumer reads it back with every field intact.
 */
import { randomUUID } from 'node:crypto'
import { Socket } from 'node:net'
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication'
import { afterEach, expect, inject, test } from 'vitest'
import { formatLsn, parseLsn } from '../../worker/stream/lsn.js'
import { replicationBackendPid, replicationSocket, sendCopyData } from '../../worker/stream/replication-internals.js'
import { standbyStatusUpdate } from '../../worker/stream/status-update.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics, testKafka } from '../helpers/kafka.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase | undefined
afterEach(async () => {
  await db?.dispose()
})

test('a committed outbox row travels from the WAL through a pgoutput slot to Kafka and back', async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  const slot = uniqueName('slot')
  await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
  const settings = await db.query<{ wal_level: string }>('SHOW wal_level')
  expect(settings[0]?.wal_level).toBe('logical')

  const id = randomUUID()
  const topic = uniqueName('plumbing')
  const client = await db.pool.connect()
  try {
    await client.query('BEGIN')
    await client.query(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers, topic)
       VALUES ($1, 'order', '42', 'order.created', $2, $3, $4)`,
      [id, JSON.stringify({ id: 42, total: '9.99' }), JSON.stringify({ tenant: 'acme' }), topic],
    )
    await client.query('COMMIT')
  } finally {
    client.release()
  }

  // Read the slot with automatic acknowledgement off: nothing is confirmed behind our back.
  const service = new LogicalReplicationService(
    { connectionString: db.url },
    { acknowledge: { auto: false, timeoutSeconds: 0 } },
  )
  const inserts: Pgoutput.MessageInsert[] = []
  let commitEndLsn: string | null = null
  const done = new Promise<void>((resolve) => {
    service.on('data', (_lsn: string, message: Pgoutput.Message) => {
      if (message.tag === 'insert' && message.relation.name === 'outbox') inserts.push(message)
      if (message.tag === 'commit' && inserts.length > 0) {
        commitEndLsn = message.commitEndLsn
        resolve()
      }
    })
  })
  service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: ['prisma_outbox'] }), slot).catch(() => {})
  await done
  // The worker reaches inside pg-logical-replication for these two (worker/stream/replication-internals.ts):
  // an upgrade that renames them would leave it unable to pause, end a dead connection or tell who holds the slot.
  expect(replicationSocket(service)).toBeInstanceOf(Socket)
  const [holder] = await db.query<{ active_pid: number }>(
    'SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  )
  expect(replicationBackendPid(service)).toBe(holder?.active_pid)
  // The worker's own status update (status-update.ts), sent on the library's connection, confirms the slot.
  expect(
    sendCopyData(service, standbyStatusUpdate(parseLsn(commitEndLsn as unknown as string), Date.now(), true)),
  ).toBe(true)
  await waitUntil(
    'the slot confirmed at the commit',
    async () =>
      (
        await (db as TestDatabase).query<{ confirmed: string }>(
          'SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        )
      )[0]?.confirmed === formatLsn(parseLsn(commitEndLsn as unknown as string)),
    10_000,
  )
  await service.stop()

  expect(commitEndLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
  expect(inserts).toHaveLength(1)
  const row = inserts[0]?.new ?? {}
  expect(row).toMatchObject({ id, aggregatetype: 'order', aggregateid: '42', type: 'order.created', topic })
  expect(row.payload).toEqual({ id: 42, total: '9.99' })
  expect(row.headers).toEqual({ tenant: 'acme' })
  expect(row.created_at).toBeInstanceOf(Date)

  const producer = testKafka(inject('kafkaBrokers')).producer({ idempotent: true })
  await producer.connect()
  await producer.send({
    topic,
    acks: -1,
    messages: [
      {
        key: row.aggregateid,
        value: JSON.stringify(row.payload),
        timestamp: String((row.created_at as Date).getTime()),
        headers: { id: row.id, type: row.type },
      },
    ],
  })
  await producer.disconnect()

  const consumer = await collectTopics(inject('kafkaBrokers'), [topic])
  const [message] = await consumer.waitFor(1)
  await consumer.stop()
  expect(message).toMatchObject({
    topic,
    key: '42',
    value: '{"id":42,"total":"9.99"}',
    headers: { id, type: 'order.created' },
    timestamp: (row.created_at as Date).getTime(),
  })
})
