/**
 * Retention deletes from the table the worker streams: `--table outbox` is public.outbox (as the
 * stream, the checks and republish read it), never whichever `outbox` the connection's
 * search_path finds first, which may be another app's table with rows never delivered.
 */
import pg from 'pg'
import { afterEach, expect, inject, test } from 'vitest'
import { deleteExpiredRows } from '../../worker/slot/retention.js'
import { createTestDatabase, type TestDatabase } from '../helpers/database.js'

let db: TestDatabase | undefined
afterEach(async () => {
  await db?.dispose()
  db = undefined
})

test("`outbox` is public.outbox even when the search_path finds another schema's outbox first", async () => {
  db = await createTestDatabase(inject('databaseUrl'))
  await db.query('CREATE SCHEMA elsewhere')
  await db.query('CREATE TABLE elsewhere.outbox (LIKE public.outbox INCLUDING ALL)')
  for (const table of ['public.outbox', 'elsewhere.outbox'])
    await db.query(
      `INSERT INTO ${table} (id, aggregatetype, aggregateid, type, payload, created_at)
       VALUES (gen_random_uuid(), 'order', 'o1', 'order.created', '{}', now() - interval '2 hours')`,
    )
  // A role's or database's search_path, or one in DATABASE_URL, with another schema first.
  const client = new pg.Client({ connectionString: db.url, options: '-c search_path=elsewhere,public' })
  await client.connect()
  try {
    expect(await deleteExpiredRows(client, 'outbox', 3_600_000, new Date())).toBe(1)
  } finally {
    await client.end()
  }
  const [counts] = await db.query<{ public: number; elsewhere: number }>(
    `SELECT (SELECT count(*)::int FROM public.outbox) AS public, (SELECT count(*)::int FROM elsewhere.outbox) AS elsewhere`,
  )
  expect(counts).toEqual({ public: 0, elsewhere: 1 })
})
