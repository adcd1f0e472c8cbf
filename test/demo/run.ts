/**
 * `npm run demo`: the product's main job, end to end, on services started for you. An orders app
 * commits orders and their events with tx.outbox.emit (some transactions fail on purpose and roll
 * back); outbox-worker streams them to Kafka; a consumer prints each event as it arrives. Midway
 * the worker is killed with SIGKILL and restarted. Exit code 0 only if every committed event
 * arrived and no rolled-back one did. Ctrl-C at any time stops everything and removes its data.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { type Logger, logProcessWarnings } from '../../worker/operations/logger.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { collectTopics } from '../helpers/kafka.js'
import { spawnWorker, type WorkerProcess } from '../helpers/worker.js'
import { type Services, startServices } from '../services/index.js'

const ORDERS = Number(process.env.DEMO_ORDERS ?? 40)
const root = join(import.meta.dirname, '../..')
let interrupted = false
// After Ctrl-C only the demo's own lines are printed: the app and the worker would report the
// services going away as failures, which they are not.
const say = (tag: string, text: string) => {
  if (!interrupted || tag === '[demo]') process.stdout.write(`${tag.padEnd(8)} ${text}\n`)
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
// Process warnings as demo lines, as the worker logs them: on Node 24 the demo's own Kafka
// consumer (kafkajs) would otherwise print a TimeoutNegativeWarning to stderr (worker/operations/logger.ts).
const warnings: Logger = {
  debug() {},
  info() {},
  warn: (fields, message) => say('[demo]', `${(fields as { warning: string }).warning}: ${message}`),
  error: (_fields, message) => say('[demo]', message),
  child: () => warnings,
}
logProcessWarnings(warnings)

let services: Services | undefined
let db: TestDatabase | undefined
let worker: WorkerProcess | undefined
let consumer: Awaited<ReturnType<typeof collectTopics>> | undefined
let cleaning: Promise<void> | undefined

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await worker?.kill('SIGTERM')
    await consumer?.stop().catch(() => {})
    await db?.dispose().catch(() => {})
    await services?.dispose()
  })()
  return cleaning
}
process.on('SIGINT', () => {
  if (interrupted) process.exit(130) // a second Ctrl-C: now
  interrupted = true
  say('[demo]', 'Ctrl-C: stopping everything and removing its data')
  void cleanup().then(() => process.exit(130))
})

/** A spinner with elapsed seconds while `work` runs (services take a few seconds to start). */
async function withProgress<T>(label: string, work: Promise<T>): Promise<T> {
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
  const started = Date.now()
  let frame = 0
  const timer = setInterval(() => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    if (process.stdout.isTTY) process.stdout.write(`\r${frames[frame++ % frames.length]} ${label} ${seconds} s`)
  }, 100)
  try {
    return await work
  } finally {
    clearInterval(timer)
    if (process.stdout.isTTY) process.stdout.write('\r\x1b[K')
  }
}

async function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const started = await spawnWorker({ ...env, LOG_FORMAT: 'pretty', LOG_LEVEL: 'info' }, [], {
    onLine: (line) => say('[worker]', line),
  })
  await started.waitForLog(/streaming/)
  return started
}

