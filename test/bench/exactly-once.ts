/**
 * `npx tsx test/bench/exactly-once.ts [--quick] [--runs=N]`: what exactly-once delivery costs, side
 * by side with at-least-once on the same services. For each mode, interleaved runs: the built
 * worker drains the same pre-filled backlog (transactions of 10, 1,000 aggregates, ~200-byte
 * payloads) from a slot made before it; then commit-to-consume latency at fixed rates, read with
 * read_committed (the consumer exactly-once needs). Prints a table with the load average.
 */
import { execFileSync } from 'node:child_process'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase } from '../helpers/database.js'
import { currentLsn, spawnWorker, waitForConfirmed } from '../helpers/worker.js'
import { startServices } from '../services/index.js'
import { fillOutbox } from './fill.js'
import { type LatencyResult, measureLatency } from './latency.js'

const quick = process.argv.includes('--quick')
const RUNS = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? (quick ? 1 : 3))
const N = quick ? 20_000 : 200_000
const LATENCY_SECONDS = quick ? 5 : 20
const RATES = [100, 1000]
const MODES = ['at-least-once', 'exactly-once'] as const
type Mode = (typeof MODES)[number]
const root = join(import.meta.dirname, '../..')
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

function workerEnv(url: string, brokers: string[], slot: string, topic: string, mode: Mode) {
  return {
    DATABASE_URL: url,
    KAFKA_BROKERS: brokers.join(','),
    OUTBOX_SLOT: slot,
    OUTBOX_TOPIC: topic,
    OUTBOX_DELIVERY: mode,
    OUTBOX_TRANSACTIONAL_ID: `bench.${slot}.${Date.now()}`,
    LOG_LEVEL: 'info',
    HEALTH_PORT: '0',
  }
}

/** Events per second draining N events from a slot filled before the worker starts. */
async function drain(url: string, brokers: string[], mode: Mode, run: number): Promise<number> {
  const db = await createTestDatabase(url)
  try {
    await db.query(`SELECT pg_create_logical_replication_slot('bench_eos', 'pgoutput')`)
    await fillOutbox(db, N, 10)
    const end = await currentLsn(db)
    const topic = `bench.eos.${mode}.${run}.{aggregateType}`
    const worker = await spawnWorker(workerEnv(db.url, brokers, 'bench_eos', topic, mode), [], { built: true })
    await worker.waitForLog(/"msg":"streaming"/)
    const started = performance.now()
    await waitForConfirmed(db, 'bench_eos', end, 600_000)
    const seconds = (performance.now() - started) / 1000
    await worker.kill('SIGTERM')
    return N / seconds
  } finally {
    await db.dispose()
  }
}

async function latency(url: string, brokers: string[], mode: Mode): Promise<LatencyResult[]> {
  const db = await createTestDatabase(url)
  const prefix = `bench.eos-latency.${mode}.${Date.now()}`
  const worker = await spawnWorker(
    workerEnv(db.url, brokers, 'bench_eos_latency', `${prefix}.{aggregateType}`, mode),
    [],
    {
      built: true,
    },
  )
  try {
    await worker.waitForLog(/"msg":"streaming"/)
    const results: LatencyResult[] = []
    for (const rate of RATES) {
      log(`latency, ${mode}: ${rate} events/s for ${LATENCY_SECONDS} s`)
      results.push(await measureLatency(db, brokers, prefix, rate, LATENCY_SECONDS))
    }
    return results
  } finally {
    await worker.kill('SIGTERM')
    await db.dispose()
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number

async function main() {
  log('building the worker (dist/)')
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const services = await startServices(log, { kafkaJvm: 'throughput' })
  try {
    const { databaseUrl: url, kafkaBrokers: brokers } = services
    const rates: Record<Mode, number[]> = { 'at-least-once': [], 'exactly-once': [] }
    const loads: number[] = []
    for (let run = 0; run < RUNS; run++) {
      for (const mode of MODES) {
        log(`drain ${run + 1}/${RUNS}, ${mode}: ${N} events`)
        loads.push(loadavg()[0] as number)
        rates[mode].push(await drain(url, brokers, mode, run))
        log(`  ${Math.round(rates[mode].at(-1) as number)} events/s`)
      }
    }
    const latencies: Record<Mode, LatencyResult[]> = {
      'at-least-once': await latency(url, brokers, 'at-least-once'),
      'exactly-once': await latency(url, brokers, 'exactly-once'),
    }
    const lines = [
      `Exactly-once vs at-least-once: ${N} events (transactions of 10), median of ${RUNS} interleaved runs; ${cpus().length} cores, load average at the runs' starts ${loads.map((l) => l.toFixed(1)).join(', ')}`,
      '',
      `| delivery | drain events/s | runs | ${RATES.map((r) => `p50 / p99 at ${r}/s`).join(' | ')} |`,
      `|---|---:|---|${RATES.map(() => '---:').join('|')}|`,
      ...MODES.map(
        (mode) =>
          `| ${mode} | ${Math.round(median(rates[mode])).toLocaleString('en-US')} | ${rates[mode].map((r) => Math.round(r)).join(', ')} | ${latencies[mode].map((l) => `${l.p50.toFixed(0)} / ${l.p99.toFixed(0)} ms`).join(' | ')} |`,
      ),
    ]
    console.log(lines.join('\n'))
  } finally {
    await services.dispose()
  }
}

await main()
