/**
 * The first deploy: events committed before the worker first created its slot, and while it
 * started, all reach Kafka, in order per aggregate (the initial snapshot, then the stream from
 * the slot's consistent point), whoever wrote them. A snapshot that does not complete, however the
 * worker ends, leaves no slot behind, so the next start redoes it; a second worker started beside
 * the first waits for its snapshot instead of streaming past it.
 */
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { v7 as uuidv7 } from 'uuid'
import { expect, inject, test } from 'vitest'
import { adminQuery, createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { relayTestFixture } from '../helpers/relay-fixture.js'
import { spawnWorker } from '../helpers/worker.js'
import { startLocalPostgres } from '../services/local-postgres.js'
import { waitUntil } from '../services/ports.js'

let db: TestDatabase
let slot: string
let prefix: string
const { startWorker, consume } = relayTestFixture((fresh) => {
  ;({ db, slot, prefix } = fresh)
})

/** One event per transaction, with a UUIDv7 id as emit() gives it; returns the id. */
async function emit(aggregateId: string, n: number, topic?: string): Promise<string> {
  const id = uuidv7()
  await db.query(
    `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, topic) VALUES ($1, 'order', $2, 'order.created', $3, $4)`,
    [id, aggregateId, JSON.stringify({ n }), topic ?? null],
  )
  return id
}

/** How many different events (by their id header) these records carry: copies count once. */
function distinctIds(messages: { headers: Record<string, string | undefined> }[]): number {
  return new Set(messages.map((m) => m.headers.id)).size
}

/** The slot, or the temporary one its snapshot is taken from (`<slot>_snapshot_…`). */
async function slotExists(): Promise<boolean> {
  const rows = await adminQuery(
    inject('databaseUrl'),
    `SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 OR slot_name LIKE $1 || '_snapshot_%'`,
    [slot],
  )
  return rows.length > 0
}

test('deploy race: events committed before the first start and during it all arrive, in order per aggregate', async () => {
  const consumer = await consume([`${prefix}.order`])
  const sent: { id: string; aggregate: string }[] = []
  let n = 0
  const emitOne = async () => {
    const aggregate = `agg${n % 5}`
    sent.push({ id: await emit(aggregate, n++), aggregate })
  }
  for (let i = 0; i < 300; i++) await emitOne()

  // The app keeps writing while the worker starts, creates its slot and publishes the snapshot.
  let writing = true
  const writer = (async () => {
    while (writing) await emitOne()
  })()
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/)
  // One writer at a time, as an app that orders an aggregate's events (two concurrent writers
  // of one aggregate have no order to keep).
  writing = false
  await writer
  for (let i = 0; i < 50; i++) await emitOne()

  await waitUntil(
    `all ${sent.length} events delivered`,
    async () => distinctIds(consumer.messages) >= sent.length,
    60_000,
  )
  expect(worker.output.join('\n')).toMatch(/initial snapshot: published \d+ rows already in the table/)
  const received = consumer.messages.map((m) => m.headers.id)
  expect(new Set(received)).toEqual(new Set(sent.map((e) => e.id)))
  expect(received.length).toBe(sent.length) // no overlap between the snapshot and the stream
  for (const aggregate of ['agg0', 'agg1', 'agg2', 'agg3', 'agg4']) {
    const expected = sent.filter((e) => e.aggregate === aggregate).map((e) => e.id)
    const got = consumer.messages.filter((m) => m.key === aggregate).map((m) => m.headers.id)
    expect(got).toEqual(expected)
  }
})

test('a snapshot that does not complete leaves no slot: the next start publishes the rows again', async () => {
  const consumer = await consume([`${prefix}.order`])
  const first = await emit('a', 1)
  const poison = await emit('a', 2, 'not a valid topic!')
  const failing = await startWorker({ OUTBOX_ON_POISON: 'stop' })
  expect(await failing.exited).toBe(4)
  expect(failing.output.join('\n')).toContain('initial snapshot did not complete: no slot was made')
  expect(await slotExists()).toBe(false)

  await db.query('DELETE FROM outbox WHERE id = $1', [poison])
  const worker = await startWorker({ OUTBOX_ON_POISON: 'stop' })
  await worker.waitForLog(/initial snapshot: published 1 rows/)
  await waitUntil('the first event', async () => consumer.messages.some((m) => m.headers.id === first), 30_000)
})

