/**
 * `npm run bench` (`-- --quick` for a short run): every performance figure (write-side overhead, drain throughput per
 * Kafka client, end-to-end latency, limits) measured side by side in one run on the same services, written to test/bench/results.json and printed as a table.
 * `-- --only=write-side` or `-- --only=drain` measures that part alone and prints it (results.json
 * is left as it is). `-- --only=relay [--events=N] [--runs=R] [--uuid-keys]` drains N events R
 * times with the worker with each Kafka client (events/s, CPU per event, peak RSS, decode limit),
 * then measures the produce limit (`--uuid-keys`: UUID aggregate ids, the keys, instead of
 * '0'–'999'); `-- --only=inbox [--events=N]` compares events/s consumed through the inbox with
 * plain kafkajs consumers of the same topic (test/bench/inbox.ts); `-- --only=consumer-restarts`
 * puts a plain consumer of each Kafka client through broker restarts (test/bench/consumer-restarts.ts);
 * `-- --only=rss [--rss-events=N]` drains N events (1,000,000) with each client for the peak RSS, and
 *   with the default client under a 512 MiB memory limit (a cgroup; needs root), without and with
 *   the image's node options;
 * `-- --only=start [--runs=R]` measures start-up (test/bench/first-record.ts);
 * `-- --only=latency [--exactly-once]` commit→consume latency at each rate, at least once and
 *   exactly once (or exactly once only);
 * OUTBOX_BATCH_SIZE / OUTBOX_BUFFER_EVENTS / OUTBOX_BUFFER_BYTES are passed on to the worker.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase, ordersMigrationSql, outboxMigrationSql } from '../helpers/database.js'
import { imageNodeArgs } from '../helpers/dockerfile.js'
import { ensureTopics } from '../helpers/kafka.js'
import { currentLsn, spawnWorker } from '../helpers/worker.js'
import { startServices } from '../services/index.js'
import { measureRestarts } from './consumer-restarts.js'
import { drainWithWorker } from './drain.js'
import { fillMessages, fillOutbox } from './fill.js'
import { startFigures, startLine } from './first-record.js'
import { benchInbox } from './inbox.js'
import { type LatencyResult, measureLatency } from './latency.js'
import { pgRecvlogicalSeconds, producerPerformance } from './limits.js'
import { memoryLimitedNode } from './memory-limit.js'
import { POLLING_SCHEMA, startPollingRelay } from './polling-relay.js'
import { measureWriteSide, WRITE_VARIANTS, writeSideOnFreshDatabase, writeSideTable } from './write-side.js'

const quick = process.argv.includes('--quick')
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length)
const option = (name: string) => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
/** Events per throughput run; `--events=N` sets it (for --only=relay). */
const N = Number(option('events') ?? (quick ? 20_000 : 200_000))
const RSS_N = Number(option('rss-events') ?? (quick ? 100_000 : 1_000_000))
/** Starts measured per client for the start-up figures (medians). */
const START_RUNS = quick ? 3 : 5
const LATENCY_SECONDS = quick ? 5 : 30
const RATES = [100, 1000, 5000]
const WRITE_RUNS = quick ? 200 : 1000
/** Added to each direction for the write side "across a network" (Node's timer step: 1 ms). */
const NETWORK_ONE_WAY_MS = 1
const root = join(import.meta.dirname, '../..')
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

