/**
 * One record's attempts in the inbox (inbox/handle-record.ts), on the product's one backoff
 * (worker/retry-policy.ts): what counts as an attempt, parking after the last, waiting out an
 * outage without using one up, and a stop that cuts a wait short but never an attempt.
 */
import { expect, test } from 'vitest'
import { type RecordHandlerDeps, recordHandler, type TransactionClient } from '../../inbox/handle-record.js'
import type { InboxMetrics } from '../../inbox/metrics.js'
import type { InboxRecord } from '../../inbox/record.js'
import type { InboxStore } from '../../inbox/store.js'
import { silentLogger } from '../../worker/operations/logger.js'

const record: InboxRecord = {
  topic: 'orders',
  partition: 0,
  offset: '7',
  key: 'o1',
  value: '{"total":1}',
  headers: { id: 'e1', type: 'OrderPlaced', aggregateType: 'Order' },
  timestamp: 0,
}

/** A database that is down while `down()` says so: Prisma's "can't reach the database server". */
const outage = () => Object.assign(new Error("Can't reach database server"), { code: 'P1001' })

function setup(handler: () => Promise<unknown>, over: Partial<RecordHandlerDeps> = {}, down = () => false) {
  const counts: Record<string, number> = {}
  const parked: { status: string; why: string; tries: number }[] = []
  const counter = (name: string) => ({
    inc: () => {
      counts[name] = (counts[name] ?? 0) + 1
    },
  })
  const metrics = {
    handlerSeconds: { startTimer: () => () => 0 },
    databaseWaits: counter('databaseWaits'),
    parked: counter('parked'),
    retried: counter('retried'),
    handled: counter('handled'),
    duplicates: counter('duplicates'),
    ignored: counter('ignored'),
  } as unknown as InboxMetrics
  const prisma = {
    $transaction: async (fn: (tx: never) => Promise<unknown>) => fn({} as never),
    $queryRawUnsafe: async () => {
      if (down()) throw outage()
      return [{ one: 1 }]
    },
  } as unknown as TransactionClient
  const store = {
    claim: async () => true,
    park: async (
      _db: unknown,
      _id: string,
      status: string,
      _type: string,
      _record: unknown,
      why: string,
      tries: number,
    ) => {
      parked.push({ status, why, tries })
      return true
    },
  } as unknown as InboxStore
  const handle = recordHandler({
    prisma,
    handlers: { OrderPlaced: handler },
    store,
    metrics,
    logger: silentLogger,
    onFailure: 'continue',
    attempts: 3,
    retryInitialMs: 1,
    retryMaxMs: 2,
    transactionTimeoutMs: 1000,
    keepAlive: () => {},
    ...over,
  })
  return { handle, counts, parked }
}

test('a handler that keeps failing is tried `attempts` times, then parked with that count', async () => {
  let calls = 0
  const { handle, counts, parked } = setup(async () => {
    calls++
    throw new Error(`failed ${calls}`)
  })
  expect(await handle(record, new AbortController().signal)).toBe('parked')
  expect(calls).toBe(3)
  expect(counts.retried).toBe(2)
  expect(parked).toEqual([{ status: 'failed', why: 'failed 3', tries: 3 }])
})

test('a handler that passes on a later attempt is handled, not parked', async () => {
  let calls = 0
  const { handle, counts, parked } = setup(async () => {
    if (++calls < 3) throw new Error('not yet')
  })
  expect(await handle(record, new AbortController().signal)).toBe('handled')
  expect(calls).toBe(3)
  expect(counts).toMatchObject({ retried: 2, handled: 1 })
  expect(parked).toEqual([])
})

test('a database outage uses up no attempt: the record waits it out, then has all its attempts', async () => {
  let calls = 0
  const { handle, counts, parked } = setup(async () => {
    calls++
    if (calls <= 4) throw outage()
    throw new Error('the handler fails')
  })
  expect(await handle(record, new AbortController().signal)).toBe('parked')
  expect(calls).toBe(4 + 3)
  expect(counts).toMatchObject({ databaseWaits: 4, retried: 2 })
  expect(parked).toEqual([{ status: 'failed', why: 'the handler fails', tries: 3 }])
})

test('when the database is down after the last attempt, the record waits for it and has one more attempt before parking', async () => {
  let calls = 0
  let downChecks = 0
  const { handle, counts, parked } = setup(
    async () => {
      calls++
      throw new Error('the handler fails')
    },
    {},
    // Down at the first check after the last attempt, up afterwards.
    () => calls === 3 && ++downChecks === 1,
  )
  expect(await handle(record, new AbortController().signal)).toBe('parked')
  expect(calls).toBe(4)
  expect(counts.databaseWaits).toBe(1)
  expect(parked).toEqual([{ status: 'failed', why: 'the handler fails', tries: 4 }])
})

test('a stop cuts the wait between attempts short, and the record is stopped, not parked', async () => {
  const stop = new AbortController()
  let calls = 0
  const { handle, parked } = setup(
    async () => {
      calls++
      setTimeout(() => stop.abort(), 10)
      throw new Error('fails')
    },
    { retryInitialMs: 60_000, retryMaxMs: 60_000 },
  )
  const started = Date.now()
  expect(await handle(record, stop.signal)).toBe('stopped')
  expect(Date.now() - started).toBeLessThan(5_000)
  expect(calls).toBe(1)
  expect(parked).toEqual([])
})

test('a stop never cuts an attempt short: the attempt in hand ends, and its outcome stands', async () => {
  const stop = new AbortController()
  const { handle, counts } = setup(async () => {
    stop.abort()
    await new Promise((resolve) => setTimeout(resolve, 20))
  })
  expect(await handle(record, stop.signal)).toBe('handled')
  expect(counts.handled).toBe(1)
})

test('a stop during a failing attempt: no further attempt and no parking', async () => {
  const stop = new AbortController()
  let calls = 0
  const { handle, parked } = setup(async () => {
    calls++
    stop.abort()
    throw new Error('fails')
  })
  expect(await handle(record, stop.signal)).toBe('stopped')
  expect(calls).toBe(1)
  expect(parked).toEqual([])
})
