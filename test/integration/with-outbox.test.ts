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

/**
 * Each committed transaction the slot holds: how many orders it inserted, and its events. Needs
 * the publication `orders_and_outbox`, made before the transactions.
 */
async function walTransactions(): Promise<{ orders: number; events: unknown[] }[]> {
  const committed: { orders: number; events: unknown[] }[] = []
  let current = { orders: 0, events: [] as unknown[] }
  for (const message of await takeSlotChanges(db, slot, 'orders_and_outbox')) {
    if (message.tag === 'begin') current = { orders: 0, events: [] }
    if (message.tag === 'insert' && message.relation.name === 'orders') current.orders++
    if (message.tag === 'insert' && message.relation.name === 'outbox') current.events.push(message.new.aggregateid)
    if (message.tag === 'commit') committed.push(current)
  }
  return committed
}

interface SqlQuery {
  sql: string
  args: unknown[]
  argTypes: unknown[]
}
interface Tx {
  executeRaw(query: SqlQuery): Promise<number>
  queryRaw(query: SqlQuery): Promise<unknown>
  commit(): Promise<void>
  rollback(): Promise<void>
}
const sql = (text: string): SqlQuery => ({ sql: text, args: [], argTypes: [] })

/**
 * `factory` whose transactions have the methods `replace(tx)` returns in place of their own: a
 * stand-in for a Prisma version, or an adapter, that ends transactions another way.
 */
function replacingInTransactions<F extends PrismaPg>(factory: F, replace: (tx: Tx) => Partial<Tx>): F {
  const layer = <T extends object>(target: T, overrides: object): T =>
    new Proxy(target, {
      get(object, property) {
        if (Object.hasOwn(overrides, property)) return (overrides as Record<PropertyKey, unknown>)[property]
        const value = Reflect.get(object, property, object)
        return typeof value === 'function' ? value.bind(object) : value
      },
    })
  return layer(factory, {
    async connect() {
      const adapter = await factory.connect()
      return layer(adapter, {
        async startTransaction(...args: Parameters<typeof adapter.startTransaction>) {
          const tx = (await adapter.startTransaction(...args)) as unknown as Tx
          return layer(tx, replace(tx))
        },
      })
    },
  })
}

/** A client with the outbox extension on `factory`, disconnected after the test. */
const extraClients: { $disconnect(): Promise<void> }[] = []
function clientOn(factory: PrismaPg): AppClient {
  const client = new PrismaClient({ adapter: factory }).$extends(outbox())
  extraClients.push(client)
  return client as unknown as AppClient
}
afterEach(async () => {
  await Promise.all(extraClients.splice(0).map((c) => c.$disconnect()))
})

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

