/** withOutbox against real PostgreSQL: held emits ride with COMMIT, and every way a transaction ends. */
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { afterEach, beforeEach, describe, expect, inject, test } from 'vitest'
import { PrismaClient } from '../../prisma/generated/client.js'
import { OutboxError, outbox, withOutbox } from '../../src/index.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { type AppClient, createAppClient } from '../helpers/prisma.js'
import { createSlot, insertsInto, takeSlotChanges } from '../helpers/wal.js'

let db: TestDatabase
let prisma: AppClient
let slot: string

beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  // One connection: a connection left inside a transaction would fail the next test step.
  prisma = createAppClient(db.url, {}, { withOutbox: true, pool: { max: 1 } })
  slot = uniqueName('slot')
  await createSlot(db, slot)
})
afterEach(async () => {
  await prisma.$disconnect()
  await db.dispose()
})

const event = (aggregateId: string, payload: unknown = { n: 1 }) => ({
  aggregateType: 'order',
  aggregateId,
  type: 'order.created',
  payload: payload as never,
})

async function rows(): Promise<{ aggregateid: string }[]> {
  return db.query('SELECT aggregateid FROM outbox ORDER BY id')
}
async function orders(): Promise<number> {
  return Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM orders'))[0]?.n)
}
const walIds = async () => insertsInto(await takeSlotChanges(db, slot)).map((r) => r.aggregateid)

describe('a committed transaction', () => {
  test('sends its events with the COMMIT: three statements on the wire instead of four', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    const sent: string[] = []
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      ;(client as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
        sent.push(typeof config === 'string' ? config : (config as { text: string }).text)
        return query(config, ...rest)
      }
    })
    const client = new PrismaClient({ adapter: withOutbox(new PrismaPg(pool)) }).$extends(outbox())
    try {
      await client.$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
        await tx.outbox.emit(event('a'))
      })
      expect(sent).toHaveLength(3)
      expect(sent[0]).toBe('BEGIN')
      expect(sent[2]).toMatch(/^\/\* prisma-outbox emit \*\/ INSERT INTO "outbox" .*;\nCOMMIT$/s)
      expect(await rows()).toEqual([{ aggregateid: 'a' }])
    } finally {
      await client.$disconnect()
      await pool.end()
    }
  })

  test('stores exactly what the unwrapped client stores, for text that needs escaping', async () => {
    const tricky = `it's a \\ backslash, a "quote", a tab\t, a newline\n, é, 𝄞, and $1 ;COMMIT;--`
    const full = {
      aggregateType: `agg'${tricky}`,
      aggregateId: tricky,
      type: `type\\${tricky}`,
      payload: { text: tricky, [tricky]: [tricky, 1.5, null, true] },
      headers: { [`h'${tricky}`]: tricky },
      topic: 'orders.v1',
    }
    const plain = createAppClient(db.url)
    try {
      await plain.$transaction(async (tx) => tx.outbox.emit(full))
      await prisma.$transaction(async (tx) => tx.outbox.emitMany([full, full]))
      await prisma.$transaction(async (tx) => tx.outbox.emit(full))
    } finally {
      await plain.$disconnect()
    }
    const stored = await db.query(
      'SELECT aggregatetype, aggregateid, type, payload::text, headers::text, topic FROM outbox ORDER BY id',
    )
    expect(stored).toHaveLength(4)
    for (const row of stored.slice(1)) expect(row).toEqual(stored[0])
    expect(stored[0]?.aggregateid).toBe(tricky)
  })

  test('keeps emit order across emit and emitMany, after the business rows, in one WAL transaction', async () => {
    await prisma.$transaction(async (tx) => {
      await tx.outbox.emit(event('1'))
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emitMany([event('2'), event('3')])
      await tx.outbox.emit(event('4'))
    })
    const messages = await takeSlotChanges(db, slot)
    expect(insertsInto(messages).map((r) => r.aggregateid)).toEqual(['1', '2', '3', '4'])
    expect(messages.filter((m) => m.tag === 'commit')).toHaveLength(1)
  })

  test('reads inside the transaction do not see held events; the commit does', async () => {
    const seenInside = await prisma.$transaction(async (tx) => {
      await tx.outbox.emit(event('a'))
      return tx.outbox.count()
    })
    expect(seenInside).toBe(0)
    expect(await rows()).toHaveLength(1)
  })
})

describe('a transaction that does not commit', () => {
  test('an exception rolls back the business rows, and the held events are never sent', async () => {
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
        await tx.outbox.emit(event('a'))
        throw new Error('payment declined')
      }),
    ).rejects.toThrow('payment declined')
    expect(await orders()).toBe(0)
    expect(await rows()).toEqual([])
    // The connection is reused at once, and clean: the next transaction's events are its own.
    await prisma.$transaction(async (tx) => tx.outbox.emit(event('b')))
    expect(await walIds()).toEqual(['b'])
  })

  test('a failing event fails the COMMIT: $transaction rejects, nothing commits, the connection is clean', async () => {
    await db.query(`ALTER TABLE outbox ADD CONSTRAINT no_bad CHECK (aggregateid <> 'bad')`)
    const error = await prisma
      .$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'cy', total: '1.00' } })
        await tx.outbox.emit(event('fine'))
        await tx.outbox.emit(event('bad'))
      })
      .then(
        () => undefined,
        (e: unknown) => e as { name: string; cause?: { originalCode?: string } },
      )
    // Prisma's DriverAdapterError, as for any failed COMMIT; the SQLSTATE is on its cause.
    expect(error?.name).toBe('DriverAdapterError')
    expect(error?.cause?.originalCode).toBe('23514')
    expect(await orders()).toBe(0)
    expect(await rows()).toEqual([])
    // Same single connection: not left in an aborted transaction.
    expect(await prisma.$queryRawUnsafe('SELECT txid_current_if_assigned() AS xid')).toEqual([{ xid: null }])
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'cy', total: '1.00' } })
      await tx.outbox.emit(event('next'))
    })
    expect(await orders()).toBe(1)
    expect(await walIds()).toEqual(['next'])
  })
})

