/**
 * The fault suite's scenarios with --delivery exactly-once: besides every guarantee the checker
 * holds at-least-once delivery to, a read_committed consumer sees each event exactly once
 * (expectGuarantees checks duplicates = 0 in this mode). The whole suite runs this way with
 * FAULTS_DELIVERY=exactly-once; these run always, as do the exactly-once cases of chaos.test.ts
 * and network-and-setup.test.ts.
 */
import { afterAll, beforeAll, describe, test } from 'vitest'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import {
  expectGuarantees,
  type FaultServices,
  randomBetween,
  reportResults,
  runScenario,
  type ScenarioResult,
  startFaultServices,
} from './environment.js'
import {
  killForTakeover,
  killWorker,
  partitionStreamingWorker,
  restartPostgres,
  stopKafka,
  terminateWalsender,
  withWalSenderTimeout,
} from './faults.js'

let services: FaultServices
const results: ScenarioResult[] = []

beforeAll(async () => {
  services = await startFaultServices()
})
afterAll(async () => {
  reportResults('exactly-once', results)
  await services?.postgres.dispose()
  await services?.kafka.dispose()
})

// Each scenario with each client's transactions.
describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  const env = { OUTBOX_DELIVERY: 'exactly-once', OUTBOX_KAFKA_CLIENT: client }

  test('kill -9 of the worker at random moments, 10 times: no duplicate', async () => {
    const result = await runScenario(
      `kill -9 ×10 (${client})`,
      services,
      async (ctx) => {
        for (let i = 0; i < 10; i++) {
          await ctx.sleep(randomBetween(200, 1500))
          await killWorker(ctx)
        }
      },
      { env },
    )
    expectGuarantees(results, result)
  }, 240_000)

  test('PostgreSQL restarted mid-stream twice, then the walsender terminated (replays from the confirmed position): no duplicate', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `PostgreSQL restart ×2 + walsender killed (${client})`,
        services,
        async (ctx) => {
          for (let i = 0; i < 2; i++) {
            await ctx.sleep(1500)
            await restartPostgres(ctx)
          }
          await ctx.sleep(1000)
          await terminateWalsender(ctx)
          await ctx.measureRecovery()
        },
        { env },
      ),
    )
  }, 240_000)

  test('Kafka stopped for 8 s and restarted, then its connections reset and partitioned: no duplicate', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `Kafka restart + resets + partition (${client})`,
        services,
        async (ctx) => {
          await ctx.sleep(1500)
          await stopKafka(ctx, 8000)
          for (let i = 0; i < 3; i++) {
            await ctx.sleep(randomBetween(300, 1000))
            ctx.kafka.proxy.resetAll()
          }
          ctx.kafka.proxy.blackhole()
          await ctx.sleep(4000)
          ctx.kafka.proxy.restore()
          await ctx.measureRecovery()
        },
        { env },
      ),
    )
  }, 240_000)

  test('the streaming worker killed while a standby waits, 3 times: no duplicate', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `standby takeover ×3 (${client})`,
        services,
        async (ctx) => {
          for (let i = 0; i < 3; i++) {
            await ctx.sleep(randomBetween(500, 1500))
            await killForTakeover(ctx)
          }
        },
        { workers: 2, env },
      ),
    )
  }, 240_000)

  test('zombie: the streaming worker cut off from PostgreSQL while the standby takes over; healed, nothing it held arrives twice (its producer is fenced: see test/integration/exactly-once.test.ts)', async () => {
    // Cut off, its Kafka transaction cannot finish either: it is caught holding one open.
    const result = await withWalSenderTimeout(services.postgres.url, '3s', () =>
      runScenario(`zombie (PostgreSQL partition) (${client})`, services, partitionStreamingWorker, {
        workers: 2,
        env,
      }),
    )
    expectGuarantees(results, result)
  }, 240_000)

  test('poison mixed in: dead-lettered inside the transactions, nothing twice', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `poison mixed in (${client})`,
        services,
        async (ctx) => {
          for (let i = 0; i < 3; i++) {
            await ctx.sleep(500)
            await ctx.insertPoison()
          }
          await ctx.measureRecovery()
        },
        { env },
      ),
    )
  }, 240_000)
})
