import pg from 'pg'
import { quoteQualifiedTable } from '../../src/sql.js'
import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { JSON_TYPE_OIDS, toRecord } from '../stream/decoder.js'
import { Delivery } from './delivery.js'
import { type DeliveryItem, deliveryItem } from './event-delivery.js'
import type { Publisher } from './publisher.js'
import { toKafkaRecord, undecodableRecord } from './records.js'

const PAGE_ROWS = 1000

/** Every value as PostgreSQL's text, as pgoutput sends it, so rows decode as streamed ones do. */
export const RAW_TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig

export interface RowFilter {
  /** This row and those with a greater id (a UUIDv7 is in emit order). */
  fromId?: string
  /** Only rows created at or after this time. */
  since?: Date
}

/**
 * Publishes the outbox rows `reader` sees, a page at a time, through the same delivery as
 * streamed events (batching, retries, dead letters). Each page is acknowledged by Kafka before the
 * next is read, so memory stays bounded. Returns how many rows were published.
 *
 * `order: 'id'` (republish): id order, which is emit order for the UUIDv7 ids `emit` makes, and
 * lets a filter start from an id. `order: 'commit'` (the initial snapshot, which must keep each
 * aggregate's order whoever wrote the rows): see commitOrder; it reads through a cursor, so
 * `reader` must be inside a transaction.
 */
export async function publishRows(
  reader: pg.Client,
  options: {
    config: WorkerConfig
    publisher: Publisher
    metrics: Metrics
    logger: Logger
    signal: AbortSignal
    filter?: RowFilter
    order?: 'id' | 'commit'
    /** Log line for progress, every page. */
    progress: string
    /** Rejects when the rows must not be sent any longer (the snapshot's lock was lost): ends this call. */
    interrupted?: Promise<never>
  },
): Promise<number> {
  const { config, publisher, metrics, logger, signal, filter = {} } = options
  const from = quoteQualifiedTable(config.table)
  let pending: { left: number; done: () => void } | undefined
  const delivery = new Delivery(config, publisher, metrics, logger, {
    acknowledged: (items) => {
      // Rows published from the table are events delivered like streamed ones (the initial
      // snapshot's count as the worker's own).
      metrics.eventsPublished.inc(items.length)
      if (!pending) return
      pending.left -= items.length
      if (pending.left <= 0) pending.done()
    },
    deadLettered: () => {},
  })
  await publisher.connect()
  const running = delivery.run()
  // Settles only if delivery ends first (poison with --on-poison stop, a fatal Kafka error).
  const ended = running.then(() => {
    throw new Error('delivery ended')
  })
  ended.catch(() => {})
  // A stop does not wait for a page that Kafka may never acknowledge (delivery retries forever).
  let abort = () => {}
  const stopped = new Promise<never>((_, reject) => {
    abort = () => reject(new Error('stopped while publishing table rows'))
    if (signal.aborted) abort()
    else signal.addEventListener('abort', abort, { once: true })
  })
  stopped.catch(() => {})
  let published = 0
  try {
    const pages =
      options.order === 'commit' ? pagesInCommitOrder(reader, from, logger) : pagesInIdOrder(reader, from, filter)
    for (;;) {
      if (signal.aborted) throw new Error('stopped during publishing of table rows')
      const result = await pages.next()
      if (result.rows.length === 0) break
      const items = result.rows.map((row) => toItem(row, result.fields, config.topicTemplate))
      const acknowledged = new Promise<void>((resolve) => {
        pending = { left: items.length, done: resolve }
      })
      for (const item of items) delivery.enqueue(item)
      await Promise.race([acknowledged, ended, stopped, ...(options.interrupted ? [options.interrupted] : [])])
      published += items.length
      logger.info({ published }, options.progress)
      if (result.rows.length < PAGE_ROWS) break
    }
  } finally {
    signal.removeEventListener('abort', abort) // the signal is the worker's: it outlives this call
    await delivery.close()
    await running.catch(() => {})
  }
  return published
}

interface Pages {
  next(): Promise<pg.QueryResult<Record<string, string | null>>>
}

