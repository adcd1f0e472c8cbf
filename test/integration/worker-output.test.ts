/**
 * The worker's output is a log stream that operators feed to a log pipeline: on every Node line
 * `engines` allows, each line it prints, stdout and stderr alike, must be one of its own JSON
 * log lines. Node 24 made kafkajs print a `TimeoutNegativeWarning` to stderr on every connection;
 * a process warning has to arrive as a log line instead. Run this file with Node 24 first on
 * PATH to see the kafkajs case; the probe warning below covers any Node.
 */
import { afterEach, beforeEach, expect, inject, test } from 'vitest'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { currentLsn, insertEvents, spawnWorker, type WorkerProcess, waitForConfirmed } from '../helpers/worker.js'

// Preloaded into the worker: a process warning on demand (SIGUSR2), emitted while it streams, as
// a library would emit one. No spaces: NODE_OPTIONS splits on them.
const WARN_ON_SIGUSR2 =
  "--import=data:text/javascript,process.on('SIGUSR2',()=>process.emitWarning('probe-message','ProbeWarning'))"

let db: TestDatabase
let worker: WorkerProcess | undefined
beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
})
afterEach(async () => {
  await worker?.kill()
  await db.dispose()
})

test('every line the worker prints is its own JSON log line, process warnings included', async () => {
  const slot = uniqueName('slot')
  worker = await spawnWorker({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: inject('kafkaBrokers').join(','),
    OUTBOX_SLOT: slot,
    OUTBOX_TOPIC: `${uniqueName('t')}.{aggregateType}`,
    NODE_OPTIONS: WARN_ON_SIGUSR2,
  })
  await worker.waitForLog(/"msg":"streaming"/)
  // Publishing connects the producer (where Node 24 warned) and confirms the slot.
  await insertEvents(db, [{ aggregateId: '1' }, { aggregateId: '2' }])
  await waitForConfirmed(db, slot, await currentLsn(db))
  worker.child.kill('SIGUSR2')
  await worker.waitForLog(/probe-message/)
  expect(await worker.kill('SIGTERM')).toBe(0)

  const notOurs = worker.output.filter((line) => {
    try {
      return (JSON.parse(line) as { name?: unknown }).name !== 'outbox-worker'
    } catch {
      return true
    }
  })
  expect(notOurs).toEqual([])
  const probe = worker.output.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'probe-message')
  expect(probe).toMatchObject({ level: 40, warning: 'ProbeWarning' })
})
