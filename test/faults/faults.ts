import { Kafka, logLevel } from 'kafkajs'
import { expect } from 'vitest'
import { adminQuery } from '../helpers/database.js'
import type { WorkerProcess } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'
import type { ScenarioContext } from './environment.js'

/**
 * The faults the scenarios inject. Each one checks that it happened (the worker killed was the one
 * holding the slot, the walsender terminated was the slot's and a new one replaced it, the broker
 * refused connections while stopped): a fault that silently became a no-op would let its scenario
 * pass on anything.
 */

/** kill -9 of the worker holding the slot, then the relay recovers. */
export async function killWorker(ctx: ScenarioContext): Promise<void> {
  await ctx.supervisor.killActive('SIGKILL')
  await ctx.measureRecovery()
}

/**
 * kill -9 of the worker holding the slot while another stands by: the standby must be the one to
 * take the slot, not the killed worker's replacement (the supervisor starts it 200 ms after the
 * exit, as an orchestrator would).
 */
export async function killForTakeover(ctx: ScenarioContext): Promise<void> {
  let standbys: WorkerProcess[] = []
  await waitUntil(
    'a worker streaming and another standing by',
    async () => {
      const roles = [...(await ctx.supervisor.roles())]
      standbys = roles.filter(([, role]) => role === 'standby').map(([worker]) => worker)
      return standbys.length > 0 && roles.some(([, role]) => role === 'active')
    },
    60_000,
    100,
  )
  const { worker: killed } = await ctx.supervisor.killActive('SIGKILL')
  let next: WorkerProcess | undefined
  await waitUntil(
    'a worker streaming after the kill',
    async () => {
      next = await ctx.supervisor.active()
      return next !== undefined
    },
    30_000,
    50,
  )
  const took = next === killed ? 'the killed worker' : standbys.includes(next as WorkerProcess) ? 'standby' : 'new'
  expect(took, 'which worker took the slot after the kill').toBe('standby')
  await ctx.measureRecovery()
}

/** The broker stopped for `ms` (unreachable all along, checked at both ends), then started again. */
export async function stopKafka(ctx: ScenarioContext, ms: number): Promise<void> {
  await ctx.kafka.stop()
  const stoppedAt = Date.now()
  expect(await kafkaAnswers(ctx.kafka.directBrokers), 'Kafka answers right after its stop').toBe(false)
  await ctx.sleep(ms - (Date.now() - stoppedAt))
  expect(await kafkaAnswers(ctx.kafka.directBrokers), 'Kafka answers before its restart').toBe(false)
  await ctx.kafka.start()
  await ctx.measureRecovery()
}

/** PostgreSQL restarted (fast shutdown); the server that answers afterwards is a new one. */
export async function restartPostgres(ctx: ScenarioContext): Promise<void> {
  const startedAt = async () =>
    (await ctx.db.query<{ at: string }>('SELECT pg_postmaster_start_time()::text AS at'))[0]?.at
  const before = await startedAt()
  await ctx.postgres.stop()
  await ctx.sleep(1000)
  await ctx.postgres.start()
  await ctx.measureRecovery()
  expect(await startedAt(), 'the server restarted').not.toBe(before)
}

/** The slot's walsender terminated; resolves once a new walsender holds the slot (a reconnect). */
export async function terminateWalsender(ctx: ScenarioContext): Promise<void> {
  let terminated: number | undefined
  await waitUntil(
    "the slot's walsender terminated",
    async () => {
      const [row] = await ctx.db.query<{ pid: number; terminated: boolean }>(
        `SELECT s.active_pid AS pid, pg_terminate_backend(s.active_pid) AS terminated
           FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
          WHERE s.slot_name = $1`,
        [ctx.slot],
      )
      if (row?.terminated) terminated = row.pid
      return terminated !== undefined
    },
    30_000,
    100,
  )
  await waitUntil(
    'a new walsender on the slot (the worker reconnected)',
    async () => {
      const [row] = await ctx.db.query<{ pid: number | null }>(
        'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1',
        [ctx.slot],
      )
      return row?.pid != null && row.pid !== terminated
    },
    20_000,
    100,
  )
}

/** SIGTERM to the worker holding the slot: it must exit 0; then the relay recovers. */
export async function sigterm(ctx: ScenarioContext): Promise<void> {
  const { code } = await ctx.supervisor.killActive('SIGTERM')
  expect(code).toBe(0)
  await ctx.measureRecovery()
}

/** Whether a Kafka client can reach the brokers now (one attempt, no retries). */
async function kafkaAnswers(brokers: string[]): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'prisma-outbox-fault-check',
    brokers,
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  }).admin()
  try {
    await admin.connect()
    await admin.describeCluster()
    return true
  } catch {
    return false
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/**
 * The streaming worker cut off from PostgreSQL while a standby waits: its connection through the
 * proxy goes silent (half-open) until the standby streams the slot; then the partition heals and
 * the zombie's connection comes back, with what it held. Worker 0, the one behind the proxy, is
 * made the streaming one first: the partition must cut off the worker holding the slot.
 */
export async function partitionStreamingWorker(ctx: ScenarioContext): Promise<void> {
  await waitUntil('a worker streaming', async () => (await ctx.supervisor.active()) !== undefined, 30_000)
  if ((await ctx.supervisor.active()) !== ctx.supervisor.worker(0)) await ctx.supervisor.killActive('SIGKILL')
  await waitUntil('worker 0 streaming', async () => (await ctx.supervisor.worker(0)?.active()) === true, 30_000)
  await ctx.sleep(1000)
  ctx.pgProxy.blackhole()
  await waitUntil(
    'the standby streaming',
    async () =>
      (await ctx.supervisor
        .worker(1)
        ?.active()
        .catch(() => false)) === true,
    30_000,
  )
  await ctx.sleep(2000)
  ctx.pgProxy.restore()
  await ctx.measureRecovery()
}

/**
 * Runs `run` with the server's wal_sender_timeout set to `value` (the server then ends a silent
 * replication connection within seconds), and resets it afterwards.
 */
export async function withWalSenderTimeout<T>(adminUrl: string, value: string, run: () => Promise<T>): Promise<T> {
  await adminQuery(adminUrl, `ALTER SYSTEM SET wal_sender_timeout = '${value}'`)
  await adminQuery(adminUrl, 'SELECT pg_reload_conf()')
  try {
    return await run()
  } finally {
    await adminQuery(adminUrl, 'ALTER SYSTEM RESET wal_sender_timeout')
    await adminQuery(adminUrl, 'SELECT pg_reload_conf()')
  }
}
