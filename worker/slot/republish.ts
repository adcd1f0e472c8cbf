import { createPublisher } from '../delivery/create-publisher.js'
import { publishRows, type RowFilter } from '../delivery/publish-rows.js'
import type { WorkerConfig } from '../operations/config.js'
import { OutboxConfigError } from '../operations/errors.js'
import type { Logger } from '../operations/logger.js'
import { createMetrics } from '../operations/metrics.js'
import { NO_QUERY_TIMEOUT, sideConnection } from '../operations/side-connection.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** `--since`: an event id (that row and every later one), or a time (rows created at or after it). */
export function parseSince(since: string | undefined): RowFilter {
  const example = 'e.g. --since 2026-11-20T10:00:00Z or --since <the id of the first event to send again>'
  if (since === undefined || since === '') throw new OutboxConfigError(`republish needs --since <time|id>: ${example}`)
  if (UUID.test(since)) return { fromId: since.toLowerCase() }
  // A bare date-time without a zone would be read in the machine's zone: ask for one.
  const time = /(Z|[+-]\d\d:?\d\d)$/i.test(since) || /^\d{4}-\d\d-\d\d$/.test(since) ? new Date(since) : undefined
  if (!time || Number.isNaN(time.getTime()))
    throw new OutboxConfigError(
      `--since "${since}" is neither an event id (a UUID) nor a time with its zone (ISO 8601): ${example}`,
    )
  return { since: time }
}

/**
 * `outbox-worker republish --since <time|id>`: publishes the outbox rows from the table again, in
 * id order, through the worker's publisher: after a lost slot, or while the table was out of the
 * publication. Consumers see the same ids again (at-least-once). Rows are read in one
 * REPEATABLE READ transaction: a consistent set, whatever is written meanwhile (the running
 * worker streams those).
 */
export async function republish(config: WorkerConfig, since: string | undefined, logger: Logger): Promise<number> {
  const filter = parseSince(since)
  // No bound on a query: a page filtered by --since finds its rows by created_at, which has no
  // index, so on a large table each page scans and sorts it, for as long as that takes.
  const reader = sideConnection(config.databaseUrl, { queryTimeoutMs: NO_QUERY_TIMEOUT })
  await reader.connect()
  try {
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    logger.info({ since }, 'republish: publishing outbox rows again')
    const published = await publishRows(reader, {
      config,
      publisher: createPublisher(config, logger),
      metrics: createMetrics(),
      logger,
      signal: new AbortController().signal,
      filter,
      progress: 'republish: rows published so far',
    })
    await reader.query('COMMIT')
    logger.info({ published }, `republish: published ${published} rows`)
    return published
  } finally {
    await reader.end().catch(() => {})
  }
}
