/** The write side against real PostgreSQL: atomicity, batching, ordering, concurrency. */
import { afterEach, beforeEach, describe, expect, inject, test } from 'vitest'
import { OutboxError, OutboxValidationError } from '../../src/index.js'
import { checkJson } from '../../src/json.js'
import { createTestDatabase, type TestDatabase, uniqueName } from '../helpers/database.js'
import { type AppClient, createAppClient } from '../helpers/prisma.js'
import { createSlot, insertsInto, takeSlotChanges } from '../helpers/wal.js'

let db: TestDatabase
let prisma: AppClient
let slot: string

beforeEach(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  prisma = createAppClient(db.url)
  slot = uniqueName('slot')
  await createSlot(db, slot)
})
afterEach(async () => {
  await prisma.$disconnect()
  await db.dispose()
})

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

async function count(table: string): Promise<number> {
  const rows = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  return Number(rows[0]?.n)
}

describe('emit in an interactive transaction', () => {
  test('commits the business row and the event together, and the event reaches the WAL with every column', async () => {
    const { order, eventId } = await prisma.$transaction(async (tx) => {
      const order = await tx.order.create({ data: { customer: 'ada', total: '12.50' } })
      const eventId = await tx.outbox.emit({
        aggregateType: 'order',
        aggregateId: order.id,
        type: 'order.created',
        payload: { id: order.id, total: order.total, tags: ['new'], nested: { ok: true, n: null } },
        headers: { tenant: 'acme' },
        topic: 'orders.v1',
      })
      return { order, eventId }
    })
    expect(eventId).toMatch(UUID_V7)
    expect(await count('orders')).toBe(1)

    // order.total is Decimal('12.50'): its own toJSON makes it the string '12.5' (see docs/extension.md).
    const stored = await prisma.outbox.findMany()
    expect(stored).toEqual([
      {
        id: eventId,
        aggregateType: 'order',
        aggregateId: String(order.id),
        type: 'order.created',
        payload: { id: order.id, total: '12.5', tags: ['new'], nested: { ok: true, n: null } },
        headers: { tenant: 'acme' },
        topic: 'orders.v1',
        createdAt: expect.any(Date),
      },
    ])

    const messages = await takeSlotChanges(db, slot)
    const inserts = insertsInto(messages)
    expect(inserts).toEqual([
      {
        id: eventId,
        aggregatetype: 'order',
        aggregateid: String(order.id),
        type: 'order.created',
        payload: { id: order.id, total: '12.5', tags: ['new'], nested: { ok: true, n: null } },
        headers: { tenant: 'acme' },
        topic: 'orders.v1',
        created_at: stored[0]?.createdAt,
      },
    ])
    // The event and the order are one transaction in the WAL: a single begin/commit pair.
    expect(messages.filter((m) => m.tag === 'commit')).toHaveLength(1)
  })

  test('an exception after emit rolls back both, and nothing reaches the WAL', async () => {
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { customer: 'bob', total: '1.00' } })
        await tx.outbox.emit({ aggregateType: 'order', aggregateId: '1', type: 'order.created', payload: {} })
        throw new Error('payment declined')
      }),
    ).rejects.toThrow('payment declined')
    expect(await count('orders')).toBe(0)
    expect(await count('outbox')).toBe(0)
    expect(insertsInto(await takeSlotChanges(db, slot))).toEqual([])
  })

  test('emit on the root client outside a transaction commits on its own', async () => {
    const id = await prisma.outbox.emit({ aggregateType: 'user', aggregateId: 'u1', type: 'user.seen', payload: 1 })
    expect(await prisma.outbox.findUnique({ where: { id } })).toMatchObject({ id, payload: 1 })
  })
})