const lsnText = (lsn: bigint) =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`

/** Worker configurations the relay is measured in; each drains the same backlog (a slot each). */
interface RelayVariant {
  name: string
  settings: Record<string, string>
}
const DEFAULT_VARIANT: RelayVariant = { name: 'platformatic', settings: { OUTBOX_KAFKA_CLIENT: 'platformatic' } }
const KAFKAJS: RelayVariant = { name: 'kafkajs', settings: { OUTBOX_KAFKA_CLIENT: 'kafkajs' } }
/** Exactly-once with each client; the ratio to at-least-once is taken with the same client. */
const EXACTLY_ONCE: RelayVariant[] = (['platformatic', 'kafkajs'] as const).map((client) => ({
  name: `${client}, exactly-once`,
  settings: { OUTBOX_KAFKA_CLIENT: client, OUTBOX_DELIVERY: 'exactly-once' },
}))

async function relayThroughput(
  url: string,
  brokers: string[],
  perTransaction: number,
  mode: 'table' | 'message',
  variants: RelayVariant[] = [DEFAULT_VARIANT],
  uuidIds = false,
) {
  const db = await createTestDatabase(url)
  try {
    // Slot names are cluster-wide: the database's own name keeps two bench runs apart.
    const relaySlots = variants.map((_, i) => `${db.name}_relay${i}`)
    const decodeSlot = `${db.name}_decode`
    for (const slot of [...relaySlots, decodeSlot])
      await db.query(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
    log(`filling ${N} events in transactions of ${perTransaction}, ${mode} mode`)
    const startLsn = await currentLsn(db)
    await (mode === 'table' ? fillOutbox(db, N, perTransaction, '', uuidIds) : fillMessages(db, N, perTransaction))
    const endLsn = await currentLsn(db)
    log('decode limit: pg_recvlogical')
    const decodeS = await pgRecvlogicalSeconds(db.url, decodeSlot, lsnText(endLsn))
    const results = []
    for (const [i, variant] of variants.entries()) {
      log(`relay: outbox-worker, ${variant.name}`)
      const topic = `bench.tx${perTransaction}.${mode}.${i}.{aggregateType}`
      const relay = await drainWithWorker(db, brokers, relaySlots[i] as string, endLsn, topic, variant.settings)
      results.push({
        variant: variant.name,
        perTransaction,
        mode,
        relayPerS: N / relay.seconds,
        decodePerS: N / decodeS,
        relayRssMb: relay.rssMb,
        cpuUsPerEvent: (relay.cpuSeconds * 1e6) / N,
        walBytesPerEvent: Number(endLsn - startLsn) / N,
      })
    }
    return results
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

async function latencies(
  url: string,
  brokers: string[],
  relay: 'worker' | 'polling',
  variant = DEFAULT_VARIANT,
): Promise<LatencyResult[]> {
  const db = await createTestDatabase(url)
  const topicPrefix = `bench.latency.${relay}.${variant.name.replace(/[^a-z]+/g, '-')}.${db.name}`
  let stop: () => Promise<unknown>
  if (relay === 'worker') {
    const worker = await spawnWorker(
      {
        DATABASE_URL: db.url,
        KAFKA_BROKERS: brokers.join(','),
        OUTBOX_SLOT: `${db.name}_latency`,
        OUTBOX_TOPIC: `${topicPrefix}.{aggregateType}`,
        LOG_LEVEL: 'info',
        HEALTH_PORT: '0',
        ...variant.settings,
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
      log(
        `latency, ${relay}${relay === 'worker' ? ` (${variant.name})` : ''}: ${rate} events/s for ${LATENCY_SECONDS} s`,
      )
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
    // Every variant once, on the jsonb column the migration ships; the json column in table mode.
    out[type] = await measureWriteSide(
      db.url,
      WRITE_RUNS,
      type === 'jsonb' ? WRITE_VARIANTS : WRITE_VARIANTS.slice(0, 1),
    )
    await db.dispose()
  }
  return out
}

/** The memory limit of the drains "in a container": the Kubernetes manifest's (deploy/kubernetes). */
const CONTAINER_MEMORY_MB = 512

async function peakRssDraining(url: string, brokers: string[]) {
  const db = await createTestDatabase(url)
  // The default client again under a container's memory limit, with node as it comes and with the
  // image's node options: Node sizes V8's young generation from the limit (docs/deploying.md#memory).
  const limited = memoryLimitedNode(CONTAINER_MEMORY_MB)
  try {
    const inContainer = `${DEFAULT_VARIANT.name}, ${CONTAINER_MEMORY_MB} MiB memory limit`
    const variants: (RelayVariant & { nodeArgs?: string[]; node?: string })[] = [DEFAULT_VARIANT, KAFKAJS]
    if ('node' in limited) {
      const imageArgs = imageNodeArgs()
      variants.push(
        { name: `${inContainer}, plain node`, settings: DEFAULT_VARIANT.settings, nodeArgs: [], node: limited.node },
        {
          name: `${inContainer}, the image's node (${imageArgs.join(' ')})`,
          settings: DEFAULT_VARIANT.settings,
          nodeArgs: imageArgs,
          node: limited.node,
        },
      )
    } else log(`peak RSS under a ${CONTAINER_MEMORY_MB} MiB memory limit: skipped, ${limited.skipped}`)
    for (const i of variants.keys())
      await db.query(`SELECT pg_create_logical_replication_slot('${db.name}_rss${i}', 'pgoutput')`)
    log(`peak RSS: filling ${RSS_N} events`)
    await fillOutbox(db, RSS_N, 10)
    const endLsn = await currentLsn(db)
    const results = []
    for (const [i, variant] of variants.entries()) {
      log(`peak RSS: draining, ${variant.name}`)
      const topic = `bench.rss.${i}.{aggregateType}`
      const drained = await drainWithWorker(
        db,
        brokers,
        `${db.name}_rss${i}`,
        endLsn,
        topic,
        variant.settings,
        variant.nodeArgs,
        variant.node,
      )
      results.push({
        variant: variant.name,
        events: RSS_N,
        seconds: drained.seconds,
        peakRssMb: drained.rssMb,
        perS: RSS_N / drained.seconds,
        cpuUsPerEvent: (drained.cpuSeconds * 1e6) / RSS_N,
      })
    }
    return results
  } finally {
    if ('node' in limited) limited.dispose()
    await db.dispose()
  }
}

