import { randomBytes } from 'node:crypto'
import { appendFileSync, existsSync } from 'node:fs'
import { expect } from 'vitest'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import type { FaultProxy } from '../helpers/fault-proxy.js'
import { collectTopics, ensureTopics } from '../helpers/kafka.js'
import { type AppClient, createAppClient } from '../helpers/prisma.js'
import { type ProxiedKafka, proxyDatabaseUrl, startKafkaBehindProxy } from '../helpers/proxied-services.js'
import { currentLsn, insertEvents, waitForConfirmed } from '../helpers/worker.js'
import { startOwnServices } from '../services/index.js'
import { type LocalPostgres, startLocalPostgres } from '../services/local-postgres.js'
import { waitUntil } from '../services/ports.js'
import { check, History, type Verdict } from './history.js'
import { startLoad } from './load.js'
import { WorkerSupervisor } from './supervisor.js'

export interface FaultServices {
  postgres: LocalPostgres
  /** Clients reach it through `kafka.proxy`; test code uses `kafka.directBrokers`. */
  kafka: ProxiedKafka
}

/**
 * Services of the fault suite's own, since its scenarios stop and restart them. Kafka sits behind
 * a fault proxy and, as in production, does not create topics on its own: every topic a scenario
 * expects events on is created by it. With OUTBOX_TEST_SERVICES=containers (CI's container step)
 * they are containers instead, with no proxy in Kafka's path: only the scenarios that stop and
 * start services can run then, and a network fault says so.
 */
export async function startFaultServices(): Promise<FaultServices> {
  if (process.env.OUTBOX_TEST_SERVICES === 'containers') {
    const { postgres, kafka } = await startOwnServices('containers', (line) => console.log(`fault suite ${line}`))
    return { postgres, kafka: { ...kafka, proxy: noProxy() } }
  }
  const [postgres, kafka] = await Promise.all([
    startLocalPostgres(),
    startKafkaBehindProxy({ autoCreateTopics: false }),
  ])
  return { postgres, kafka }
}

export interface ScenarioContext {
  postgres: LocalPostgres
  kafka: ProxiedKafka
  /** Between the first worker (index 0) and PostgreSQL; the others connect directly. */
  pgProxy: FaultProxy
  db: TestDatabase
  /** The scenario's topic prefix (its main topic is `<prefix>.order`). */
  prefix: string
  supervisor: WorkerSupervisor
  history: History
  slot: string
  /** Commits a marker event and resolves once it is consumed: the time to recover after a fault. */
  measureRecovery(): Promise<void>
  /** Inserts events Kafka will refuse; they must reach the dead-letter topic. */
  insertPoison(): Promise<void>
  /**
   * Inserts events in one transaction and records them as committed, each to become its record
   * on its topic (or, with `deadLetterTopic`, on that dead-letter topic). Returns their ids.
   */
  insertExpected(events: InsertedEvent[], deadLetterTopic?: string): Promise<string[]>
  sleep(ms: number): Promise<void>
}

type InsertedEvent = Parameters<typeof insertEvents>[1][number]

/** Records what each event inserted by insertEvents must become, and that it committed. */
function recordInserted(
  history: History,
  template: (aggregateType: string) => string,
  events: InsertedEvent[],
  ids: string[],
  deadLetterTopic?: string,
): void {
  events.forEach((e, i) => {
    const id = ids[i] as string
    const aggregateType = e.aggregateType ?? 'order'
    history.expect(id, {
      topic: e.topic ?? template(aggregateType),
      key: e.aggregateId,
      payloadJson: e.payloadText ?? JSON.stringify(e.payload ?? {}),
      headers: Object.fromEntries(Object.entries(e.headers ?? {}).map(([k, v]) => [k, String(v)])),
      type: e.type ?? 'order.created',
      aggregateType,
      ...(deadLetterTopic ? { deadLetterTopic } : {}),
    })
    history.commit(id, deadLetterTopic ? `poison-${id}` : e.aggregateId, 1, deadLetterTopic ? 'dlq' : 'main')
  })
}

