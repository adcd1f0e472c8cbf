import { PrismaPg } from '@prisma/adapter-pg'
import { describe, expectTypeOf, test } from 'vitest'
import { createInbox, type InboxEvent } from '../../inbox/index.js'
import { PrismaClient } from '../../prisma/generated/client.js'
import { type EventOf, type JsonValue, outbox } from '../../src/index.js'

const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://unused' }) }).$extends(
  outbox(),
)
const kafka = { brokers: ['localhost:9092'] }

/** The map both sides share: event type → payload. */
interface OrderEvents {
  'order.created': { orderId: number; total: string }
  'order.cancelled': { orderId: number; reason: string }
}

describe('typed handlers', () => {
  test('the event type selects the payload type, and tx is the transaction client', () => {
    createInbox<OrderEvents, typeof prisma>({
      prisma,
      kafka,
      topics: ['order'],
      group: 'billing',
      name: 'billing',
      handlers: {
        'order.created': async (event, tx) => {
          expectTypeOf(event.payload).toEqualTypeOf<{ orderId: number; total: string }>()
          expectTypeOf(event.type).toEqualTypeOf<'order.created'>()
          expectTypeOf(tx.order.create).toBeFunction()
          expectTypeOf(tx.outbox.emit).toBeFunction()
        },
        'order.cancelled': async (event) => {
          expectTypeOf(event.payload.reason).toEqualTypeOf<string>()
        },
      },
    })
  })

  test('a handler for a type the map lacks, or a wrong payload field, does not compile', () => {
    createInbox<OrderEvents, typeof prisma>({
      prisma,
      kafka,
      topics: ['order'],
      group: 'g',
      name: 'n',
      handlers: {
        // @ts-expect-error not in the map
        'order.shipped': async () => {},
        'order.created': async (event) => {
          // @ts-expect-error no such payload field
          void event.payload.customer
        },
      },
    })
  })

  test('without a map, payloads are JSON and any type is accepted', () => {
    createInbox<Record<string, JsonValue>, typeof prisma>({
      prisma,
      kafka,
      topics: ['order'],
      group: 'g',
      name: 'n',
      handlers: {
        anything: async (event) => {
          expectTypeOf(event).toEqualTypeOf<InboxEvent<JsonValue, string>>()
        },
      },
    })
  })

  test('the emitting side checks its payload against the same map', () => {
    void prisma.$transaction(async (tx) => {
      const created: EventOf<OrderEvents, 'order.created'> = {
        aggregateType: 'order',
        aggregateId: 1,
        type: 'order.created',
        payload: { orderId: 1, total: '9.90' },
      }
      await tx.outbox.emit(created)
      // @ts-expect-error the payload does not match the map's type for order.created
      const wrong: EventOf<OrderEvents, 'order.created'> = { ...created, payload: { orderId: '1' } }
      void wrong
    })
  })
})
