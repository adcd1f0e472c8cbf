/**
 * `npx tsx test/bench/first-record.ts [--runs=5] [--client=platformatic] [--cli=dist/worker/cli.js]`:
 * what starting costs. A worker (built bin) is started on a slot holding one transaction of 10
 * events; measured per run: the time from spawning the process to the first record appended in
 * Kafka (the topic stamps records with the broker's clock, LogAppendTime, on this same machine),
 * and the worker's CPU seconds and peak RSS once that transaction is confirmed. Also `--help`'s wall
 * time, CPU and peak RSS. Uses DATABASE_URL and KAFKA_BROKERS when set (`npm run services`).
 *
 * `--compare=<build>/worker/cli.js,<build>/worker/cli.js[,...]`: the first-record time of each
 * build instead, their starts alternating on the same services (one uncounted round first), so
 * that a change in the machine's load falls on every build alike.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { createTestDatabase } from '../helpers/database.js'
import { testKafka } from '../helpers/kafka.js'
import { currentLsn, spawnWorker, waitForConfirmed } from '../helpers/worker.js'
import { startServices } from '../services/index.js'
import { benchWorkerEnv, cpuSeconds, peakRssMb } from './drain.js'
import { fillOutbox } from './fill.js'

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const RUNS = Number(arg('runs') ?? 5)
const CLIENT = arg('client') ?? 'platformatic'
const root = join(import.meta.dirname, '../..')
const CLI = resolve(root, arg('cli') ?? 'dist/worker/cli.js')
const log = (line: string) => process.stderr.write(`[first-record] ${line}\n`)
const load = () => (loadavg()[0] as number).toFixed(2)
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number

export interface StartCost {
  firstRecordMs: number
  cpuSeconds: number
  rssMb: number
}

/** The offset-0 timestamp of the topic's first record, waiting for it to exist. */
async function firstAppendTime(brokers: string[], topic: string): Promise<number> {
  const admin = testKafka(brokers).admin()
  await admin.connect()
  try {
    const deadline = Date.now() + 30_000
    for (;;) {
      const offsets = await admin.fetchTopicOffsets(topic).catch(() => [])
      if (offsets.some((o) => o.high !== '0')) break
      if (Date.now() > deadline) throw new Error(`no record reached ${topic}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    await admin.disconnect()
  }
  const consumer = testKafka(brokers).consumer({ groupId: `first-record-${Math.random().toString(36).slice(2)}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const earliest = await new Promise<number>((resolveTime) => {
    let best = Number.POSITIVE_INFINITY
    let waiting = false
    void consumer.run({
      eachMessage: async ({ message }) => {
        best = Math.min(best, Number(message.timestamp))
        // Every partition's first batch arrives within this; the earliest of them is the first record.
        if (waiting) return
        waiting = true
        setTimeout(() => resolveTime(best), 1000)
      },
    })
  })
  await consumer.disconnect()
  return earliest
}

export async function measureStart(
  db: Awaited<ReturnType<typeof createTestDatabase>>,
  brokers: string[],
  slot: string,
  topic: string,
  settings: Record<string, string>,
  cli = CLI,
): Promise<StartCost> {
  const admin = testKafka(brokers).admin()
  await admin.connect()
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] }],
  })
  await admin.disconnect()
  await db.query(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
  await fillOutbox(db, 10, 10)
  const endLsn = await currentLsn(db)
  const spawnedAt = Date.now()
  const worker = await spawnWorker({ ...benchWorkerEnv(db.url, brokers, slot, topic), ...settings }, [], {
    built: true,
    entry: cli,
  })
  const pid = worker.child.pid as number
  try {
    await waitForConfirmed(db, slot, endLsn, 30_000)
    const cost = { cpuSeconds: cpuSeconds(pid), rssMb: peakRssMb(pid) }
    const appended = await firstAppendTime(brokers, topic)
    return { firstRecordMs: appended - spawnedAt, ...cost }
  } finally {
    await worker.kill('SIGTERM')
    await db.query(`SELECT pg_drop_replication_slot('${slot}')`).catch(() => {})
  }
}

/** `--help`: wall seconds, CPU seconds and peak RSS (MB) of the whole process, from GNU time. */
export function helpCost(cli = CLI): { wallS: number; cpuS: number; rssMb: number } {
  const out = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, cli, '--help'], { encoding: 'utf8' })
  const [wall, user, sys, kb] = (out.stderr.trim().split('\n').at(-1) as string).split(' ').map(Number)
  return { wallS: wall as number, cpuS: (user as number) + (sys as number), rssMb: Math.round((kb as number) / 1024) }
}