const f0 = (n: number) => Math.round(n).toLocaleString('en-US')
const f2 = (n: number) => n.toFixed(2)

async function main() {
  const started = Date.now()
  log('building the worker (dist/)')
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const services = await startServices(log, { kafkaJvm: 'throughput' })
  try {
    const { databaseUrl: url, kafkaBrokers: brokers } = services
    const throughput = [
      ...(await relayThroughput(url, brokers, 10, 'table', [DEFAULT_VARIANT, KAFKAJS, ...EXACTLY_ONCE])),
      ...(await relayThroughput(url, brokers, 1, 'table')),
      ...(await relayThroughput(url, brokers, 10, 'message')),
    ]
    log(`produce limit: ProducerPerformance, ${N} records`)
    await ensureTopics(brokers, ['bench.produce'])
    const producePerS = producerPerformance(brokers, 'bench.produce', N, 300)
    const pollingPerS = await pollingThroughput(url, brokers)
    const workerLatency = await latencies(url, brokers, 'worker')
    const exactlyOnceLatency: (LatencyResult & { variant: string })[] = []
    for (const variant of EXACTLY_ONCE)
      for (const l of await latencies(url, brokers, 'worker', variant))
        exactlyOnceLatency.push({ ...l, variant: variant.name })
    const pollingLatency = await latencies(url, brokers, 'polling')
    const writeSide = await jsonVersusJsonb(url)
    log(`write side, ${NETWORK_ONE_WAY_MS} ms each way added`)
    const writeSideNetwork = await writeSideOnFreshDatabase(url, WRITE_RUNS / 4, NETWORK_ONE_WAY_MS)
    const rss = await peakRssDraining(url, brokers)
    log('start-up: first record, CPU and RSS at start, --help')
    const start = [
      await startFigures(url, brokers, DEFAULT_VARIANT.name, START_RUNS),
      await startFigures(url, brokers, KAFKAJS.name, START_RUNS),
    ]

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
      latency: { worker: workerLatency, workerExactlyOnce: exactlyOnceLatency, polling: pollingLatency },
      writeSide,
      writeSideNetwork: { oneWayMs: NETWORK_ONE_WAY_MS, ...writeSideNetwork },
      rss,
      start,
      ratios: {
        // Quick mode's limits are measured on too few events (a process's start and a producer's
        // warm-up are most of it): no ratio is drawn from them.
        relayVsLimit: quick ? undefined : tx10.relayPerS / limit,
        relayVsDecode: quick ? undefined : tx10.relayPerS / tx10.decodePerS,
        relayVsProduce: quick ? undefined : tx10.relayPerS / producePerS,
        relayVsPolling: tx10.relayPerS / pollingPerS,
        p99VsPollingAt1000: at1000(workerLatency).p99 / at1000(pollingLatency).p99,
        exactlyOnceVsAtLeastOnce: Object.fromEntries(
          EXACTLY_ONCE.map((v) => [v.name, exactlyOnceRatio(throughput, v)]),
        ),
        emitCost: writeSide.jsonb?.variants[0]?.emitRatio,
        emitCostWithOutbox: writeSide.jsonb?.variants[1]?.emitRatio,
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
        (t) =>
          `| relay throughput, ${t.variant}, ${t.mode} mode, transactions of ${t.perTransaction} | ${f0(t.relayPerS)} events/s | |`,
      ),
      ...throughput.map(
        (t) =>
          `| worker CPU (user + system) per event, ${t.variant}, ${t.mode} mode, transactions of ${t.perTransaction} | ${t.cpuUsPerEvent.toFixed(1)} µs | ${t.perTransaction === 10 && t.mode === 'table' && t.variant === DEFAULT_VARIANT.name ? '≤ 15 µs' : ''} |`,
      ),
      ...EXACTLY_ONCE.map(
        (v) =>
          `| exactly-once / at-least-once, ${v.name.split(',')[0]}, transactions of 10 | ${f2(results.ratios.exactlyOnceVsAtLeastOnce[v.name] ?? 0)} | ≥ 0.7 |`,
      ),
      ...throughput
        .filter((t) => t.variant === DEFAULT_VARIANT.name)
        .map(
          (t) =>
            `| decode limit (pg_recvlogical), ${t.mode} mode, transactions of ${t.perTransaction} | ${f0(t.decodePerS)} events/s | |`,
        ),
      `| produce limit (ProducerPerformance, acks=all) | ${f0(producePerS)} records/s | |`,
      quick
        ? '| relay / min(decode, produce) | not in quick mode (too few events to measure the limits) | ≥ 0.9 |'
        : `| relay / min(decode, produce), ${tx10.variant} | ${f2(results.ratios.relayVsLimit ?? 0)} | ≥ 0.9 |`,
      `| polling relay throughput | ${f0(pollingPerS)} events/s | |`,
      `| relay / polling | ${f2(results.ratios.relayVsPolling)} | ≥ 3 |`,
      ...workerLatency.map(
        (l) =>
          `| commit→consume p50/p95/p99, relay, ${f0(l.rate)}/s | ${lat(l)} | ${l.rate === 1000 ? 'p99 ≤ 50 ms' : ''} |`,
      ),
      ...exactlyOnceLatency.map(
        (l) =>
          `| commit→consume p50/p95/p99, relay, ${l.variant}, ${f0(l.rate)}/s | ${lat(l)} | ${l.rate === 1000 ? 'p99 ≤ 100 ms' : ''} |`,
      ),
      ...pollingLatency.map((l) => `| commit→consume p50/p95/p99, polling, ${f0(l.rate)}/s | ${lat(l)} | |`),
      `| relay p99 / polling p99 at 1,000/s | ${f2(results.ratios.p99VsPollingAt1000)} | ≤ 0.2 |`,
      ...emitRows(writeSide.jsonb, 'jsonb'),
      `| same with a json payload column, table mode | ${f2(writeSide.json?.txMs ?? 0)} / ${f2(writeSide.json?.variants[0]?.emitMs ?? 0)} ms (×${f2(writeSide.json?.variants[0]?.emitRatio ?? 0)}) | |`,
      ...rss.map(
        (r) =>
          `| worker peak RSS draining ${f0(r.events)} events, ${r.variant} | ${r.peakRssMb} MB (${f0(r.perS)} events/s, ${r.cpuUsPerEvent.toFixed(1)} µs CPU per event) | ≤ 100 MB |`,
      ),
      ...start.map(
        (f) =>
          `| worker start, ${f.client}: first record after spawn / CPU / peak RSS at the first transaction confirmed | ${f0(f.firstRecordMs)} ms / ${f2(f.cpuSeconds)} s / ${f.rssMb} MB | first record ≤ 300 ms |`,
      ),
      `| \`outbox-worker --help\`: wall / CPU / peak RSS | ${f2(start[0]?.helpWallS ?? 0)} s / ${f2(start[0]?.helpCpuS ?? 0)} s / ${start[0]?.helpRssMb} MB | |`,
    ].join('\n')
    const writeTables = [
      ...(writeSide.jsonb ? writeSideTable(writeSide.jsonb) : []),
      '',
      ...networkTable(writeSideNetwork),
    ]
    process.stdout.write(`\n${table}\n\n${writeTables.join('\n')}\n`)
  } finally {
    await services.dispose()
  }
}

