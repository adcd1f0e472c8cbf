import { PrismaPg } from '@prisma/adapter-pg'
import { describe, expectTypeOf, test } from 'vitest'
import { PrismaClient } from '../../prisma/generated/client.js'
import { type JsonValue, type OutboxEvent, outbox } from '../../src/index.js'

const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://unused' }) }).$extends(
  outbox(),
)

describe('the outbox event type', () => {
  test('has the documented fields, with optional headers and topic', () => {
    expectTypeOf<OutboxEvent>().toHaveProperty('aggregateType').toEqualTypeOf<string>()
    expectTypeOf<OutboxEvent>().toHaveProperty('aggregateId').toEqualTypeOf<string | number | bigint>()
    expectTypeOf<OutboxEvent>().toHaveProperty('type').toEqualTypeOf<string>()
    expectTypeOf<OutboxEvent>().toHaveProperty('payload').toEqualTypeOf<JsonValue>()
    expectTypeOf<OutboxEvent<OrderCreated>>().toHaveProperty('payload').toEqualTypeOf<OrderCreated>()
    expectTypeOf<OutboxEvent['headers']>().toEqualTypeOf<Record<string, string> | undefined>()
    expectTypeOf<OutboxEvent['topic']>().toEqualTypeOf<string | undefined>()
  })

  test('rejects non-string header values and non-JSON payloads at compile time', () => {
    // @ts-expect-error header values are strings
    const badHeader: OutboxEvent = { aggregateType: 'a', aggregateId: '1', type: 't', payload: 1, headers: { n: 1 } }
    // @ts-expect-error a function is not JSON
    const badPayload: OutboxEvent = { aggregateType: 'a', aggregateId: '1', type: 't', payload: () => 1 }
    expectTypeOf(badHeader).toEqualTypeOf<OutboxEvent>()
    expectTypeOf(badPayload).toEqualTypeOf<OutboxEvent>()
  })
})

/** Users type events with interfaces, which have no index signature. */
interface OrderCreated {
  id: number
  total: string
  note?: string
  lines: { sku: string; quantity: number }[]
  at: Date
}
interface WithCallback {
  id: number
  notify: () => void
}
const order: OrderCreated = { id: 1, total: '12.50', lines: [{ sku: 'a', quantity: 1 }], at: new Date() }
const event = { aggregateType: 'order', aggregateId: 1, type: 'order.created' }

describe('the extended client', () => {
  test('tx.outbox.emit and emitMany resolve to the event ids', () => {
    void prisma.$transaction(async (tx) => {
      expectTypeOf(tx.outbox.emit({ ...event, payload: order })).resolves.toEqualTypeOf<string>()
      expectTypeOf(tx.outbox.emitMany([{ ...event, payload: order }])).resolves.toEqualTypeOf<string[]>()
      // The model keeps Prisma's own methods.
      expectTypeOf(tx.outbox.findMany).toBeFunction()
    })
  })

  test('payloads typed with an interface, a type alias, JsonValue or OutboxEvent<T> are accepted', () => {
    void prisma.$transaction(async (tx) => {
      await tx.outbox.emit({ ...event, payload: order })
      await tx.outbox.emit({ ...event, payload: { id: 1, tags: ['a', null], when: new Date(), nested: { ok: true } } })
      await tx.outbox.emit({ ...event, payload: 'text' })
      await tx.outbox.emit({ ...event, payload: null })
      await tx.outbox.emit({ ...event, payload: {} as JsonValue })
      const typed: OutboxEvent<OrderCreated> = { ...event, payload: order }
      await tx.outbox.emit(typed)
      const plain: OutboxEvent = { ...event, payload: [1, 2] }
      await tx.outbox.emitMany([typed, plain, { ...event, payload: { n: 1 } }])
      await tx.outbox.emitMany([1, 2].map((n) => ({ ...event, payload: { n } })))
    })
  })

  test('values JSON cannot carry are rejected at compile time', () => {
    void prisma.$transaction(async (tx) => {
      // @ts-expect-error a function is not JSON
      await tx.outbox.emit({ ...event, payload: { run: () => 1 } })
      // @ts-expect-error an interface with a method is not JSON
      await tx.outbox.emit({ ...event, payload: {} as WithCallback })
      // @ts-expect-error BigInt is not JSON
      await tx.outbox.emit({ ...event, payload: { n: 1n } })
      // @ts-expect-error a symbol is not JSON
      await tx.outbox.emit({ ...event, payload: { s: Symbol('s') } })
      // @ts-expect-error undefined in an array becomes null
      await tx.outbox.emit({ ...event, payload: [1, undefined] })
      // @ts-expect-error a Map serializes as {}
      await tx.outbox.emit({ ...event, payload: new Map<string, number>() })
      // @ts-expect-error unknown may be anything
      await tx.outbox.emit({ ...event, payload: {} as unknown })
      await tx.outbox.emitMany([
        { ...event, payload: order },
        // @ts-expect-error in emitMany too, in any element
        { ...event, payload: { run: () => 1 } },
      ])
      // @ts-expect-error a misspelt field is not dropped silently
      await tx.outbox.emitMany([{ ...event, payload: order, header: { tenant: 'acme' } }])
      // @ts-expect-error header values are strings
      await tx.outbox.emit({ ...event, payload: order, headers: { n: 1 } })
    })
  })

  test('the array form of $transaction types the emit result as the id', () => {
    const batch = () => prisma.$transaction([prisma.order.count(), prisma.outbox.emit({ ...event, payload: order })])
    expectTypeOf(batch).returns.resolves.toEqualTypeOf<[number, string]>()
  })
})