describe('nested transactions (savepoints)', () => {
  test('a rolled-back savepoint drops its held events; committed ones and the outer ones stay, in order', async () => {
    type Nestable = { $transaction<T>(fn: (tx: AppClient) => Promise<T>): Promise<T> }
    await prisma.$transaction(async (tx) => {
      await tx.outbox.emit(event('outer-1'))
      await (tx as unknown as Nestable).$transaction(async (inner) => {
        await inner.outbox.emit(event('kept'))
        await (inner as unknown as Nestable)
          .$transaction(async (innermost) => {
            await innermost.outbox.emit(event('dropped-deep'))
            throw new Error('innermost fails')
          })
          .catch(() => {})
        await inner.outbox.emit(event('kept-after'))
      })
      await (tx as unknown as Nestable)
        .$transaction(async (inner) => {
          await inner.order.create({ data: { customer: 'gone', total: '1.00' } })
          await inner.outbox.emit(event('dropped'))
          throw new Error('inner fails')
        })
        .catch(() => {})
      await tx.outbox.emit(event('outer-2'))
    })
    expect(await walIds()).toEqual(['outer-1', 'kept', 'kept-after', 'outer-2'])
    expect(await orders()).toBe(0)
  })
})

describe('the array form and outside transactions', () => {
  test('the array form commits its events with the COMMIT', async () => {
    const [order, id, ids] = await prisma.$transaction([
      prisma.order.create({ data: { customer: 'dee', total: '3.00' } }),
      prisma.outbox.emit(event('a')),
      prisma.outbox.emitMany([event('b'), event('c')]),
    ])
    expect(order.customer).toBe('dee')
    expect(typeof id).toBe('string')
    expect(ids).toHaveLength(2)
    expect(await walIds()).toEqual(['a', 'b', 'c'])
  })

  test('the array form rolls back its events when another operation fails', async () => {
    const existing = await prisma.order.create({ data: { customer: 'dee', total: '1.00' } })
    await expect(
      prisma.$transaction([
        prisma.outbox.emit(event('a')),
        prisma.order.create({ data: { id: existing.id, customer: 'dup', total: '1.00' } }),
      ]),
    ).rejects.toThrow()
    expect(await rows()).toEqual([])
    expect(await walIds()).toEqual([])
  })

  test('outside a transaction, emit writes at once', async () => {
    const id = await prisma.outbox.emit(event('now'))
    expect(await db.query('SELECT id FROM outbox')).toEqual([{ id }])
  })
})

describe('the wrapped adapter', () => {
  test('passes through what the adapter offers', async () => {
    const inner = new PrismaPg({ connectionString: db.url })
    const wrapped = withOutbox(inner)
    expect(wrapped.provider).toBe('postgres')
    expect(wrapped.adapterName).toBe(inner.adapterName)
    expect(typeof wrapped.connectToShadowDb).toBe('function')
    const adapter = await wrapped.connect()
    try {
      expect(adapter.getConnectionInfo()).toEqual((await inner.connect()).getConnectionInfo())
      expect(adapter.underlyingDriver()).toBeInstanceOf(pg.Pool)
    } finally {
      await adapter.dispose()
    }
  })

  test('an adapter that prepares statements: a clear error at commit, nothing committed, the connection clean', async () => {
    const factory = new PrismaPg({ connectionString: db.url, max: 1 }, { statementNameGenerator: (q) => q.sql })
    const prepared = new PrismaClient({ adapter: withOutbox(factory) }).$extends(outbox())
    try {
      const commit = prepared.$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'eve', total: '1.00' } })
        await tx.outbox.emit(event('a'))
      })
      await expect(commit).rejects.toThrow(/remove the statementNameGenerator option of PrismaPg/)
      await expect(commit).rejects.toMatchObject({ code: 'OUTBOX_ADAPTER_PREPARES' })
      expect(await orders()).toBe(0)
      expect(await prepared.$queryRawUnsafe('SELECT txid_current_if_assigned() AS xid')).toEqual([{ xid: null }])
    } finally {
      await prepared.$disconnect()
    }
  })

  test('refuses an adapter for another database, saying what to pass', () => {
    const mysqlLike = { provider: 'mysql', adapterName: 'x', connect: async () => ({}) } as never
    expect(() => withOutbox(mysqlLike)).toThrow(OutboxError)
    expect(() => withOutbox(mysqlLike)).toThrow(/pass new PrismaPg/)
  })
})
