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

describe('the extended client', () => {
  test('tx.outbox.emit takes an OutboxEvent and resolves to the event id', () => {
    void prisma.$transaction(async (tx) => {
      expectTypeOf(tx.outbox.emit).parameter(0).toEqualTypeOf<OutboxEvent>()
      expectTypeOf(tx.outbox.emit).returns.resolves.toEqualTypeOf<string>()
      expectTypeOf(tx.outbox.emitMany).parameter(0).toEqualTypeOf<readonly OutboxEvent[]>()
      expectTypeOf(tx.outbox.emitMany).returns.resolves.toEqualTypeOf<string[]>()
      // The model keeps Prisma's own methods.
      expectTypeOf(tx.outbox.findMany).toBeFunction()
    })
  })

  test('the array form of $transaction types the emit result as the id', () => {
    const batch = () => prisma.$transaction([prisma.order.count(), prisma.outbox.emit({} as OutboxEvent)])
    expectTypeOf(batch).returns.resolves.toEqualTypeOf<[number, string]>()
  })
})