test('--snapshot never: the slot is created without publishing what the table holds', async () => {
  const consumer = await consume([`${prefix}.order`])
  const before = await emit('a', 1)
  const worker = await startWorker({ OUTBOX_SNAPSHOT: 'never' })
  await worker.waitForLog(/"msg":"streaming"/)
  const after = await emit('a', 2)
  await waitUntil(
    'the event after the start',
    async () => consumer.messages.some((m) => m.headers.id === after),
    30_000,
  )
  // A snapshot would have sent it first, on the same partition.
  expect(consumer.messages.map((m) => m.headers.id)).not.toContain(before)
  expect(worker.output.join('\n')).not.toMatch(/initial snapshot/)
})

test('a role that may not read the outbox table: exit 3 naming GRANT SELECT and --snapshot never; no slot left', async () => {
  const role = uniqueName('relay')
  await db.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'pw'`)
  try {
    const url = new URL(db.url)
    url.username = role
    url.password = 'pw'
    const worker = await startWorker({ DATABASE_URL: url.toString() })
    expect(await worker.exited).toBe(3)
    expect(worker.output.join('\n')).toContain('may not read the outbox table outbox for the initial snapshot')
    expect(worker.output.join('\n')).toContain('--snapshot never (OUTBOX_SNAPSHOT=never)')
    expect(await slotExists()).toBe(false)
  } finally {
    await adminQuery(inject('databaseUrl'), `DROP ROLE ${role}`)
  }
})

/**
 * A backlog written the way another service writes the table: random UUIDs, plain SQL, several
 * rows per transaction, 20 aggregates. `n` in the payload is the commit order (one writer at a time).
 */
let written = 0
async function writeBacklog(rows: number, perTransaction = 1): Promise<void> {
  for (let done = 0; done < rows; done += perTransaction) {
    const count = Math.min(perTransaction, rows - done)
    await db.query(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
       SELECT gen_random_uuid(), 'order', 'agg' || ((i * 7) % 20), 'order.created', jsonb_build_object('n', i)
         FROM generate_series($1::int, $2::int) AS i ORDER BY i`,
      [written, written + count - 1],
    )
    written += count
  }
}

/** What Kafka holds, per aggregate, as the `n` of each record in the order the topic has them. */
function perAggregate(messages: { key: string | null; value: string | null }[]): Map<string, number[]> {
  const byKey = new Map<string, number[]>()
  for (const m of messages) {
    const list = byKey.get(m.key ?? '') ?? []
    list.push(JSON.parse(m.value ?? '{}').n)
    byKey.set(m.key ?? '', list)
  }
  return byKey
}

/** Each aggregate's events, first copies only, in commit order; every one of `total` present. */
function expectFirstCopiesInOrder(messages: { key: string | null; value: string | null }[], total: number): void {
  const seen = new Set<number>()
  for (const [key, ns] of perAggregate(messages)) {
    const firsts = ns.filter((n) => !seen.has(n) && seen.add(n))
    expect(firsts, `aggregate ${key}`).toEqual([...firsts].sort((a, b) => a - b))
  }
  expect(seen.size).toBe(total)
}

test('snapshot order: rows another writer made (random UUIDs, plain SQL, several per transaction) arrive in commit order per aggregate', async () => {
  written = 0
  await writeBacklog(200)
  await writeBacklog(300, 30)
  const consumer = await consume([`${prefix}.order`])
  const worker = await startWorker()
  await worker.waitForLog(/initial snapshot: published 500 rows/, 60_000)
  await consumer.waitFor(500)
  for (const [key, ns] of perAggregate(consumer.messages)) {
    expect(ns, `aggregate ${key}`).toEqual([...ns].sort((a, b) => a - b))
  }
})