type WriteSide = Awaited<ReturnType<typeof measureWriteSide>>

/** An exactly-once variant's rate over at-least-once's with the same client, transactions of 10, table mode. */
function exactlyOnceRatio(
  throughput: { variant: string; relayPerS: number }[],
  variant: RelayVariant,
): number | undefined {
  const client = variant.settings.OUTBOX_KAFKA_CLIENT
  const atLeastOnce = throughput.find((t) => t.variant === client)
  const exactlyOnce = throughput.find((t) => t.variant === variant.name)
  return atLeastOnce && exactlyOnce ? exactlyOnce.relayPerS / atLeastOnce.relayPerS : undefined
}

/** The main table's write-side lines: one emit in each variant, with the targets of issue 15. */
function emitRows(result: WriteSide | undefined, column: string): string[] {
  if (!result) return []
  const target: Record<string, string> = { table: '≤ ×1.35', 'table + withOutbox': '≤ ×1.15' }
  return [
    `| transaction: order alone (median, ${column}) | ${f2(result.txMs)} ms | |`,
    `| reference: two orders (one more statement) | ${f2(result.txTwoOrdersMs)} ms (×${f2(result.twoOrdersRatio)}) | |`,
    ...result.variants.map(
      (v) => `| order + emit, ${v.name} | ${f2(v.emitMs)} ms (×${f2(v.emitRatio)}) | ${target[v.name] ?? ''} |`,
    ),
  ]
}

