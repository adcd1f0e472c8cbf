/**
 * `npm run bench` (`-- --quick` for a short run): every figure of SPEC §7 measured side by side
 * in one run on the same services, written to test/bench/results.json and printed as a table.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase, ordersMigrationSql, outboxMigrationSql, type TestDatabase } from '../helpers/database.js'
import { ensureTopics } from '../helpers/kafka.js'
import { currentLsn, spawnWorker, waitForConfirmed } from '../helpers/worker.js'
import { startServices } from '../services/index.js'
import { fillOutbox } from './fill.js'
import { type LatencyResult, measureLatency } from './latency.js'
import { pgRecvlogicalSeconds, producerPerformance } from './limits.js'
import { POLLING_SCHEMA, startPollingRelay } from './polling-relay.js'
import { measureWriteSide } from './write-side.js'

const quick = process.argv.includes('--quick')
const N = quick ? 20_000 : 200_000
const RSS_N = quick ? 100_000 : 1_000_000
const LATENCY_SECONDS = quick ? 5 : 30
const RATES = [100, 1000, 5000]
const WRITE_RUNS = quick ? 200 : 1000
const root = join(import.meta.dirname, '../..')
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

const lsnText = (lsn: bigint) =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`

async function peakRssMb(pid: number | undefined): Promise<number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
}

/** The worker (built bin) drains a pre-filled slot; seconds from streaming to confirmed past the end. */
async function drainWithWorker(db: TestDatabase, brokers: string[], slot: string, endLsn: bigint, topic: string) {
  const worker = await spawnWorker(
    {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: brokers.join(','),
      OUTBOX_SLOT: slot,
      OUTBOX_TOPIC: topic,
      LOG_LEVEL: 'info',
      HEALTH_PORT: '0',
    },
    [],
    { built: true },
  )
  await worker.waitForLog(/"msg":"streaming"/)
  const started = performance.now()
  await waitForConfirmed(db, slot, endLsn, 600_000)
  const seconds = (performance.now() - started) / 1000
  const rss = await peakRssMb(worker.child.pid)
  await worker.kill('SIGTERM')
  return { seconds, rssMb: rss }
}

async function relayThroughput(url: string, brokers: string[], perTransaction: number) {
  const db = await createTestDatabase(url)
  try {
    await db.query(`SELECT pg_create_logical_replication_slot('bench_relay', 'pgoutput')`)
    await db.query(`SELECT pg_create_logical_replication_slot('bench_decode', 'pgoutput')`)
    log(`filling ${N} events in transactions of ${perTransaction}`)
    await fillOutbox(db, N, perTransaction)
    const endLsn = await currentLsn(db)
    log('decode limit: pg_recvlogical')
    const decodeS = await pgRecvlogicalSeconds(db.url, 'bench_decode', lsnText(endLsn))
    log('relay: outbox-worker')
    const relay = await drainWithWorker(db, brokers, 'bench_relay', endLsn, `bench.tx${perTransaction}.{aggregateType}`)
    return { perTransaction, relayPerS: N / relay.seconds, decodePerS: N / decodeS, relayRssMb: relay.rssMb }
  } finally {
    await db.dispose()
  }
}

async function pollingThroughput(url: string, brokers: string[]) {
  const db = await createTestDatabase(url)
  try {
    await db.query(POLLING_SCHEMA)
    log(`polling baseline: filling ${N} events`)
    await fillOutbox(db, N, 10, 'published_at')
    const relay = await startPollingRelay(db.pool, brokers, 'bench.polling')
    const started = performance.now()
    while (relay.published < N) await new Promise((r) => setTimeout(r, 50))
    const seconds = (performance.now() - started) / 1000
    await relay.stop()
    return N / seconds
  } finally {
    await db.dispose()
  }
}

