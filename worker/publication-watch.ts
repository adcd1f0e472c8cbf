import pg from 'pg'
import { quoteIdent } from '../src/sql.js'
import type { WorkerConfig } from './config.js'
import { splitTable } from './setup.js'

/**
 * Whether inserts into the outbox table still reach the slot's stream: the table exists under its
 * configured name, and the publication exists, publishes inserts and includes it. Undefined when
 * all is well, else what changed and the fix.
 *
 * Nothing in the stream says so when the table leaves the publication (DROP TABLE and re-create,
 * ALTER PUBLICATION ... DROP TABLE): its inserts just stop arriving, while keepalives would go on
 * confirming past them. Hence a check of the catalog every few seconds.
 */
export async function publicationProblem(client: pg.Client, config: WorkerConfig): Promise<string | undefined> {
  const [schema, table] = splitTable(config.table)
  const { rows } = await client.query(
    `SELECT to_regclass($2) IS NOT NULL AS table_exists,
            p.oid IS NOT NULL AS publication_exists, p.pubinsert AS publishes_inserts,
            EXISTS (SELECT 1 FROM pg_publication_tables t
                     WHERE t.pubname = $1 AND t.schemaname = $3 AND t.tablename = $4) AS published
       FROM (SELECT 1) AS one LEFT JOIN pg_publication p ON p.pubname = $1`,
    [config.publication, `${quoteIdent(schema)}.${quoteIdent(table)}`, schema, table],
  )
  const row = rows[0]
  const name = `${schema}.${table}`
  const addTable = `ALTER PUBLICATION ${quoteIdent(config.publication)} ADD TABLE ${quoteIdent(schema)}.${quoteIdent(table)}`
  if (!row.publication_exists)
    return `publication "${config.publication}" no longer exists: re-create it (CREATE PUBLICATION ${quoteIdent(config.publication)} FOR TABLE ${quoteIdent(schema)}.${quoteIdent(table)} WITH (publish = 'insert'))`
  if (!row.table_exists)
    return `the outbox table ${name} no longer exists (dropped or renamed): restore it, then ${addTable}`
  if (!row.publishes_inserts)
    return `publication "${config.publication}" no longer publishes inserts: ALTER PUBLICATION ${quoteIdent(config.publication)} SET (publish = 'insert')`
  if (!row.published)
    return `the outbox table ${name} is not in publication "${config.publication}" (re-created, or dropped from it): ${addTable}`
  return undefined
}

export interface PublicationWatchHooks {
  /** Called on every change of state: a problem (with its fix), or undefined when it is solved. */
  changed(problem: string | undefined): void
}

/** Runs publicationProblem every --table-check-interval on a connection of its own. */
export class PublicationWatch {
  private client: pg.Client | undefined
  private timer: NodeJS.Timeout | undefined
  private problem: string | undefined
  private running = false

  constructor(
    private readonly config: WorkerConfig,
    private readonly hooks: PublicationWatchHooks,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.config.tableCheckIntervalMs)
  }

  /** A problem seen elsewhere (a relation message saying the table was renamed). */
  report(problem: string): void {
    if (this.problem) return
    this.problem = problem
    this.hooks.changed(problem)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => {})
  }

  private async check(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      if (!this.client) {
        const client = new pg.Client({
          connectionString: this.config.databaseUrl,
          connectionTimeoutMillis: 5000,
          query_timeout: 10_000,
        })
        client.on('error', () => {})
        await client.connect()
        this.client = client
      }
      const problem = await publicationProblem(this.client, this.config)
      if (problem !== this.problem) {
        this.problem = problem
        this.hooks.changed(problem)
      }
    } catch {
      // The database is unreachable: the stream notices that itself. Try a new connection next time.
      const client = this.client
      this.client = undefined
      await client?.end().catch(() => {})
    } finally {
      this.running = false
    }
  }
}
