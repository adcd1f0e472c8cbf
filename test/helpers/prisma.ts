import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from '../../prisma/generated/client.js'
import { type OutboxOptions, outbox } from '../../src/index.js'

/** The example app's client with the outbox extension, on one test database. */
export function createAppClient(url: string, options?: OutboxOptions) {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) }).$extends(outbox(options))
}

export type AppClient = ReturnType<typeof createAppClient>
