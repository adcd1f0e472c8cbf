/**
 * The guarantees under the faults production has beyond crashed processes: a slow, resetting or
 * partitioned network (through fault proxies), and operators changing the setup under load (the
 * table re-created, the publication changed, schema drift, a topic that does not exist). Same
 * writers, checker and verdict as chaos.test.ts.
 */

import { afterAll, beforeAll, describe, test } from 'vitest'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { waitUntil } from '../services/ports.js'
import {
  expectGuarantees,
  type FaultServices,
  randomBetween,
  reportResults,
  runScenario,
  type ScenarioContext,
  type ScenarioResult,
  startFaultServices,
} from './environment.js'
import { partitionStreamingWorker, terminateWalsender, withWalSenderTimeout } from './faults.js'

let services: FaultServices
const results: ScenarioResult[] = []

beforeAll(async () => {
  services = await startFaultServices()
})
afterAll(async () => {
  reportResults('network and setup faults', results)
  await services?.postgres.dispose()
  await services?.kafka.dispose()
})

/**
 * The README's recovery for a table that left the publication: in one transaction, with writers
 * held back, put the table back and write again (same ids) what was inserted since `since`.
 */
async function republishSince(ctx: ScenarioContext, since: string): Promise<void> {
  const client = await ctx.db.pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE')
    const { rows } = await client.query(
      `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'prisma_outbox' AND tablename = 'outbox') AS published`,
    )
    if (!rows[0].published) await client.query('ALTER PUBLICATION prisma_outbox ADD TABLE outbox')
    await client.query(`CREATE TEMP TABLE missed ON COMMIT DROP AS SELECT * FROM outbox WHERE created_at >= $1`, [
      since,
    ])
    await client.query('DELETE FROM outbox WHERE id IN (SELECT id FROM missed)')
    await client.query('INSERT INTO outbox SELECT * FROM missed ORDER BY id')
    await client.query('COMMIT')
  } finally {
    client.release()
  }
}

async function databaseNow(ctx: ScenarioContext): Promise<string> {
  return (await ctx.db.query<{ now: string }>(`SELECT (now() - interval '1 second')::text AS now`))[0]?.now as string
}

// The scenarios that exercise the Kafka client run once per supported client: these two prove
// that a publisher given up on (and its requests in flight) cannot write after the next session's.
describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  const options = { env: { OUTBOX_KAFKA_CLIENT: client } }

  test('Kafka 300 ms away and the walsender terminated 4 times: sends abandoned by a session never land after the next one', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `Kafka latency 300 ms + walsender killed ×4 (${client})`,
        services,
        async (ctx) => {
          ctx.kafka.proxy.latency(300)
          for (let i = 0; i < 4; i++) {
            await ctx.sleep(randomBetween(500, 1500))
            await terminateWalsender(ctx)
          }
          ctx.kafka.proxy.latency(0)
          await ctx.measureRecovery()
        },
        options,
      ),
    )
  })

  test('Kafka connections reset 5 times, then a partition of 6 s that heals with its requests still in flight', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `Kafka resets ×5 + partition 6 s (${client})`,
        services,
        async (ctx) => {
          for (let i = 0; i < 5; i++) {
            await ctx.sleep(randomBetween(300, 1000))
            ctx.kafka.proxy.resetAll()
          }
          await ctx.sleep(500)
          ctx.kafka.proxy.blackhole()
          await ctx.sleep(6000)
          ctx.kafka.proxy.restore()
          await ctx.measureRecovery()
        },
        options,
      ),
    )
  })
})

test('the streaming worker partitioned from PostgreSQL (half-open): the standby takes over, the zombie stops publishing', async () => {
  const result = await withWalSenderTimeout(services.postgres.url, '3s', () =>
    runScenario('PostgreSQL partition of the streaming worker', services, partitionStreamingWorker, { workers: 2 }),
  )
  expectGuarantees(results, result)
})