export interface StartFigures {
  client: string
  firstRecordMs: number
  cpuSeconds: number
  rssMb: number
  helpWallS: number
  helpCpuS: number
  helpRssMb: number
  load: number
}

/** Medians of `runs` starts (after one uncounted warm-up) and of `runs` --help, for one client. */
export async function startFigures(
  url: string,
  brokers: string[],
  client: string,
  runs: number,
  cli = CLI,
): Promise<StartFigures> {
  const db = await createTestDatabase(url)
  try {
    const starts: StartCost[] = []
    // A first run warms the page cache and the broker; it is not counted.
    for (let i = 0; i <= runs; i++) {
      const topic = `bench.first.${db.name}.${i}`
      const start = await measureStart(db, brokers, `${db.name}_first${i}`, topic, { OUTBOX_KAFKA_CLIENT: client }, cli)
      log(
        `${client} run ${i}${i === 0 ? ' (warm-up)' : ''}: first record ${start.firstRecordMs} ms, CPU ${start.cpuSeconds.toFixed(2)} s, ` +
          `peak RSS ${start.rssMb} MB, load ${load()}`,
      )
      if (i > 0) starts.push(start)
    }
    const helps = Array.from({ length: runs }, () => helpCost(cli))
    return {
      client,
      firstRecordMs: median(starts.map((s) => s.firstRecordMs)),
      cpuSeconds: median(starts.map((s) => s.cpuSeconds)),
      rssMb: median(starts.map((s) => s.rssMb)),
      helpWallS: median(helps.map((h) => h.wallS)),
      helpCpuS: median(helps.map((h) => h.cpuS)),
      helpRssMb: median(helps.map((h) => h.rssMb)),
      load: loadavg()[0] as number,
    }
  } finally {
    await db.dispose()
  }
}

export function startLine(f: StartFigures, runs: number): string {
  return (
    `${f.client}: first record ${f.firstRecordMs} ms after spawn, CPU ${f.cpuSeconds.toFixed(2)} s and peak RSS ${f.rssMb} MB ` +
    `at the first transaction confirmed; --help ${f.helpWallS.toFixed(2)} s wall, ${f.helpCpuS.toFixed(2)} s CPU, ` +
    `${f.helpRssMb} MB (medians of ${runs}; load ${f.load.toFixed(2)})`
  )
}

/** Medians of `runs` first-record times per build, the builds' starts alternating. */
async function compareBuilds(url: string, brokers: string[], clis: string[], runs: number): Promise<string[]> {
  const db = await createTestDatabase(url)
  const times = clis.map(() => [] as number[])
  try {
    for (let i = 0; i <= runs; i++)
      for (const [k, cli] of clis.entries()) {
        const start = await measureStart(
          db,
          brokers,
          `${db.name}_cmp${i}_${k}`,
          `bench.first.${db.name}.${i}.${k}`,
          {
            OUTBOX_KAFKA_CLIENT: CLIENT,
          },
          cli,
        )
        log(`${cli} run ${i}${i === 0 ? ' (warm-up)' : ''}: first record ${start.firstRecordMs} ms, load ${load()}`)
        if (i > 0) times[k]?.push(start.firstRecordMs)
      }
  } finally {
    await db.dispose()
  }
  return clis.map((cli, k) => {
    const sorted = [...(times[k] ?? [])].sort((a, b) => a - b)
    return `${process.version}, ${CLIENT}, ${cli}: first record ${median(sorted)} ms after spawn (${sorted[0]}–${sorted.at(-1)}, medians of ${runs}; load ${load()})`
  })
}

async function main() {
  const compare = arg('compare')
    ?.split(',')
    .map((cli) => resolve(root, cli))
  if (!arg('cli') && !compare) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const services = await startServices(log, { kafkaJvm: 'throughput' })
  try {
    if (compare)
      for (const line of await compareBuilds(services.databaseUrl, services.kafkaBrokers, compare, RUNS))
        console.log(line)
    else console.log(startLine(await startFigures(services.databaseUrl, services.kafkaBrokers, CLIENT, RUNS), RUNS))
  } finally {
    await services.dispose()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