export interface ScenarioResult {
  scenario: string
  delivery: Delivery
  verdict: Verdict
  recoverMs: number
  /** The slot was confirmed past the last commit once the writers stopped. */
  confirmedAll: boolean
  peakRssMb: number
  unexpectedExits: number
  durationS: number
  /** The scenario wrote events again itself: duplicates are expected, even exactly-once. */
  rewrites: boolean
}

const MAX_MESSAGE_BYTES = 20_000

type Delivery = 'at-least-once' | 'exactly-once'
/**
 * FAULTS_DELIVERY=exactly-once: every scenario's workers deliver with Kafka transactions, and the
 * checker's consumer (kafkajs reads with read_committed by default) must see no duplicate at all.
 * A scenario may also ask for it itself (OUTBOX_DELIVERY in its env).
 */
const faultsDelivery: Delivery = process.env.FAULTS_DELIVERY === 'exactly-once' ? 'exactly-once' : 'at-least-once'

/**
 * One scenario: a fresh database, slot and topics; writers running while `faults` runs; then
 * the writers stop, the worker catches up, and the checker compares Kafka with the history.
 */
export async function runScenario(
  name: string,
  services: FaultServices,
  faults: (ctx: ScenarioContext) => Promise<void>,
  options: {
    workers?: number
    writers?: number
    env?: Record<string, string>
    topics?: string[]
    /** How the writers emit (FAULTS_MODE=message sets it for every scenario); markers stay rows. */
    mode?: 'table' | 'message'
    /**
     * The scenario writes events again itself (a republish: new transactions, same ids), so even
     * exactly-once delivery shows those twice.
     */
    rewrites?: boolean
  } = {},
): Promise<ScenarioResult> {
  const started = Date.now()
  const { postgres, kafka } = services
  const delivery = (options.env?.OUTBOX_DELIVERY as Delivery | undefined) ?? faultsDelivery
  const db = await createTestDatabase(postgres.url)
  const aggregates: number[] = []
  for (let i = 0; i < 40; i++) {
    aggregates.push(
      (await db.query<{ id: number }>(`INSERT INTO orders (customer, total) VALUES ('c', 0) RETURNING id`))[0]
        ?.id as number,
    )
  }
  const prefix = uniqueName('f')
  const slot = uniqueName('slot')
  const topic = `${prefix}.order`
  const badTopic = `${prefix} bad`
  const extraTopics = (options.topics ?? []).map((t) => `${prefix}.${t}`)
  const dlqTopics = [`${topic}.dlq`, `${prefix}_bad.dlq`, ...extraTopics.filter((t) => t.endsWith('.dlq'))]
  const mainTopics = [topic, ...extraTopics.filter((t) => !t.endsWith('.dlq'))]
  await ensureTopics(kafka.directBrokers, [...mainTopics, ...dlqTopics])
  const consumer = await collectTopics(kafka.directBrokers, [...mainTopics, ...dlqTopics])
  const history = new History()
  const template = (aggregateType: string) => `${prefix}.${aggregateType}`
  const pg = await proxyDatabaseUrl(db.url)
  const supervisor = new WorkerSupervisor(
    (index) => ({
      DATABASE_URL: index === 0 ? pg.url : db.url,
      KAFKA_BROKERS: kafka.brokers.join(','),
      OUTBOX_SLOT: slot,
      OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
      OUTBOX_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
      OUTBOX_STARTUP_TIMEOUT_MS: '120000',
      LOG_LEVEL: 'info',
      OUTBOX_DELIVERY: delivery,
      ...options.env,
    }),
    options.workers ?? 1,
  )
  // In message mode the markers stay rows: both kinds flow.
  const mode = options.mode ?? (process.env.FAULTS_MODE === 'message' ? 'message' : 'table')
  const prisma: AppClient = createAppClient(db.url, { mode })
  const recoveries: number[] = []
  let marker = 0
  try {
    await supervisor.start()
    await waitUntil('a worker streaming', async () => (await supervisor.active()) !== undefined, 30_000)
    const load = startLoad(prisma, history, { writers: options.writers ?? 6, aggregates, ratePerWriter: 40, topic })
    const ctx: ScenarioContext = {
      postgres,
      kafka,
      pgProxy: pg.proxy,
      db,
      prefix,
      supervisor,
      history,
      slot,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      async measureRecovery() {
        // Recovery is the relay's: from the fault healed until an event committed right then is
        // acknowledged by Kafka, which the slot's confirmed position proves. (The checker's
        // consumer group can take longer to rejoin after a broker restart; that is not ours.)
        const healedAt = Date.now()
        const aggregate = `marker-${marker++}`
        const events = [{ aggregateId: aggregate, payload: { marker: aggregate } }]
        let ids: string[] = []
        let committedLsn = 0n
        await waitUntil(
          'the marker to commit',
          async () => {
            ids = await insertEvents(db, events)
            return true
          },
          60_000,
          200,
        )
        await waitUntil(
          'the current LSN',
          async () => {
            committedLsn = await currentLsn(db)
            return true
          },
          60_000,
          200,
        )
        recordInserted(history, template, events, ids)
        await waitForConfirmed(db, slot, committedLsn, 120_000)
        recoveries.push(Date.now() - healedAt)
      },
      async insertPoison() {
        const oversize = [
          { aggregateId: 'poison', payloadText: JSON.stringify({ blob: 'x'.repeat(MAX_MESSAGE_BYTES * 2) }) },
        ]
        const wrongTopic = [{ aggregateId: 'poison', payload: { bad: 'topic' }, topic: badTopic }]
        const ids = await insertEvents(db, [...oversize, ...wrongTopic])
        recordInserted(history, template, oversize, ids.slice(0, 1), `${topic}.dlq`)
        recordInserted(history, template, wrongTopic, ids.slice(1), `${prefix}_bad.dlq`)
      },
      async insertExpected(events, deadLetterTopic) {
        const ids = await insertEvents(db, events)
        recordInserted(history, template, events, ids, deadLetterTopic)
        return ids
      },
    }
    await faults(ctx)
    await load.stop()
    // Everything committed must now arrive and be confirmed, with whatever workers are left.
    const finalLsn = await currentLsn(db)
    await waitUntil(
      'every committed event delivered',
      async () => {
        const seen = new Set(consumer.messages.map((m) => m.headers.id))
        return [...history.committed.keys()].every((id) => seen.has(id))
      },
      180_000,
      200,
    ).catch(() => {
      // The verdict reports what is missing; the workers' own words say why.
      process.stderr.write(`${name}: not every committed event arrived in 180 s\n${supervisor.recentOutput(60)}\n`)
    })
    // Kafka having every event is not enough: the slot must be confirmed past them too, or a worker
    // stalled for minutes could pass on the fresh consumer's re-read below.
    const confirmedAll = await waitForConfirmed(db, slot, finalLsn, 60_000).then(
      () => true,
      () => false,
    )
    if (!confirmedAll)
      process.stderr.write(
        `${name}: the slot was not confirmed past the last commit within 60 s\n${supervisor.recentOutput(60)}\n`,
      )
    await history.normalize((sql, params) => db.query<{ v: string }>(sql, params))
    // Whatever Kafka holds now, read to the end of every partition (not a fixed wait).
    await consumer.readToEnd(60_000).catch((error: unknown) => {
      process.stderr.write(`${name}: ${(error as Error).message}\n`)
    })
    let verdict = check(history, consumer.messages, (t) => dlqTopics.includes(t))
    if (verdict.lost > 0) {
      // Lost is the verdict that matters most, so it is never the checker's own failure: a second
      // consumer, new, reads every topic from the beginning. Only what it does not find either
      // is lost; when it finds more, the first checker's trouble is printed, not hidden.
      const reread = await collectTopics(kafka.directBrokers, [...mainTopics, ...dlqTopics])
      const wanted = [...history.committed.keys()]
      await waitUntil(
        'a fresh consumer to read every committed event',
        async () => {
          const seen = new Set(reread.messages.map((m) => m.headers.id))
          return wanted.every((id) => seen.has(id))
        },
        30_000,
        200,
      ).catch(() => {})
      await reread.stop()
      const second = check(history, reread.messages, (t) => dlqTopics.includes(t))
      process.stderr.write(
        `${name}: the checker's consumer saw ${consumer.messages.length} records (${verdict.lost} committed events missing); a fresh consumer read ${reread.messages.length} (${second.lost} missing)\n`,
      )
      if (second.lost < verdict.lost) verdict = second
    }
    return {
      scenario: delivery === 'exactly-once' && !name.includes('exactly-once') ? `${name} (exactly-once)` : name,
      delivery,
      verdict,
      recoverMs: recoveries.length > 0 ? Math.max(...recoveries) : 0,
      confirmedAll,
      peakRssMb: Math.round(supervisor.peakRssBytes / 1024 / 1024),
      unexpectedExits: supervisor.unexpectedExits,
      durationS: Math.round((Date.now() - started) / 1000),
      rewrites: options.rewrites ?? false,
    }
  } finally {
    // Healed first: a worker must be able to finish its work and exit.
    pg.proxy.restore()
    kafka.proxy.restore()
    kafka.proxy.latency(0)
    await supervisor.stop()
    await pg.proxy.close()
    await consumer.stop()
    await prisma.$disconnect()
    await db.dispose()
  }
}