describe('emit in the array form of $transaction', () => {
  test('commits with the other operations and resolves to the event id', async () => {
    const [order, eventId] = await prisma.$transaction([
      prisma.order.create({ data: { customer: 'cy', total: '3.00' } }),
      prisma.outbox.emit({ aggregateType: 'order', aggregateId: 'a1', type: 'order.created', payload: { n: 1 } }),
    ])
    expect(order.customer).toBe('cy')
    expect(eventId).toMatch(UUID_V7)
    expect(await count('outbox')).toBe(1)
    expect(insertsInto(await takeSlotChanges(db, slot)).map((r) => r.id)).toEqual([eventId])
  })

  test('rolls back with the other operations when one of them fails', async () => {
    const existing = await prisma.order.create({ data: { customer: 'dee', total: '1.00' } })
    await expect(
      prisma.$transaction([
        prisma.outbox.emit({ aggregateType: 'order', aggregateId: 'a1', type: 'order.created', payload: {} }),
        prisma.outbox.emitMany([{ aggregateType: 'order', aggregateId: 'a1', type: 'order.paid', payload: {} }]),
        // Fails on the primary key after the events were written in the same transaction.
        prisma.order.create({ data: { id: existing.id, customer: 'dup', total: '1.00' } }),
      ]),
    ).rejects.toThrow()
    expect(await count('outbox')).toBe(0)
    expect(await count('orders')).toBe(1)
  })
})

describe('emitMany', () => {
  test('writes 1,000 events in one statement, in order, and resolves to their ids in order', async () => {
    const events = Array.from({ length: 1000 }, (_, i) => ({
      aggregateType: 'order',
      aggregateId: `agg-${i % 10}`,
      type: 'order.line',
      payload: { line: i },
    }))
    const ids = await prisma.$transaction(async (tx) => tx.outbox.emitMany(events))
    expect(ids).toHaveLength(1000)
    expect(new Set(ids).size).toBe(1000)
    // UUIDv7 ids made in one call are strictly increasing, so they sort like emit order.
    expect([...ids].sort()).toEqual(ids)

    // Rows written by one statement share its command id (cmin): one statement, not 1,000.
    const commands = await db.query<{ cmin: string }>('SELECT DISTINCT cmin::text AS cmin FROM outbox')
    expect(commands).toHaveLength(1)

    const inserts = insertsInto(await takeSlotChanges(db, slot))
    expect(inserts.map((r) => r.id)).toEqual(ids)
    expect(inserts.map((r) => (r.payload as { line: number }).line)).toEqual(events.map((_, i) => i))
  })

  test('an empty list writes nothing and resolves to []', async () => {
    expect(await prisma.outbox.emitMany([])).toEqual([])
    expect(await count('outbox')).toBe(0)
  })
})

test('20 concurrent callers: every committed event is stored exactly once, no rolled-back one', async () => {
  const committed: string[] = []
  const callers = Array.from({ length: 20 }, (_, caller) =>
    prisma
      .$transaction(
        async (tx) => {
          const ids: string[] = []
          for (let i = 0; i < 10; i++) {
            ids.push(
              await tx.outbox.emit({
                aggregateType: 'c',
                aggregateId: `caller-${caller}`,
                type: 't',
                payload: { caller, i },
              }),
            )
          }
          if (caller % 5 === 0) throw new Error('rolled back on purpose')
          return ids
          // 20 callers share a pool of 10: on a loaded machine Prisma's default 2 s wait for a
          // connection is not enough, and a timed-out caller is not what this test is about.
        },
        { maxWait: 60_000, timeout: 60_000 },
      )
      .then(
        (ids) => committed.push(...ids),
        () => {},
      ),
  )
  await Promise.all(callers)
  expect(committed).toHaveLength(160)
  const stored = await db.query<{ id: string }>('SELECT id FROM outbox')
  expect(stored.map((r) => r.id).sort()).toEqual([...committed].sort())
  const walIds = insertsInto(await takeSlotChanges(db, slot)).map((r) => r.id as string)
  expect(walIds.sort()).toEqual([...committed].sort())
})