function pagesInIdOrder(reader: pg.Client, from: string, filter: RowFilter): Pages {
  let afterId: string | undefined
  return {
    async next() {
      const conditions: string[] = []
      const params: unknown[] = []
      if (afterId !== undefined) conditions.push(`id > $${params.push(afterId)}::uuid`)
      if (filter.fromId !== undefined) conditions.push(`id >= $${params.push(filter.fromId)}::uuid`)
      if (filter.since) conditions.push(`created_at >= $${params.push(filter.since.toISOString())}::timestamptz`)
      const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''
      const result = await reader.query({
        text: `SELECT * FROM ${from} ${where} ORDER BY id LIMIT ${PAGE_ROWS}`,
        values: params,
        types: RAW_TEXT_TYPES,
      })
      if (result.rows.length > 0) afterId = String(result.rows[result.rows.length - 1]?.id)
      return result
    },
  }
}

/**
 * The order the stream would have sent the rows in, as near as a table read can tell: by their
 * transaction's commit, then as each transaction wrote them. An id says nothing of that unless
 * `emit` made it (random UUIDs, another language, raw SQL), so the order comes from the rows'
 * transactions instead:
 * - With track_commit_timestamp on, by commit time: exact for writes to one aggregate that are
 *   serialized (the later transaction waits for the earlier's commit, so it commits later).
 *   Rows from before the setting was on have no commit time and come first. Within one commit
 *   time (one transaction, savepoints included), `emit`'s UUIDv7 ids first, in id order: the
 *   order they were emitted, which a savepoint's own transaction id would not keep.
 * - Otherwise by transaction id (`age(xmin)`, which survives xid wraparound): the order in which
 *   the transactions first wrote, which is commit order unless a transaction that wrote earlier
 *   commits after one that wrote later; a savepoint's rows come after the rest of its transaction.
 * Then by physical position (ctid): the order rows were written, as long as the transaction's
 * rows did not move on to space freed earlier in the table.
 */
function pagesInCommitOrder(reader: pg.Client, from: string, logger: Logger): Pages {
  let declared = false
  return {
    async next() {
      if (!declared) {
        const { rows } = await reader.query(`SELECT current_setting('track_commit_timestamp') = 'on' AS tracked`)
        const tracked = rows[0]?.tracked === true
        if (!tracked) {
          logger.info(
            {},
            'track_commit_timestamp is off: rows are published in the order their transactions first wrote, which is commit order unless a transaction that wrote first committed after one that wrote later (see docs/operations.md, "The first deploy")',
          )
        }
        const order = tracked
          ? `pg_xact_commit_timestamp(xmin) NULLS FIRST, CASE WHEN substr(id::text, 15, 1) = '7' THEN id END, age(xmin) DESC, ctid`
          : 'age(xmin) DESC, ctid'
        await reader.query(`DECLARE outbox_rows NO SCROLL CURSOR FOR SELECT * FROM ${from} ORDER BY ${order}`)
        declared = true
      }
      return reader.query({ text: `FETCH ${PAGE_ROWS} FROM outbox_rows`, types: RAW_TEXT_TYPES })
    },
  }
}

function toItem(row: Record<string, string | null>, fields: pg.FieldDef[], topicTemplate: string): DeliveryItem {
  const parsers = new Map(fields.map((f) => [f.name, pg.types.getTypeParser(f.dataTypeID, 'text')]))
  const payloadType = fields.find((f) => f.name === 'payload')?.dataTypeID ?? 0
  // Not from the stream: the transaction only carries the item through delivery.
  const transaction = { endLsn: undefined, commitTime: Date.now(), outstanding: 1, trailing: undefined }
  try {
    const record = toKafkaRecord(
      toRecord(row, { parsers, payloadIsJson: JSON_TYPE_OIDS.has(payloadType) }),
      topicTemplate,
    )
    return deliveryItem(record, transaction)
  } catch (error) {
    return deliveryItem(
      undecodableRecord(row, topicTemplate),
      transaction,
      `undecodable row: ${(error as Error).message}`,
    )
  }
}