async function latencies(url: string, brokers: string[], relay: 'worker' | 'polling'): Promise<LatencyResult[]> {
  const db = await createTestDatabase(url)
  const topicPrefix = `bench.latency.${relay}`
  let stop: () => Promise<unknown>
  if (relay === 'worker') {
    const worker = await spawnWorker(
      {
        DATABASE_URL: db.url,
        KAFKA_BROKERS: brokers.join(','),
        OUTBOX_SLOT: 'bench_latency',
        OUTBOX_TOPIC: `${topicPrefix}.{aggregateType}`,
        LOG_LEVEL: 'info',
        HEALTH_PORT: '0',
      },
      [],
      { built: true },
    )
    await worker.waitForLog(/"msg":"streaming"/)
    stop = () => worker.kill('SIGTERM')
  } else {
    await db.query(POLLING_SCHEMA)
    const polling = await startPollingRelay(db.pool, brokers, topicPrefix)
    stop = () => polling.stop()
  }
  try {
    const results: LatencyResult[] = []
    for (const rate of RATES) {
      log(`latency, ${relay}: ${rate} events/s for ${LATENCY_SECONDS} s`)
      results.push(await measureLatency(db, brokers, topicPrefix, rate, LATENCY_SECONDS))
    }
    return results
  } finally {
    await stop()
    await db.dispose()
  }
}

async function jsonVersusJsonb(url: string) {
  const out: Record<string, Awaited<ReturnType<typeof measureWriteSide>>> = {}
  for (const type of ['jsonb', 'json'] as const) {
    const db = await createTestDatabase(url, { migrate: false })
    await db.query(outboxMigrationSql.replaceAll('JSONB', type.toUpperCase()))
    await db.query(ordersMigrationSql)
    log(`write side, payload column ${type}`)
    out[type] = await measureWriteSide(db.url, WRITE_RUNS)
    await db.dispose()
  }
  return out
}

async function peakRssDraining(url: string, brokers: string[]) {
  const db = await createTestDatabase(url)
  try {
    await db.query(`SELECT pg_create_logical_replication_slot('bench_rss', 'pgoutput')`)
    log(`peak RSS: filling ${RSS_N} events`)
    await fillOutbox(db, RSS_N, 10)
    const endLsn = await currentLsn(db)
    log('peak RSS: draining')
    const drained = await drainWithWorker(db, brokers, 'bench_rss', endLsn, 'bench.rss.{aggregateType}')
    return { events: RSS_N, seconds: drained.seconds, peakRssMb: drained.rssMb, perS: RSS_N / drained.seconds }
  } finally {
    await db.dispose()
  }
}

const f0 = (n: number) => Math.round(n).toLocaleString('en-US')
const f2 = (n: number) => n.toFixed(2)