describe('a transaction ended other than by COMMIT through executeRaw', () => {
  beforeEach(async () => {
    await db.query('CREATE PUBLICATION orders_and_outbox FOR TABLE orders, outbox')
  })

  // An adapter whose commit() commits: it sends COMMIT itself (as an adapter that does not leave
  // COMMIT to Prisma would), then releases the connection.
  const committingAdapter = () =>
    replacingInTransactions(new PrismaPg({ connectionString: db.url, max: 1 }), (tx) => ({
      async commit() {
        await tx.executeRaw(sql('COMMIT'))
        await tx.commit()
      },
    }))
  // Stands in for a Prisma version that ends the transaction with commit() alone: the COMMIT that
  // Prisma 7.10 sends through executeRaw first is swallowed.
  const commitOnly = (factory: PrismaPg) =>
    replacingInTransactions(factory, (tx) => ({
      executeRaw: async (query) => (query.sql === 'COMMIT' ? 0 : tx.executeRaw(query)),
    }))

  test('by commit(): the events commit with the rows, in one transaction', async () => {
    const client = clientOn(commitOnly(withOutbox(committingAdapter())))
    await client.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('a'))
    })
    expect(await walTransactions()).toEqual([{ orders: 1, events: ['a'] }])
  })

  test('by commit(), with a failing event: $transaction rejects, nothing commits, the connection is released clean', async () => {
    await db.query(`ALTER TABLE outbox ADD CONSTRAINT no_bad CHECK (aggregateid <> 'bad')`)
    const client = clientOn(commitOnly(withOutbox(committingAdapter())))
    await expect(
      client.$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
        await tx.outbox.emit(event('bad'))
      }),
    ).rejects.toMatchObject({ cause: { originalCode: '23514' } })
    expect(await orders()).toBe(0)
    expect(await rows()).toEqual([])
    // The one connection went back to the pool, outside any transaction.
    expect(await client.$queryRawUnsafe('SELECT txid_current_if_assigned() AS xid')).toEqual([{ xid: null }])
    await client.$transaction(async (tx) => tx.outbox.emit(event('next')))
    expect(await walTransactions()).toEqual([{ orders: 0, events: ['next'] }])
  })

  test('by COMMIT spelled otherwise: the events commit with the rows, in one transaction', async () => {
    const spellings = [
      'commit',
      'COMMIT;',
      'END',
      'COMMIT WORK',
      ' \n Commit Transaction ;\n',
      'end work;',
      'COMMIT AND NO CHAIN',
    ]
    let spelling = 'COMMIT'
    const client = clientOn(
      replacingInTransactions(withOutbox(new PrismaPg({ connectionString: db.url, max: 1 })), (tx) => ({
        executeRaw: (query) => tx.executeRaw(query.sql === 'COMMIT' ? sql(spelling) : query),
      })),
    )
    for (spelling of spellings) {
      await client.$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
        await tx.outbox.emit(event(spelling))
      })
    }
    expect(await walTransactions()).toEqual(spellings.map((s) => ({ orders: 1, events: [s] })))
  })

  test('by ROLLBACK spelled otherwise: the held events are dropped, the connection is clean', async () => {
    let spelling = 'ROLLBACK'
    const client = clientOn(
      replacingInTransactions(withOutbox(new PrismaPg({ connectionString: db.url, max: 1 })), (tx) => ({
        executeRaw: (query) => tx.executeRaw(query.sql === 'ROLLBACK' ? sql(spelling) : query),
      })),
    )
    for (spelling of ['rollback', 'ROLLBACK;', 'ABORT', 'rollback work', ' Abort Transaction ;']) {
      await expect(
        client.$transaction(async (tx) => {
          await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
          await tx.outbox.emit(event(spelling))
          throw new Error('declined')
        }),
      ).rejects.toThrow('declined')
    }
    await client.$transaction(async (tx) => tx.outbox.emit(event('next')))
    expect(await walTransactions()).toEqual([{ orders: 0, events: ['next'] }])
  })

  test("by the app's own COMMIT or END, through $executeRaw or $queryRaw: the events commit with the rows", async () => {
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('a'))
      await tx.$executeRawUnsafe('commit')
    })
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
      await tx.outbox.emit(event('b'))
      await tx.$queryRawUnsafe('END;')
    })
    expect(await walTransactions()).toEqual([
      { orders: 1, events: ['a'] },
      { orders: 1, events: ['b'] },
    ])
  })

  test('by COMMIT AND CHAIN: the events so far commit with it; later ones with the next COMMIT', async () => {
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('first'))
      await tx.$executeRawUnsafe('COMMIT AND CHAIN')
      await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
      await tx.outbox.emit(event('second'))
    })
    expect(await walTransactions()).toEqual([
      { orders: 1, events: ['first'] },
      { orders: 1, events: ['second'] },
    ])
  })

  test('by ROLLBACK AND CHAIN: the events so far are dropped; later ones commit', async () => {
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('dropped'))
      await tx.$executeRawUnsafe('rollback and chain')
      await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
      await tx.outbox.emit(event('kept'))
    })
    expect(await walTransactions()).toEqual([{ orders: 1, events: ['kept'] }])
  })

  // After a COMMIT or ROLLBACK without AND CHAIN the session is outside any transaction: PostgreSQL
  // commits each later statement on its own, so each later event must commit as its statement runs,
  // not wait for an end that no longer comes (Prisma's ROLLBACK here rolls back nothing).
  test.each([
    ['COMMIT, with events held', 'COMMIT', ['before'], [{ orders: 1, events: ['before'] }]],
    ['COMMIT, with none held', 'COMMIT', [], [{ orders: 1, events: [] }]],
    ['ROLLBACK, with events held', 'ROLLBACK', ['before'], []],
    ['END among other statements, with none held', 'SELECT 1; END', [], [{ orders: 1, events: [] }]],
  ])("by the app's own %s: later rows and events commit as they run, as PostgreSQL runs them", async (_, ending, before, ended) => {
    const attempt = prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      for (const id of before) await tx.outbox.emit(event(id))
      await tx.$executeRawUnsafe(ending)
      await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
      await tx.outbox.emit(event('after'))
      throw new Error('declined')
    })
    await expect(attempt).rejects.toThrow('declined')
    expect(await walTransactions()).toEqual([...ended, { orders: 1, events: [] }, { orders: 0, events: ['after'] }])
    // The connection is clean: the next transaction holds its events for its COMMIT again.
    await prisma.$transaction(async (tx) => tx.outbox.emit(event('next')))
    expect(await walTransactions()).toEqual([{ orders: 0, events: ['next'] }])
  })

  test("by the app's own COMMIT after a refused statement: it rolls back, and later rows and events commit as they run", async () => {
    let commitError: unknown
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('before'))
      await tx.$executeRawUnsafe('SELECT 1; COMMIT').catch(() => {})
      // Like COMMIT in an aborted transaction: it rolls back, and the session leaves the transaction.
      commitError = await tx.$executeRawUnsafe('COMMIT').catch((e: unknown) => e)
      await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
      await tx.outbox.emit(event('after'))
    })
    expect(commitError).toMatchObject({ code: 'OUTBOX_TRANSACTION_CONTROL' })
    expect(await walTransactions()).toEqual([
      { orders: 1, events: [] },
      { orders: 0, events: ['after'] },
    ])
  })

  test.each([
    ['COMMIT among other statements', 'UPDATE orders SET customer = customer; COMMIT'],
    ['PREPARE TRANSACTION', "PREPARE TRANSACTION 'p1'"],
    ['a savepoint rolled back in raw SQL', 'ROLLBACK TO SAVEPOINT s1'],
  ])('by %s, with events held: refused with OUTBOX_TRANSACTION_CONTROL, nothing commits', async (_, statement) => {
    const attempt = prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe('SAVEPOINT s1')
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('a'))
      await tx.$executeRawUnsafe(statement)
    })
    // Prisma hands the adapter's error on in its own (PrismaClientKnownRequestError), with our code.
    await expect(attempt).rejects.toMatchObject({ code: 'OUTBOX_TRANSACTION_CONTROL' })
    await expect(attempt).rejects.toThrow(/withOutbox cannot .* nothing of it will commit/)
    expect(await orders()).toBe(0)
    expect(await rows()).toEqual([])
    expect(await prisma.$queryRawUnsafe('SELECT txid_current_if_assigned() AS xid')).toEqual([{ xid: null }])
  })

  test('a refused statement whose error the app catches: the COMMIT rolls back and rethrows it', async () => {
    const attempt = prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'ada', total: '1.00' } })
      await tx.outbox.emit(event('a'))
      await tx.$executeRawUnsafe('SELECT 1; COMMIT').catch(() => {})
      await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
    })
    await expect(attempt).rejects.toBeInstanceOf(OutboxError)
    await expect(attempt).rejects.toMatchObject({ code: 'OUTBOX_TRANSACTION_CONTROL' })
    expect(await orders()).toBe(0)
    expect(await rows()).toEqual([])
    await prisma.$transaction(async (tx) => tx.outbox.emit(event('next')))
    expect(await walTransactions()).toEqual([{ orders: 0, events: ['next'] }])
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