function networkTable(result: WriteSide): string[] {
  return writeSideTable(
    result,
    `Write side with ${NETWORK_ONE_WAY_MS} ms added each way (a round trip ≈ ${2 * NETWORK_ONE_WAY_MS} ms more)`,
  )
}

/** `--only=...`: one part of the bench, printed, on the same kind of services. */
async function runOnly(part: string) {
  const services = await startServices(log, { kafkaJvm: 'throughput' })
  try {
    const { databaseUrl: url, kafkaBrokers: brokers } = services
    if (part === 'write-side') {
      log('write side')
      const local = await writeSideOnFreshDatabase(url, WRITE_RUNS)
      log(`write side, ${NETWORK_ONE_WAY_MS} ms each way added`)
      const network = await writeSideOnFreshDatabase(url, WRITE_RUNS / 4, NETWORK_ONE_WAY_MS)
      process.stdout.write(`\n${writeSideTable(local).join('\n')}\n\n${networkTable(network).join('\n')}\n`)
    } else if (part === 'drain') {
      log('building the worker (dist/)')
      execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
      // ABBA, so a machine getting slower or faster during the run favours neither.
      for (const mode of ['table', 'message', 'message', 'table'] as const) {
        const [t] = await relayThroughput(url, brokers, 10, mode)
        if (!t) throw new Error('no relay result')
        process.stdout.write(
          `relay drain, ${mode} mode, transactions of 10: ${f0(t.relayPerS)} events/s (decode limit ${f0(t.decodePerS)} events/s; ${f0(t.walBytesPerEvent)} WAL bytes per event filled)\n`,
        )
      }
    } else if (part === 'relay') {
      log('building the worker (dist/)')
      execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
      const runs = Number(option('runs') ?? 3)
      const load = () => loadavg()[0]?.toFixed(2)
      for (let run = 0; run < runs; run++) {
        // Both clients drain the same backlog in each run, one after the other.
        const variants = process.argv.includes('--exactly-once')
          ? [DEFAULT_VARIANT, ...EXACTLY_ONCE]
          : [DEFAULT_VARIANT, KAFKAJS]
        const uuidKeys = process.argv.includes('--uuid-keys')
        for (const t of await relayThroughput(url, brokers, 10, 'table', variants, uuidKeys)) {
          process.stdout.write(
            `relay drain of ${f0(N)} events (${t.variant}, table mode, transactions of 10${uuidKeys ? ', UUID keys' : ''}): ${f0(t.relayPerS)} events/s, ${t.cpuUsPerEvent.toFixed(1)} µs CPU per event, peak RSS ${t.relayRssMb} MB; decode limit ${f0(t.decodePerS)} events/s; load ${load()}\n`,
          )
        }
      }
      log(`produce limit: ProducerPerformance, ${N} records`)
      await ensureTopics(brokers, ['bench.produce'])
      process.stdout.write(
        `produce limit: ${f0(producerPerformance(brokers, 'bench.produce', N, 300))} records/s; load ${load()}\n`,
      )
    } else if (part === 'rss') {
      log('building the worker (dist/)')
      execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
      for (const r of await peakRssDraining(url, brokers)) {
        process.stdout.write(
          `worker peak RSS draining ${f0(r.events)} events, ${r.variant}: ${r.peakRssMb} MB (${f0(r.perS)} events/s, ${r.cpuUsPerEvent.toFixed(1)} µs CPU per event); load ${loadavg()[0]?.toFixed(2)}\n`,
        )
      }
    } else if (part === 'start') {
      log('building the worker (dist/)')
      execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
      const runs = Number(option('runs') ?? START_RUNS)
      for (const client of [DEFAULT_VARIANT.name, KAFKAJS.name])
        process.stdout.write(`${startLine(await startFigures(url, brokers, client, runs), runs)}\n`)
    } else if (part === 'latency') {
      log('building the worker (dist/)')
      execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
      for (const variant of process.argv.includes('--exactly-once') ? EXACTLY_ONCE : [DEFAULT_VARIANT, ...EXACTLY_ONCE])
        for (const l of await latencies(url, brokers, 'worker', variant))
          process.stdout.write(
            `commit→consume p50/p95/p99, ${variant.name}, ${f0(l.rate)}/s: ${f0(l.p50)} / ${f0(l.p95)} / ${f0(l.p99)} ms (${l.received} of ${l.sent} events); load ${loadavg()[0]?.toFixed(2)}\n`,
          )
    } else if (part === 'inbox') {
      const events = Number(option('events') ?? (quick ? 5000 : 20_000))
      for (const r of await benchInbox(url, brokers, events)) {
        process.stdout.write(
          `inbox bench, ${r.variant}: ${f0(r.perS)} events/s (${f0(r.events)} events, 4 partitions at once); load ${loadavg()[0]?.toFixed(2)}\n`,
        )
      }
    } else if (part === 'consumer-restarts') {
      for (const client of ['kafkajs', 'platformatic'] as const) {
        const r = await measureRestarts(client)
        process.stdout.write(
          `consumer through 3 broker restarts, ${client}: ${r.consumed} of ${r.produced} records, ${r.caughtUp ? `caught up ${r.catchUpS} s after the last restart` : 'never caught up (60 s)'}; ${r.events.join('; ') || 'no errors reported'}; load ${loadavg()[0]?.toFixed(2)}\n`,
        )
      }
    } else {
      throw new Error(
        `--only=${part}: use --only=write-side, --only=drain, --only=relay, --only=rss, --only=start, --only=latency, --only=inbox or --only=consumer-restarts`,
      )
    }
  } finally {
    await services.dispose()
  }
}

await (only ? runOnly(only) : main())
