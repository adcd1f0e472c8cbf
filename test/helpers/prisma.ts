import { PrismaPg } from '@prisma/adapter-pg'
import type pg from 'pg'
import { PrismaClient } from '../../prisma/generated/client.js'
import { type OutboxOptions, outbox, withOutbox } from '../../src/index.js'

/**
 * The example app's client with the outbox extension, on one test database; `withOutbox` wraps
 * its adapter, `pool` is passed to node-postgres (e.g. `{ max: 1 }` to reuse one connection).
 */
export function createAppClient(
  url: string,
  options?: OutboxOptions,
  adapter: { withOutbox?: boolean; pool?: pg.PoolConfig; isolationLevel?: 'RepeatableRead' | 'Serializable' } = {},
) {
  const factory = new PrismaPg({ connectionString: url, ...adapter.pool })
  return new PrismaClient({
    adapter: adapter.withOutbox ? withOutbox(factory) : factory,
    ...(adapter.isolationLevel ? { transactionOptions: { isolationLevel: adapter.isolationLevel } } : {}),
  }).$extends(outbox(options))
}

export type AppClient = ReturnType<typeof createAppClient>
