/**
 * The guarantees under faults, Jepsen-style: writers record what they committed, faults are
 * injected, and a checker compares every record of every topic (dead-letter topics included) with
 * that history: nothing committed lost, nothing rolled back delivered, each record exactly its
 * event, order kept per aggregate. One scenario per fault, and one with all of them.
 * FAULTS_SOAK=<rounds> lengthens the combined scenario for soak runs.
 */

import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { confirmedLsn, currentLsn } from '../helpers/worker.js'
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
import {
  killForTakeover,
  killWorker,
  restartPostgres,
  sigterm,
  stopKafka,
  terminateWalsender,
  withWalSenderTimeout,
} from './faults.js'

let services: FaultServices
const results: ScenarioResult[] = []
const soakRounds = Number(process.env.FAULTS_SOAK ?? 0)

beforeAll(async () => {
  services = await startFaultServices()
})
afterAll(async () => {
  reportResults('process faults', results)
  await services?.postgres.dispose()
  await services?.kafka.dispose()
})

const faults = { killWorker, killForTakeover, stopKafka, restartPostgres, terminateWalsender, sigterm }

// The scenarios that exercise the Kafka client run once per supported client.
describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  const options = { env: { OUTBOX_KAFKA_CLIENT: client } }

  test('kill -9 of the worker at random moments, 10 times', async () => {
    const result = await runScenario(
      `kill -9 ×10 (${client})`,
      services,
      async (ctx) => {
        for (let i = 0; i < 10; i++) {
          await ctx.sleep(randomBetween(200, 1500))
          await faults.killWorker(ctx)
        }
      },
      options,
    )
    expectGuarantees(results, result)
  }, 240_000)

  test('Kafka stopped for 8 s, then restarted', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `Kafka down 8 s (${client})`,
        services,
        async (ctx) => {
          await ctx.sleep(1500)
          await faults.stopKafka(ctx, 8000)
          await ctx.sleep(1000)
        },
        options,
      ),
    )
  })

  test('poison events mixed in: oversize payloads and a topic Kafka rejects go to the dead-letter topics', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `poison mixed in (${client})`,
        services,
        async (ctx) => {
          for (let i = 0; i < 5; i++) {
            await ctx.sleep(500)
            await ctx.insertPoison()
          }
          await ctx.measureRecovery()
        },
        options,
      ),
    )
  })

  test('SIGTERM under load, 3 times: each exit is clean (0)', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `SIGTERM ×3 (${client})`,
        services,
        async (ctx) => {
          for (let i = 0; i < 3; i++) {
            await ctx.sleep(randomBetween(500, 1500))
            await faults.sigterm(ctx)
          }
        },
        options,
      ),
    )
  })
})

// Both ways events reach the WAL (table rows, logical messages): a restart replays either from
// the confirmed position through the decoder.
test.each([
  'table',
  'message',
] as const)('PostgreSQL restarted (fast shutdown) mid-stream, and the walsender terminated (%s mode)', async (mode) => {
  expectGuarantees(
    results,
    await runScenario(
      `PostgreSQL restart + walsender killed${mode === 'message' ? ' (message mode)' : ''}`,
      services,
      async (ctx) => {
        await ctx.sleep(1500)
        await faults.restartPostgres(ctx)
        await ctx.sleep(1000)
        await faults.terminateWalsender(ctx)
        await ctx.measureRecovery()
        await ctx.sleep(1000)
      },
      { mode },
    ),
  )
})

// The server ends the idle connection while Kafka is down: a server-side fault, so with both
// delivery modes.
test.each([
  'at-least-once',
  'exactly-once',
])('Kafka down for longer than wal_sender_timeout: the worker stays connected or resumes, and does not confirm (%s)', async (delivery) => {
  const result = await withWalSenderTimeout(services.postgres.url, '2s', () =>
    runScenario(
      'Kafka down 4× wal_sender_timeout',
      services,
      async (ctx) => {
        await ctx.sleep(1500)
        await ctx.kafka.stop()
        const atOutage = await currentLsn(ctx.db)
        await ctx.sleep(8000)
        // Commits made during the outage are not confirmed: the slot is at or before the outage.
        expect(await confirmedLsn(ctx.db, ctx.slot)).toBeLessThanOrEqual(atOutage)
        await ctx.kafka.start()
        await ctx.measureRecovery()
      },
      { env: { OUTBOX_DELIVERY: delivery } },
    ),
  )
  expectGuarantees(results, result)
})

test('the streaming worker killed while a standby waits: the standby takes over', async () => {
  expectGuarantees(
    results,
    await runScenario(
      'standby takeover ×3',
      services,
      async (ctx) => {
        for (let i = 0; i < 3; i++) {
          await ctx.sleep(randomBetween(500, 1500))
          await faults.killForTakeover(ctx)
        }
      },
      { workers: 2 },
    ),
  )
})

test(
  'combined: every fault, in random order',
  async () => {
    const rounds = Math.max(1, soakRounds)
    expectGuarantees(
      results,
      await runScenario(
        soakRounds > 0 ? `combined (soak, ${rounds} rounds)` : 'combined',
        services,
        async (ctx) => {
          const all = [
            faults.killWorker,
            (c: ScenarioContext) => faults.stopKafka(c, 4000),
            faults.restartPostgres,
            async (c: ScenarioContext) => {
              await faults.terminateWalsender(c)
              await c.measureRecovery()
            },
            faults.sigterm,
            ctx.insertPoison,
            (c: ScenarioContext) => {
              c.kafka.proxy.resetAll()
              return c.measureRecovery()
            },
          ]
          for (let round = 0; round < rounds; round++) {
            for (const fault of [...all].sort(() => Math.random() - 0.5)) {
              await ctx.sleep(randomBetween(300, 1200))
              await fault(ctx)
            }
          }
        },
        { workers: 2 },
      ),
    )
  },
  120_000 + soakRounds * 90_000,
)