async function main() {
  const started = Date.now()
  log('building the worker (dist/)')
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const services = await startServices(log)
  try {
    const { databaseUrl: url, kafkaBrokers: brokers } = services
    const throughput = [await relayThroughput(url, brokers, 10), await relayThroughput(url, brokers, 1)]
    log(`produce limit: ProducerPerformance, ${N} records`)
    await ensureTopics(brokers, ['bench.produce'])
    const producePerS = producerPerformance(brokers, 'bench.produce', N, 300)
    const pollingPerS = await pollingThroughput(url, brokers)
    const workerLatency = await latencies(url, brokers, 'worker')
    const pollingLatency = await latencies(url, brokers, 'polling')
    const writeSide = await jsonVersusJsonb(url)
    const rss = await peakRssDraining(url, brokers)

    const tx10 = throughput[0] as (typeof throughput)[number]
    const limit = Math.min(tx10.decodePerS, producePerS)
    const at1000 = (list: LatencyResult[]) => list.find((l) => l.rate === 1000) as LatencyResult
    const results = {
      mode: quick ? 'quick' : 'full',
      when: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
      },
      versions: { postgres: services.postgresVersion, kafka: services.kafkaVersion, services: services.source },
      events: N,
      throughput,
      producePerS,
      pollingPerS,
      latency: { worker: workerLatency, polling: pollingLatency },
      writeSide,
      rss,
      ratios: {
        relayVsLimit: tx10.relayPerS / limit,
        relayVsDecode: tx10.relayPerS / tx10.decodePerS,
        relayVsProduce: tx10.relayPerS / producePerS,
        relayVsPolling: tx10.relayPerS / pollingPerS,
        p99VsPollingAt1000: at1000(workerLatency).p99 / at1000(pollingLatency).p99,
        emitCost: writeSide.jsonb?.emitRatio,
      },
      durationS: Math.round((Date.now() - started) / 1000),
    }
    writeFileSync(join(root, 'test/bench/results.json'), `${JSON.stringify(results, null, 2)}\n`)

    const lat = (l: LatencyResult) => `${f0(l.p50)} / ${f0(l.p95)} / ${f0(l.p99)} ms`
    const table = [
      `Benchmarks (${results.mode}: ${f0(N)} events; ${results.machine.cpus} cores, ${results.machine.memoryGiB} GiB; PostgreSQL ${services.postgresVersion.split(' ')[0]}, Kafka ${services.kafkaVersion}; ${results.durationS} s)`,
      '',
      '| figure | value | target |',
      '|---|---:|---|',
      ...throughput.map(
        (t) => `| relay throughput, transactions of ${t.perTransaction} | ${f0(t.relayPerS)} events/s | |`,
      ),
      ...throughput.map(
        (t) =>
          `| decode limit (pg_recvlogical), transactions of ${t.perTransaction} | ${f0(t.decodePerS)} events/s | |`,
      ),
      `| produce limit (ProducerPerformance, acks=all) | ${f0(producePerS)} records/s | |`,
      `| relay / min(decode, produce) | ${f2(results.ratios.relayVsLimit)} | ≥ 0.5 |`,
      `| polling relay throughput | ${f0(pollingPerS)} events/s | |`,
      `| relay / polling | ${f2(results.ratios.relayVsPolling)} | ≥ 3 |`,
      ...workerLatency.map(
        (l) =>
          `| commit→consume p50/p95/p99, relay, ${f0(l.rate)}/s | ${lat(l)} | ${l.rate === 1000 ? 'p99 ≤ 50 ms' : ''} |`,
      ),
      ...pollingLatency.map((l) => `| commit→consume p50/p95/p99, polling, ${f0(l.rate)}/s | ${lat(l)} | |`),
      `| relay p99 / polling p99 at 1,000/s | ${f2(results.ratios.p99VsPollingAt1000)} | ≤ 0.2 |`,
      `| transaction: order / order + emit (median, jsonb) | ${f2(writeSide.jsonb?.txMs ?? 0)} / ${f2(writeSide.jsonb?.txEmitMs ?? 0)} ms (×${f2(writeSide.jsonb?.emitRatio ?? 0)}) | ≤ ×1.35 |`,
      `| reference: order / two orders (one more statement, median) | ${f2(writeSide.jsonb?.txMs ?? 0)} / ${f2(writeSide.jsonb?.txTwoOrdersMs ?? 0)} ms (×${f2(writeSide.jsonb?.twoOrdersRatio ?? 0)}) | |`,
      `| same with a json payload column | ${f2(writeSide.json?.txMs ?? 0)} / ${f2(writeSide.json?.txEmitMs ?? 0)} ms (×${f2(writeSide.json?.emitRatio ?? 0)}) | |`,
      `| emitMany(100) / 100 × emit (median) | ${f2(writeSide.jsonb?.emitMany100Ms ?? 0)} / ${f2(writeSide.jsonb?.emit100Ms ?? 0)} ms | |`,
      `| worker peak RSS draining ${f0(rss.events)} events | ${rss.peakRssMb} MB (${f0(rss.perS)} events/s) | ≤ 250 MB |`,
    ].join('\n')
    process.stdout.write(`\n${table}\n`)
  } finally {
    await services.dispose()
  }
}

await main()
