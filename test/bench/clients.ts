/**
 * `npx tsx test/bench/clients.ts [--events=100000] [--runs=3] [--profile=DIR]`: the same backlog
 * drained by the worker (built bin) once per Kafka client, runs interleaved (the machine may be
 * shared), each on its own slot and topic. Prints events/s, worker CPU seconds (user+sys while
 * draining), peak RSS and the load average per run, then the medians. With --profile, each run
 * writes a V8 CPU profile (node --cpu-prof) of the worker into DIR.
 */
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { createTestDatabase } from '../helpers/database.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { currentLsn } from '../helpers/worker.js'
import { startServices } from '../services/index.js'
import { drainWithWorker } from './drain.js'
import { fillOutbox } from './fill.js'

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const EVENTS = Number(arg('events') ?? 100_000)
const RUNS = Number(arg('runs') ?? 3)
const PROFILE_DIR = arg('profile') ? resolve(arg('profile') as string) : undefined
const root = join(import.meta.dirname, '../..')
const log = (line: string) => process.stderr.write(`[clients] ${line}\n`)

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

async function main() {
  log('building the worker (dist/)')
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const services = await startServices(log, { kafkaJvm: 'throughput' })
  const db = await createTestDatabase(services.databaseUrl)
  const order = Array.from({ length: RUNS }, () => KAFKA_CLIENTS).flat()
  try {
    // One slot per run, all created before the fill: every run drains the same backlog.
    for (let i = 0; i < order.length; i++)
      await db.query(`SELECT pg_create_logical_replication_slot('bench_clients_${i}', 'pgoutput')`)
    log(`filling ${EVENTS} events in transactions of 10`)
    await fillOutbox(db, EVENTS, 10)
    const endLsn = await currentLsn(db)
    const results: { client: string; perS: number; cpuS: number; rssMb: number; load: number }[] = []
    for (const [i, client] of order.entries()) {
      const drained = await drainWithWorker(
        db,
        services.kafkaBrokers,
        `bench_clients_${i}`,
        endLsn,
        `bench.clients.${i}.{aggregateType}`,
        { OUTBOX_KAFKA_CLIENT: client },
        // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
        PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}/${client}-${i}`] : [],
      )
      const result = {
        client,
        perS: EVENTS / drained.seconds,
        cpuS: drained.cpuSeconds,
        rssMb: drained.rssMb,
        load: loadavg()[0] as number,
      }
      results.push(result)
      log(
        `run ${i + 1}/${order.length} ${client}: ${Math.round(result.perS)} events/s, CPU ${result.cpuS.toFixed(2)} s, ` +
          `peak RSS ${result.rssMb} MB, load ${result.load.toFixed(2)}`,
      )
    }
    console.log(`${EVENTS} events, transactions of 10, ${RUNS} interleaved runs per client (medians):`)
    for (const client of KAFKA_CLIENTS) {
      const mine = results.filter((r) => r.client === client)
      console.log(
        `${client.padEnd(13)} ${Math.round(median(mine.map((r) => r.perS)))} events/s, ` +
          `CPU ${median(mine.map((r) => r.cpuS)).toFixed(2)} s, peak RSS ${median(mine.map((r) => r.rssMb))} MB ` +
          `(runs: ${mine.map((r) => Math.round(r.perS)).join(', ')} events/s)`,
      )
    }
  } finally {
    await db.dispose()
    await services.dispose()
  }
}

await main()
