import { readFileSync } from 'node:fs'
import type { TestDatabase } from '../helpers/database.js'
import { spawnWorker, waitForConfirmed } from '../helpers/worker.js'

/** Linux's clock tick for /proc/<pid>/stat times (USER_HZ, 100 on every common kernel). */
const TICKS_PER_S = 100

/** Settings the bench passes on to the worker when set, to measure other buffer sizes. */
const TUNABLES = ['OUTBOX_BATCH_SIZE', 'OUTBOX_BUFFER_EVENTS', 'OUTBOX_BUFFER_BYTES'] as const

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S
}

export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
}

/** What every benchmarked worker runs with: its slot and topic, quiet logs, no health server. */
export function benchWorkerEnv(databaseUrl: string, brokers: string[], slot: string, topic: string) {
  return {
    DATABASE_URL: databaseUrl,
    KAFKA_BROKERS: brokers.join(','),
    OUTBOX_SLOT: slot,
    OUTBOX_TOPIC: topic,
    LOG_LEVEL: 'info',
    HEALTH_PORT: '0',
  } as Record<string, string>
}

export interface Drained {
  seconds: number
  /** Worker CPU (user + system) from streaming to confirmed past the end. */
  cpuSeconds: number
  rssMb: number
}

/**
 * The worker (built bin) drains a pre-filled slot: seconds and CPU from streaming to confirmed
 * past `endLsn`, and the process's peak RSS. OUTBOX_BENCH_NODE_ARGS is given to the worker's node,
 * e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" for a look at where the time goes.
 */
export async function drainWithWorker(
  db: TestDatabase,
  brokers: string[],
  slot: string,
  endLsn: bigint,
  topic: string,
  /** Worker settings for this run (OUTBOX_KAFKA_CLIENT, OUTBOX_DELIVERY, ...), over the tunables. */
  settings: Record<string, string> = {},
  nodeArgs = process.env.OUTBOX_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [],
  /** The node executable, when not this process's (test/bench/memory-limit.ts). */
  node?: string,
): Promise<Drained> {
  const env = benchWorkerEnv(db.url, brokers, slot, topic)
  for (const name of TUNABLES) {
    const value = process.env[name]
    if (value) env[name] = value
  }
  Object.assign(env, settings)
  const worker = await spawnWorker(env, [], { built: true, nodeArgs, node })
  const pid = worker.child.pid as number
  await worker.waitForLog(/"msg":"streaming"/)
  const started = performance.now()
  const cpuAtStart = cpuSeconds(pid)
  await waitForConfirmed(db, slot, endLsn, 600_000)
  const seconds = (performance.now() - started) / 1000
  const cpu = cpuSeconds(pid) - cpuAtStart
  const rssMb = peakRssMb(pid)
  await worker.kill('SIGTERM')
  return { seconds, cpuSeconds: cpu, rssMb }
}