export function formatTable(results: ScenarioResult[]): string {
  const header =
    '| scenario | committed | rolled back | delivered | lost | duplicates | out of order | stale copies | max recovery | peak RSS | time |'
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${r.verdict.committed} | ${r.verdict.rolledBack} | ${r.verdict.delivered} | ${r.verdict.lost} | ${r.verdict.duplicates} | ${r.verdict.outOfOrder} | ${r.verdict.staleRedeliveries} | ${(r.recoverMs / 1000).toFixed(1)} s | ${r.peakRssMb} MB | ${r.durationS} s |`,
  )
  return [header, rule, ...rows].join('\n')
}

export function randomBetween(min: number, max: number): number {
  return min + (randomBytes(2).readUInt16BE() / 65535) * (max - min)
}

/**
 * Records a scenario's result and asserts the guarantees under faults on it: every committed event
 * delivered, none rolled back delivered, each record exactly the event it carries, order per
 * aggregate kept, no stale copy, the slot confirmed past the last commit, no crash, bounded memory;
 * with exactly-once delivery, no duplicate either (unless the scenario writes events again itself).
 */
export function expectGuarantees(results: ScenarioResult[], result: ScenarioResult): void {
  results.push(result)
  const v = result.verdict
  expect(v.committed).toBeGreaterThan(100)
  expect(v.rolledBack).toBeGreaterThan(0)
  expect(v.lostIds).toEqual([])
  expect(v.lost).toBe(0)
  expect(v.phantoms).toBe(0)
  expect(v.outOfOrder).toBe(0)
  expect(v.staleRedeliveries).toBe(0)
  expect(v.inconsistentDuplicates).toBe(0)
  if (result.delivery === 'exactly-once' && !result.rewrites) expect(v.duplicates).toBe(0)
  expect(v.misrouted).toBe(0)
  expect(v.mismatches).toEqual([])
  expect(v.mismatched).toBe(0)
  expect(result.unexpectedExits).toBe(0)
  expect(result.confirmedAll).toBe(true)
  expect(result.peakRssMb).toBeLessThan(300)
}

/** Prints a file's results as a table, and appends its rows to FAULTS_RESULTS when set. */
export function reportResults(title: string, results: ScenarioResult[]): void {
  if (results.length === 0) return
  const table = formatTable(results)
  console.log(`\nFault suite results: ${title}\n\n${table}\n`)
  const file = process.env.FAULTS_RESULTS
  if (!file) return
  const lines = table.split('\n')
  appendFileSync(file, `${(existsSync(file) ? lines.slice(2) : lines).join('\n')}\n`)
}

/** Stands in for Kafka's proxy with containers: healing is a no-op, a fault cannot be injected. */
function noProxy(): FaultProxy {
  const cannot = () => {
    throw new Error("network faults need the local services (OUTBOX_TEST_SERVICES=local): no proxy is in Kafka's path")
  }
  return {
    port: 0,
    address: '',
    latency: (ms: number) => {
      if (ms !== 0) cannot()
    },
    resetAll: cannot,
    blackhole: cannot,
    refuse: cannot,
    restore: () => {},
    links: () => [],
    stats: () => ({
      accepted: 0,
      open: 0,
      refused: 0,
      reset: 0,
      bytesFromClient: 0,
      bytesToUpstream: 0,
      bytesFromUpstream: 0,
      bytesToClient: 0,
    }),
    close: async () => {},
  }
}