/**
 * An operator's change to the setup under load (`change`), then the way back the docs give: the
 * worker streaming the slot is held (not ready; a standby is, since it could take over), the events
 * written since the change are republished, and delivery recovers.
 */
async function heldThenRepublished(ctx: ScenarioContext, change: () => Promise<unknown>): Promise<void> {
  await ctx.sleep(1000)
  const since = await databaseNow(ctx)
  await change()
  await waitUntil(
    'the streaming worker held (not ready)',
    async () => (await (await ctx.supervisor.active())?.ready()) === false,
    15_000,
    100,
  )
  await republishSince(ctx, since)
  await ctx.measureRecovery()
}

// The operator's changes to the setup are server-side faults: with both delivery modes.
describe.each(['at-least-once', 'exactly-once'])('with %s delivery', (delivery) => {
  test('the table re-created under load, then the publication changed: held, fixed, republished, nothing lost', async () => {
    expectGuarantees(
      results,
      await runScenario(
        'table re-created + dropped from the publication, republished',
        services,
        async (ctx) => {
          await heldThenRepublished(ctx, async () => {
            await ctx.db.query(
              'BEGIN; ALTER TABLE outbox RENAME TO outbox_old; CREATE TABLE outbox (LIKE outbox_old INCLUDING ALL); COMMIT',
            )
            await ctx.db.query('DROP TABLE outbox_old')
          })
          await heldThenRepublished(ctx, () => ctx.db.query('ALTER PUBLICATION prisma_outbox DROP TABLE outbox'))
        },
        // The republish writes events again (same ids): duplicates even with exactly-once.
        { env: { OUTBOX_TABLE_CHECK_INTERVAL: '300ms', OUTBOX_DELIVERY: delivery }, rewrites: true },
      ),
    )
  })

  // A topic that does not exist is dead-lettered at-least-once; exactly-once waits until it exists
  // (nothing may be published out of its transaction), so that part is at-least-once only.
  const missing = delivery === 'at-least-once'
  test(`schema drift, oversize headers${missing ? ' and a topic that does not exist' : ''}: dead-lettered, delivery goes on`, async () => {
    expectGuarantees(
      results,
      await runScenario(
        `schema drift + oversize headers${missing ? ' + missing topic' : ''}`,
        services,
        async (ctx) => {
          await ctx.sleep(800)
          const missingTopic = `${ctx.prefix}.missing`
          if (missing) await ctx.insertExpected([{ aggregateId: 'mt', topic: missingTopic }], `${missingTopic}.dlq`)
          await ctx.sleep(800)
          await ctx.insertExpected(
            [{ aggregateId: 'hh', headers: { huge: 'h'.repeat(30_000) } }],
            `${ctx.prefix}.order.dlq`,
          )
          // The writers go on inserting jsonb into a text column (an assignment cast); one row's
          // headers are not JSON at all.
          await ctx.db.query('ALTER TABLE outbox ALTER COLUMN headers TYPE text')
          const [bad] = await ctx.db.query<{ id: string }>(
            `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
           VALUES (gen_random_uuid(), 'order', 'drift', 'order.created', '{}', 'not json') RETURNING id`,
          )
          const badId = bad?.id as string
          // Its columns' text is dead-lettered (it cannot be decoded), not a payload.
          ctx.history.expect(badId, {
            topic: `${ctx.prefix}.order`,
            key: 'drift',
            payloadJson: '{}',
            headers: {},
            type: 'order.created',
            aggregateType: 'order',
            deadLetterTopic: `${ctx.prefix}.order.dlq`,
            undecodable: true,
          })
          ctx.history.commit(badId, `poison-${badId}`, 1, 'dlq')
          await ctx.sleep(1000)
          if (missing) await ctx.insertExpected([{ aggregateId: 'mt', topic: missingTopic }], `${missingTopic}.dlq`)
          await ctx.measureRecovery()
        },
        { env: { OUTBOX_MISSING_TOPIC_TIMEOUT: '2s', OUTBOX_DELIVERY: delivery }, topics: ['missing.dlq'] },
      ),
    )
  })
})