test('kill -9 during the initial snapshot, at several points: the next start publishes every row', async () => {
  written = 0
  // Large enough that the second kill (at 8,000) comes well before the end on a fast machine:
  // the worker publishes about 60,000 rows a second here.
  await writeBacklog(60_000, 1000)
  const consumer = await consume([`${prefix}.order`])
  for (const killAfter of [1000, 8000]) {
    const worker = await startWorker()
    await worker.waitForLog(/initial snapshot: publishing/, 60_000)
    await waitUntil(`${killAfter} records in Kafka`, async () => consumer.messages.length >= killAfter, 60_000, 20)
    await worker.kill('SIGKILL')
    // The fault happened mid-snapshot: the worker never said it finished.
    expect(worker.output.join('\n')).not.toMatch(/initial snapshot: published \d+ rows/)
    // And left no slot that the next start would stream past the rest of the snapshot from.
    await waitUntil('no slot left behind', async () => !(await slotExists()), 10_000)
  }
  const worker = await startWorker()
  await worker.waitForLog(/"msg":"streaming"/, 90_000)
  await waitUntil('every row delivered', async () => distinctIds(consumer.messages) >= written, 60_000)
  expectFirstCopiesInOrder(consumer.messages, written)
})

/**
 * SIGSTOP, once the process's main thread sleeps (waiting for I/O). A freeze that lands between a
 * lock check and the send it lets through (microseconds apart) sends that batch when the process
 * wakes, which no check can prevent (docs/operations.md); this test is about everything after.
 */
function stopWhileWaiting(pid: number): void {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    // /proc/<pid>/stat: "pid (comm) state ...": S is an interruptible sleep.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'S') {
      process.kill(pid, 'SIGSTOP')
      return
    }
  }
  throw new Error(`process ${pid} never waited for I/O within 10 s`)
}

