/**
 * `npx tsx test/bench/clients.ts [--events=100000] [--runs=3] [--profile=DIR]`: the same backlog
 * drained by the worker (built bin) once per Kafka client, runs interleaved (the machine may be
 * shared), each on its own slot and topic. Prints events/s, worker CPU seconds (user+sys while
 * draining), peak RSS and the load average per run, then the medians. With --profile, each run
 * writes a V8 CPU profile (node --cpu-prof) of the worker into DIR.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { createTestDatabase } from '../helpers/database.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { currentLsn, spawnWorker, waitForConfirmed } from '../helpers/worker.js'
import { startServices } from '../services/index.js'
import { fillOutbox } from './fill.js'

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const EVENTS = Number(arg('events') ?? 100_000)
const RUNS = Number(arg('runs') ?? 3)
const PROFILE_DIR = arg('profile') ? resolve(arg('profile') as string) : undefined
const root = join(import.meta.dirname, '../..')
const log = (line: string) => process.stderr.write(`[clients] ${line}\n`)

/** User + system CPU seconds of a process so far (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / 100
}
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
}
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

async function main() {
  log('building the worker (dist/)')
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const services = await startServices(log)
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
      const worker = await spawnWorker(
        {
          DATABASE_URL: db.url,
          KAFKA_BROKERS: services.kafkaBrokers.join(','),
          OUTBOX_SLOT: `bench_clients_${i}`,
          OUTBOX_TOPIC: `bench.clients.${i}.{aggregateType}`,
          OUTBOX_KAFKA_CLIENT: client,
          LOG_LEVEL: 'info',
          HEALTH_PORT: '0',
        },
        [],
        // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
        { built: true, nodeArgs: PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}/${client}-${i}`] : [] },
      )
      const pid = worker.child.pid as number
      await worker.waitForLog(/"msg":"streaming"/)
      const cpuBefore = cpuSeconds(pid)
      const started = performance.now()
      await waitForConfirmed(db, `bench_clients_${i}`, endLsn, 600_000)
      const seconds = (performance.now() - started) / 1000
      const result = {
        client,
        perS: EVENTS / seconds,
        cpuS: cpuSeconds(pid) - cpuBefore,
        rssMb: peakRssMb(pid),
        load: loadavg()[0] as number,
      }
      await worker.kill('SIGTERM')
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
