/**
 * The guarantees under faults (SPEC §5), Jepsen-style: writers record what they committed, faults
 * are injected, and a checker compares every topic (dead-letter topics included) with that
 * history. One scenario per fault, and one with all of them. FAULTS_SOAK=<rounds> lengthens the
 * combined scenario for soak runs.
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

const faults = {
  async killWorker(ctx: ScenarioContext) {
    await ctx.supervisor.killActive('SIGKILL')
    await ctx.measureRecovery()
  },
  async stopKafka(ctx: ScenarioContext, ms = 8000) {
    await ctx.kafka.stop()
    await ctx.sleep(ms)
    await ctx.kafka.start()
    await ctx.measureRecovery()
  },
  async restartPostgres(ctx: ScenarioContext) {
    await ctx.postgres.stop()
    await ctx.sleep(1000)
    await ctx.postgres.start()
    await ctx.measureRecovery()
  },
  async terminateWalsender(ctx: ScenarioContext) {
    await ctx.db.query(
      'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
      [ctx.slot],
    )
    await ctx.measureRecovery()
  },
  async sigterm(ctx: ScenarioContext) {
    const code = await ctx.supervisor.killActive('SIGTERM')
    expect(code).toBe(0)
    await ctx.measureRecovery()
  },
}

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

  test('Kafka stopped for longer than the producer timeouts, then restarted', async () => {
    expectGuarantees(
      results,
      await runScenario(
        `Kafka down 8 s (${client})`,
        services,
        async (ctx) => {
          await ctx.sleep(1500)
          await faults.stopKafka(ctx)
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

test('PostgreSQL restarted (fast shutdown) mid-stream, and the walsender terminated', async () => {
  expectGuarantees(
    results,
    await runScenario('PostgreSQL restart + walsender killed', services, async (ctx) => {
      await ctx.sleep(1500)
      await faults.restartPostgres(ctx)
      await ctx.sleep(1000)
      await faults.terminateWalsender(ctx)
      await ctx.sleep(1000)
    }),
  )
})

test('Kafka down for longer than wal_sender_timeout: the worker stays connected or resumes, and does not confirm', async () => {
  const admin = services.postgres.url
  const { adminQuery } = await import('../helpers/database.js')
  await adminQuery(admin, `ALTER SYSTEM SET wal_sender_timeout = '2s'`)
  await adminQuery(admin, 'SELECT pg_reload_conf()')
  try {
    expectGuarantees(
      results,
      await runScenario('Kafka down 4× wal_sender_timeout', services, async (ctx) => {
        await ctx.sleep(1500)
        await ctx.kafka.stop()
        const atOutage = await currentLsn(ctx.db)
        await ctx.sleep(8000)
        // Commits made during the outage are not confirmed: the slot is at or before the outage.
        expect(await confirmedLsn(ctx.db, ctx.slot)).toBeLessThanOrEqual(atOutage)
        await ctx.kafka.start()
        await ctx.measureRecovery()
      }),
    )
  } finally {
    await adminQuery(admin, 'ALTER SYSTEM RESET wal_sender_timeout')
    await adminQuery(admin, 'SELECT pg_reload_conf()')
  }
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
          await faults.killWorker(ctx)
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
            faults.terminateWalsender,
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