test('a worker frozen mid-snapshot, whose sessions the server ended, sends nothing more when it wakes: the worker that took over is not overtaken', async () => {
  written = 0
  await writeBacklog(3000, 100)
  const consumer = await consume([`${prefix}.order`])
  // One record per send, so the frozen worker still holds rows of its page when it wakes.
  const frozen = await startWorker({ OUTBOX_BATCH_SIZE: '1' })
  await frozen.waitForLog(/initial snapshot: publishing/, 60_000)
  await waitUntil('the snapshot under way', async () => consumer.messages.length >= 100, 60_000, 10)
  const pid = frozen.child.pid as number
  stopWhileWaiting(pid) // a paused VM, a node cut off
  const frozenAt = Date.now()
  try {
    // What the server does to a silent host's sessions once its keepalives go unanswered: the
    // lock and the temporary slot go with them, and another worker takes over.
    await adminQuery(
      inject('databaseUrl'),
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'prisma-outbox initial snapshot' AND datname = $1`,
      [db.name],
    )
    const taker = await startWorker()
    await taker.waitForLog(/"msg":"streaming"/, 60_000)
    await waitUntil(
      'every row from the worker that took over',
      async () => distinctIds(consumer.messages) >= written,
      60_000,
    )
    // A real freeze lasts as long as the server's keepalives (about 25 s): at least longer than
    // the worker trusts a lock check's answer (1 s), which may predate the sessions' end.
    await new Promise((r) => setTimeout(r, Math.max(0, frozenAt + 2000 - Date.now())))
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  await frozen.waitForLog(/initial snapshot did not complete/, 30_000)
  await new Promise((r) => setTimeout(r, 1000)) // anything it still sends is consumed meanwhile
  // Nothing older after the newer: each aggregate's last record in Kafka is its newest event.
  for (const [key, ns] of perAggregate(consumer.messages)) {
    expect(ns.at(-1), `aggregate ${key}`).toBe(Math.max(...ns))
  }
})

test('two workers started together on a fresh slot, writers busy meanwhile: nothing lost, nothing reordered per aggregate', async () => {
  written = 0
  await writeBacklog(20_000, 1000)
  const consumer = await consume([`${prefix}.order`])
  let writing = true
  const writer = (async () => {
    while (writing) await writeBacklog(5)
  })()
  const [a, b] = await Promise.all([startWorker(), startWorker()])
  await waitUntil(
    'one worker streaming, the other standing by',
    async () =>
      [a, b].some((w) => w.output.some((l) => l.includes('"msg":"streaming"'))) &&
      [a, b].some((w) => w.output.some((l) => l.includes('standing by'))),
    90_000,
  )
  await new Promise((r) => setTimeout(r, 1000)) // writes under the streaming worker too
  writing = false
  await writer
  await waitUntil(`all ${written} events delivered`, async () => distinctIds(consumer.messages) >= written, 60_000)
  // One snapshot, then the stream: every event once, in commit order per aggregate.
  expect(consumer.messages.length).toBe(written)
  for (const [key, ns] of perAggregate(consumer.messages)) {
    expect(ns, `aggregate ${key}`).toEqual([...ns].sort((x, y) => x - y))
  }
})

test('with track_commit_timestamp on: transactions that took their ids in one order and committed in the other, and emit()s in a savepoint, arrive in commit order', async () => {
  // A server of its own: the setting needs a restart, and the suite's server keeps the default.
  const server = await startLocalPostgres({ settings: ['track_commit_timestamp = on'] })
  const own = await createTestDatabase(server.url)
  const early = new pg.Client({ connectionString: own.url })
  await early.connect()
  try {
    const insert = (
      client: { query(sql: string, params: unknown[]): Promise<unknown> },
      aggregate: string,
      n: number,
      id = 'gen_random_uuid()',
    ) =>
      client.query(
        `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (${id}, 'order', $1, 'order.created', $2)`,
        [aggregate, JSON.stringify({ n })],
      )
    // `early` takes its transaction id first and commits last.
    await early.query('BEGIN')
    await early.query('SELECT pg_current_xact_id()')
    await insert(own, 'a', 1)
    await insert(early, 'a', 2)
    await early.query('COMMIT')
    // emit() in a nested $transaction: a savepoint, whose rows carry a later transaction id.
    const inSavepoint = new pg.Client({ connectionString: own.url })
    await inSavepoint.connect()
    try {
      await inSavepoint.query('BEGIN')
      await insert(inSavepoint, 'b', 1, `'${uuidv7()}'`)
      await inSavepoint.query('SAVEPOINT s')
      await insert(inSavepoint, 'b', 2, `'${uuidv7()}'`)
      await inSavepoint.query('RELEASE SAVEPOINT s')
      await insert(inSavepoint, 'b', 3, `'${uuidv7()}'`)
      await inSavepoint.query('COMMIT')
    } finally {
      await inSavepoint.end()
    }
    const consumer = await consume([`${prefix}.order`])
    const worker = await spawnWorker({
      DATABASE_URL: own.url,
      KAFKA_BROKERS: inject('kafkaBrokers').join(','),
      OUTBOX_SLOT: slot,
      OUTBOX_TOPIC: `${prefix}.{aggregateType}`,
    })
    try {
      await consumer.waitFor(5)
      expect(Object.fromEntries(perAggregate(consumer.messages))).toEqual({ a: [1, 2], b: [1, 2, 3] })
    } finally {
      await worker.kill()
    }
  } finally {
    await early.end()
    await own.dispose()
    await server.dispose()
  }
})

test('a database whose sessions may not idle in a transaction (idle_in_transaction_session_timeout) still completes a snapshot that outlasts it', async () => {
  written = 0
  await writeBacklog(60_000, 1000)
  // Short, so that the snapshot outlasts it many times over however fast this machine publishes.
  const idleTimeoutMs = 20
  await db.query(`ALTER DATABASE "${db.name}" SET idle_in_transaction_session_timeout = '${idleTimeoutMs}ms'`)
  const consumer = await consume([`${prefix}.order`])
  const worker = await startWorker()
  await worker.waitForLog(/initial snapshot: published 60000 rows/, 60_000)
  // The snapshot itself (from its first log line to its last, the worker's own clock; start-up not
  // counted) lasted long enough that the server would have ended an idle session in a
  // transaction many times over.
  const loggedAt = (message: RegExp) =>
    Date.parse(JSON.parse(worker.output.find((line) => message.test(line)) as string).time)
  const snapshotMs = loggedAt(/initial snapshot: published 60000 rows/) - loggedAt(/initial snapshot: publishing/)
  expect(snapshotMs).toBeGreaterThan(10 * idleTimeoutMs)
  await waitUntil('every row', async () => distinctIds(consumer.messages) >= written, 30_000)
  expect(worker.output.join('\n')).not.toMatch(/did not complete/)
})