describe('validation: bad events throw OutboxValidationError before any SQL', () => {
  const valid = { aggregateType: 'order', aggregateId: 'o1', type: 'order.created', payload: { ok: true } }
  const cycle: Record<string, unknown> = { a: 1 }
  cycle.self = cycle
  const cases: [string, unknown, string][] = [
    ['missing aggregateType', { ...valid, aggregateType: undefined }, 'aggregateType'],
    ['empty aggregateType', { ...valid, aggregateType: '' }, 'aggregateType'],
    ['missing aggregateId', { ...valid, aggregateId: undefined }, 'aggregateId'],
    ['blank aggregateId', { ...valid, aggregateId: '  ' }, 'aggregateId'],
    ['missing type', { ...valid, type: undefined }, 'type'],
    ['empty type', { ...valid, type: '' }, 'type'],
    ['missing payload', { ...valid, payload: undefined }, 'payload'],
    ['BigInt in payload', { ...valid, payload: { amount: 10n } }, 'payload.amount'],
    ['cycle in payload', { ...valid, payload: cycle }, 'payload.self'],
    ['function in payload', { ...valid, payload: { f: () => 1 } }, 'payload.f'],
    ['symbol in payload', { ...valid, payload: { s: Symbol('x') } }, 'payload.s'],
    ['undefined nested in payload', { ...valid, payload: { a: [1, { b: undefined }] } }, 'payload.a[1].b'],
    ['undefined in an array', { ...valid, payload: [1, undefined] }, 'payload[1]'],
    ['NaN in payload', { ...valid, payload: { x: Number.NaN } }, 'payload.x'],
    ['Infinity in payload', { ...valid, payload: { x: Number.POSITIVE_INFINITY } }, 'payload.x'],
    ['Map in payload', { ...valid, payload: { m: new Map([[1, 2]]) } }, 'payload.m'],
    ['non-string header', { ...valid, headers: { retries: 3 } }, 'headers.retries'],
    ['reserved header', { ...valid, headers: { id: 'mine' } }, 'headers.id'],
    ['topic with a space', { ...valid, topic: 'orders v1' }, 'topic'],
    ['topic ".."', { ...valid, topic: '..' }, 'topic'],
    ['topic too long', { ...valid, topic: 'a'.repeat(250) }, 'topic'],
    ['oversize event', { ...valid, payload: { blob: 'x'.repeat(1024 * 1024) } }, 'event'],
    // 700 KB as JSON.stringify writes it, 1.05 MB as jsonb prints it (", " between items).
    ['oversize only as jsonb prints it', { ...valid, payload: new Array(350_000).fill(0) }, 'event'],
    ['null aggregateId', { ...valid, aggregateId: null }, 'aggregateId'],
    ['NUL in aggregateType', { ...valid, aggregateType: 'or\0der' }, 'aggregateType'],
    ['NUL in aggregateId', { ...valid, aggregateId: 'o\u00001' }, 'aggregateId'],
    ['NUL in type', { ...valid, type: 'order\0' }, 'type'],
    ['NUL in a payload string', { ...valid, payload: { lines: [{ note: 'a\0b' }] } }, 'payload.lines[0].note'],
    ['NUL in a payload key', { ...valid, payload: { nested: { 'a\0b': 1 } } }, 'payload.nested'],
    ['NUL in a header value', { ...valid, headers: { tenant: 'acme\0' } }, 'headers.tenant'],
    ['NUL in a header name', { ...valid, headers: { 'ten\0ant': 'acme' } }, 'headers'],
    ['lone surrogate in a payload string', { ...valid, payload: { name: 'smile \ud83d' } }, 'payload.name'],
    ['lone surrogate in aggregateId', { ...valid, aggregateId: '\udc00' }, 'aggregateId'],
    ['lone surrogate in a header value', { ...valid, headers: { who: '\ud800x' } }, 'headers.who'],
    ['invalid Date in payload', { ...valid, payload: { at: [new Date('nope')] } }, 'payload.at[0]'],
  ]

  test.each(cases)('%s', async (_name, event, field) => {
    const attempt = prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { customer: 'val', total: '1.00' } })
      return tx.outbox.emit(event as never)
    })
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(OutboxValidationError)
    expect((error as OutboxValidationError).field).toBe(field)
    expect((error as OutboxValidationError).code).toBe('OUTBOX_INVALID_EVENT')
    expect((error as Error).message).toContain(field)
    expect(await count('outbox')).toBe(0)
    expect(await count('orders')).toBe(0)
  })

  test('the messages name what is wrong in words', async () => {
    const messageOf = (event: unknown) =>
      prisma.outbox.emit(event as never).then(
        () => '',
        (e: Error) => e.message,
      )
    expect(await messageOf({ ...valid, aggregateId: null })).toBe(
      'invalid outbox event: aggregateId is null; pass a non-empty string',
    )
    expect(await messageOf({ ...valid, payload: { note: 'a\0' } })).toBe(
      'invalid outbox event: payload.note contains a NUL character (\\u0000), which PostgreSQL cannot store; remove it (or encode binary data, e.g. as base64)',
    )
    expect(await messageOf({ ...valid, payload: { 'k\0': 1 } })).toMatch(
      /^invalid outbox event: payload has a key "k\\u0000" that contains a NUL character/,
    )
    expect(await messageOf({ ...valid, payload: { at: new Date('nope') } })).toBe(
      'invalid outbox event: payload.at is an invalid Date, which JSON turns into null; pass a valid Date or null',
    )
    expect(await messageOf({ ...valid, payload: '\ud83d' })).toMatch(
      /^invalid outbox event: payload contains half of a UTF-16 surrogate pair/,
    )
  })

  test('a bad event in the array form fails the batch before any of it is sent', async () => {
    const placeOrder = async () =>
      prisma.$transaction([
        prisma.order.create({ data: { customer: 'arr', total: '1.00' } }),
        prisma.outbox.emit({ ...valid, aggregateId: '' }),
      ])
    await expect(placeOrder()).rejects.toBeInstanceOf(OutboxValidationError)
    expect(await count('orders')).toBe(0)
    expect(await count('outbox')).toBe(0)
  })

  test('emitMany names the index of the bad event and writes none of them', async () => {
    const error = await prisma.outbox.emitMany([valid, { ...valid, type: '' }]).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((error as OutboxValidationError).field).toBe('events[1].type')
    expect(await count('outbox')).toBe(0)
  })

  test('a smaller maxEventBytes is enforced', async () => {
    const strict = createAppClient(db.url, { maxEventBytes: 200 })
    await expect(strict.outbox.emit({ ...valid, payload: 'x'.repeat(300) })).rejects.toThrow(
      /over the 200-byte maximum/,
    )
    await strict.$disconnect()
  })
})