async function main(): Promise<number> {
  say('[demo]', 'starting PostgreSQL (wal_level=logical) and Kafka...')
  const t0 = Date.now()
  // The services' own lines (e.g. why containers could not start) go above the spinner.
  const serviceLine = (line: string) => {
    if (process.stdout.isTTY) process.stdout.write('\r\x1b[K')
    say('[demo]', line)
  }
  services = await withProgress('starting services', startServices(serviceLine))
  say(
    '[demo]',
    `PostgreSQL ${services.postgresVersion.split(' ')[0]} and Kafka ${services.kafkaVersion} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${services.source})`,
  )

  db = await createTestDatabase(services.databaseUrl)
  say(
    '[demo]',
    `database ${db.name}: applied prisma/outbox/migration.sql (outbox table + publication) and the orders table`,
  )
  const generated = spawnSync(process.execPath, [join(root, 'prisma/generate.mjs')], { cwd: root, encoding: 'utf8' })
  if (generated.signal === 'SIGINT') return 130 // Ctrl-C reached the generator too; cleanup follows
  if (generated.status !== 0) throw new Error(`prisma generate failed:\n${generated.stderr}`)
  say('[demo]', "generated the example app's Prisma client (prisma/schema.prisma)")
  const { createAppClient } = await import('../helpers/prisma.js')
  const prisma = createAppClient(db.url)

  const prefix = uniqueName('demo')
  const topic = `${prefix}.order`
  const env = {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: services.kafkaBrokers.join(','),
    OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
    OUTBOX_SLOT: 'demo',
  }
  say('[demo]', 'starting outbox-worker (its own process, its real CLI)')
  worker = await startWorker(env)

  // From the moment the COMMIT is sent: an event can arrive before $transaction resolves in the
  // app, so timing from its return would make latencies negative.
  const commitSent = new Map<string, number>()
  const committedAt = new Map<string, number>()
  const rolledBack = new Set<string>()
  const latencies: number[] = []
  const seen = new Set<string>()
  let duplicates = 0
  consumer = await collectTopics(services.kafkaBrokers, [topic])
  const printer = setInterval(() => {
    for (const m of consumer?.messages.splice(0) ?? []) {
      const id = m.headers.id ?? '?'
      const latency = m.receivedAt - (committedAt.get(id) ?? commitSent.get(id) ?? m.receivedAt)
      if (seen.has(id)) duplicates++
      else if (committedAt.has(id)) latencies.push(latency)
      seen.add(id)
      const flag = rolledBack.has(id) ? '  <-- ROLLED BACK, MUST NOT ARRIVE' : ''
      say('[kafka]', `${m.topic} key=${m.key} ${m.headers.type} id=${id} ${latency} ms${flag}`)
    }
  }, 50)

  const customers = ['ada', 'bob', 'cy', 'dee', 'eve']
  for (let i = 1; i <= ORDERS && !interrupted; i++) {
    const customer = customers[i % customers.length] as string
    const declined = i % 6 === 0
    const ids: string[] = []
    try {
      await prisma.$transaction(async (tx) => {
        const order = await tx.order.create({ data: { customer, total: (10 + i).toFixed(2) } })
        ids.push(
          await tx.outbox.emit({
            aggregateType: 'order',
            aggregateId: order.id,
            type: 'order.created',
            payload: { id: order.id, customer, total: order.total },
          }),
        )
        ids.push(
          await tx.outbox.emit({
            aggregateType: 'order',
            aggregateId: order.id,
            type: 'order.confirmed',
            payload: { id: order.id },
          }),
        )
        if (declined) throw new Error('payment declined')
        for (const id of ids) commitSent.set(id, Date.now())
      })
      for (const id of ids) committedAt.set(id, commitSent.get(id) as number)
      say('[app]', `order for ${customer}: committed with 2 events`)
    } catch (error) {
      for (const id of ids) rolledBack.add(id)
      say(
        '[app]',
        `order for ${customer}: ${(error as Error).message}, transaction rolled back (its 2 events must never arrive)`,
      )
    }
    if (i === Math.floor(ORDERS / 2)) {
      say('[demo]', 'kill -9 of the worker, mid-stream; the app keeps committing orders')
      await worker.kill('SIGKILL')
    }
    if (i === Math.floor(ORDERS / 2) + 5) {
      say('[demo]', "restarting outbox-worker: it resumes from the slot's confirmed position")
      worker = await startWorker(env)
    }
    await sleep(60)
  }
  if (interrupted) return 130

  const deadline = Date.now() + 30_000
  while ([...committedAt.keys()].some((id) => !seen.has(id)) && Date.now() < deadline) await sleep(100)
  await sleep(500) // a rolled-back event, if one ever arrived, would show up now
  clearInterval(printer)
  await prisma.$disconnect()
  // Stopped before the summary, so that its last lines (a clean SIGTERM shutdown) come before it.
  say('[demo]', 'stopping outbox-worker (SIGTERM: it flushes, confirms and exits)')
  await worker.kill('SIGTERM')

  const lost = [...committedAt.keys()].filter((id) => !seen.has(id)).length
  const phantoms = [...rolledBack].filter((id) => seen.has(id)).length
  const sorted = latencies.sort((a, b) => a - b)
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
  const ok = lost === 0 && phantoms === 0
  process.stdout.write(
    [
      '',
      'Summary',
      `  committed    ${committedAt.size} events, delivered ${committedAt.size - lost} (lost ${lost})`,
      `  rolled back  ${rolledBack.size} events, delivered ${phantoms}`,
      `  duplicates   ${duplicates} (redelivered after the kill -9, each with the same id)`,
      `  latency      p50 ${pct(50)} ms, p99 ${pct(99)} ms (commit to consume; the restart gap is in the tail)`,
      `  ${ok ? 'OK: every committed event arrived, no rolled-back one did' : 'FAILED: the guarantees did not hold'}`,
      '',
    ].join('\n'),
  )
  return ok ? 0 : 1
}

let code = 1
try {
  code = await main()
} catch (error) {
  if (!interrupted) process.stderr.write(`demo failed: ${(error as Error).message}\n`)
} finally {
  await cleanup()
}
process.exit(code)
