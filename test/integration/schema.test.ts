/**
 * The shipped model fragment, the example app's schema and the migration SQL must describe the
 * same table: a drift would make Prisma read columns the worker never sees, or the reverse.
 */
import { readFileSync } from 'node:fs'
import { afterEach, expect, inject, test } from 'vitest'
import { createTestDatabase, inboxMigrationSql, type TestDatabase } from '../helpers/database.js'

const fragment = readFileSync('prisma/outbox/model.prisma', 'utf8')
const appSchema = readFileSync('prisma/schema.prisma', 'utf8')

/** Column name → [postgres type, nullable], read from the model's fields and @map/@db attributes. */
function columnsOfModel(model: string): Record<string, [string, boolean]> {
  const columns: Record<string, [string, boolean]> = {}
  for (const line of model.split('\n')) {
    const field = /^\s+(\w+)\s+(\w+)(\?)?(.*)$/.exec(line)
    if (!field || line.trim().startsWith('@@')) continue
    const [, name, type, optional, attributes = ''] = field
    const column = /@map\("([^"]+)"\)/.exec(attributes)?.[1] ?? (name as string)
    const pgType = attributes.includes('@db.Uuid')
      ? 'uuid'
      : attributes.includes('@db.Timestamptz')
        ? 'timestamp with time zone'
        : ({ String: 'text', Json: 'jsonb', Int: 'integer', BigInt: 'bigint' } as Record<string, string>)[
            type as string
          ]
    columns[column] = [pgType ?? `unmapped ${type}`, optional === '?']
  }
  return columns
}

let db: TestDatabase | undefined
afterEach(async () => {
  await db?.dispose()
  db = undefined
})

test('the model fragment matches the table the migration creates, column by column', async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  const rows = await db.query<{ column_name: string; data_type: string; is_nullable: string }>(
    `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'outbox'`,
  )
  const table = Object.fromEntries(rows.map((r) => [r.column_name, [r.data_type, r.is_nullable === 'YES']]))
  expect(columnsOfModel(fragment)).toEqual(table)
})

test('the migration publishes inserts only, on the outbox table', async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  const pubs = await db.query(
    `SELECT pubinsert, pubupdate, pubdelete, pubtruncate, (SELECT array_agg(tablename::text) FROM pg_publication_tables t WHERE t.pubname = p.pubname) AS tables
     FROM pg_publication p WHERE pubname = 'prisma_outbox'`,
  )
  expect(pubs).toEqual([
    { pubinsert: true, pubupdate: false, pubdelete: false, pubtruncate: false, tables: ['outbox'] },
  ])
})

test('the example app schema contains the fragment exactly as init appends it', () => {
  expect(appSchema).toContain(fragment.trim())
})

const inboxFragment = readFileSync('prisma/outbox/inbox-model.prisma', 'utf8')

test('the inbox model matches the table its migration creates, and the example schema has it as init --inbox appends it', async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  await db.query(inboxMigrationSql)
  const rows = await db.query<{ column_name: string; data_type: string; is_nullable: string }>(
    `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'inbox'`,
  )
  const table = Object.fromEntries(rows.map((r) => [r.column_name, [r.data_type, r.is_nullable === 'YES']]))
  expect(columnsOfModel(inboxFragment)).toEqual(table)
  expect(appSchema).toContain(inboxFragment.trim())
})
