import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const prismaDir = join(dirname(fileURLToPath(import.meta.url)), '../../prisma')

/** The migration `outbox-worker init` ships, and the example app's own table. */
export const outboxMigrationSql = readFileSync(join(prismaDir, 'outbox/migration.sql'), 'utf8')
export const ordersMigrationSql = readFileSync(
  join(prismaDir, 'migrations/20260101000000_orders/migration.sql'),
  'utf8',
)

/** The inbox table `outbox-worker init --inbox` ships, and the example consumer's own table. */
export const inboxMigrationSql = readFileSync(join(prismaDir, 'outbox/inbox-migration.sql'), 'utf8')
export const invoicesMigrationSql = readFileSync(
  join(prismaDir, 'migrations/20260102000000_invoices/migration.sql'),
  'utf8',
)

export interface TestDatabase {
  name: string
  url: string
  /** A pooled client on the test database. */
  pool: pg.Pool
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>
  /** Drops the database's replication slots (terminating their walsenders), then the database. */
  dispose(): Promise<void>
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`
}

/** The same server URL with another database name. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/**
 * A fresh database for one test, with the outbox migration (and by default the example app's
 * orders table) applied, so every test owns its table, publication and slots.
 */
export async function createTestDatabase(adminUrl: string, options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = uniqueName('t')
  await adminQuery(adminUrl, `CREATE DATABASE "${name}"`)
  const url = withDatabase(adminUrl, name)
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  // Idle clients are dropped when a fault test restarts the server; the pool replaces them.
  pool.on('error', () => {})
  const db: TestDatabase = {
    name,
    url,
    pool,
    async query(sql, params) {
      return (await pool.query(sql, params)).rows
    },
    async dispose() {
      await pool.end()
      await adminQuery(
        adminUrl,
        `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
        [name],
      )
      // A terminated walsender releases its slot asynchronously; retry the drop briefly.
      for (let attempt = 0; ; attempt++) {
        try {
          await adminQuery(
            adminUrl,
            `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`,
            [name],
          )
          break
        } catch (error) {
          if (attempt >= 50) throw error
          await new Promise((r) => setTimeout(r, 100))
        }
      }
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    },
  }
  if (options.migrate !== false) {
    await db.query(outboxMigrationSql)
    await db.query(ordersMigrationSql)
  }
  return db
}

export async function adminQuery(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(sql, params)).rows
  } finally {
    await client.end()
  }
}