test('emit measures the payload as PostgreSQL prints it, byte for byte, as the worker will', async () => {
  const payloads: unknown[] = [
    new Array(1000).fill(0),
    { b: [1, 2, { c: null }], a: 'x', nested: { deeper: { list: [true, false] } } },
    [1e21, 1.5e-7, 5e-324, 1.7976931348623157e308, -2.5e-10, 123.456, -0, 0.1 + 0.2],
    { text: 'é✓ "quoted" back\\slash\n\ttab\u0001\u001f\u007f 😀', '😀 key': 'v' },
    { when: new Date(0), decimal: { toJSON: () => '12.50' } },
    [],
    {},
    'plain',
    null,
  ]
  for (const payload of payloads) {
    const id = await prisma.outbox.emit({ aggregateType: 'm', aggregateId: 'k', type: 't', payload: payload as never })
    const [stored] = await db.query<{ text: string; bytes: number }>(
      'SELECT payload::text AS text, octet_length(payload::text) AS bytes FROM outbox WHERE id = $1',
      [id],
    )
    expect({ payload: stored?.text, bytes: checkJson(payload, 'payload') }).toEqual({
      payload: stored?.text,
      bytes: stored?.bytes,
    })
  }
})

test('without the outbox table, emit names the migration and the command that applies it', async () => {
  await db.query('DROP TABLE outbox')
  const event = { aggregateType: 'order', aggregateId: 'o1', type: 'order.created', payload: {} }
  const message =
    'prisma-outbox: the outbox table "outbox" does not exist in this database: apply the outbox migration (written by npx outbox-worker init) with npx prisma migrate deploy (or migrate dev)'
  // Thunks: $transaction starts at once, so a rejection made before this loop awaits it would be
  // reported as unhandled.
  const attempts = [
    () => prisma.$transaction(async (tx) => tx.outbox.emit(event)),
    () => prisma.outbox.emitMany([event, event]),
    () => prisma.$transaction([prisma.order.count(), prisma.outbox.emit(event)]),
  ]
  for (const attempt of attempts) {
    const error = await attempt().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(OutboxError)
    expect(error).toMatchObject({ code: 'OUTBOX_NO_TABLE', message })
    // Prisma's own error stays available as the cause.
    expect((error as Error).cause).toMatchObject({ code: 'P2010' })
  }
})
