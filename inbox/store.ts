import { quoteTable } from '../src/sql.js'
import type { InboxRecord } from './record.js'

/** The client methods the inbox's SQL needs: a PrismaClient or its transaction client. */
export interface RawSql {
  $executeRawUnsafe(query: string, ...values: unknown[]): PromiseLike<number>
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>
}

export type ParkedStatus = 'failed' | 'waiting' | 'poison'

/** A parked row, as `retryParked` reads it back. */
export interface ParkedRow {
  event_id: string
  status: ParkedStatus
  key: string | null
  topic: string
  partition: number
  offset: string
  value: string | null
  headers: Record<string, string> | null
  timestamp: string
}

/**
 * The inbox table's SQL, one consumer name's rows. Every statement takes the client to run on,
 * so the caller decides what shares a transaction with the handler.
 */
export function inboxStore(table: string, consumer: string) {
  const inbox = quoteTable(table)
  // Rows a key waits behind: a failed record, or records already waiting behind one.
  const holding = `status IN ('failed', 'waiting')`
  const columns = `consumer, event_id, status, type, key, topic, partition, "offset"`
  const place = (r: InboxRecord) => [r.topic, r.partition, r.offset]

  return {
    /**
     * Inserts the record's row as handled; false when the consumer already has a row for the id
     * (a duplicate). First in the handler's transaction: a second consumer given the same record
     * during a rebalance blocks here on the unique key until the first commits, then skips it, so
     * two consumers never apply one key's records side by side.
     */
    async claim(sql: RawSql, id: string, type: string, record: InboxRecord): Promise<boolean> {
      const inserted = await sql.$executeRawUnsafe(
        `INSERT INTO ${inbox} (${columns}, handled_at) VALUES ($1, $2, 'handled', $3, $4, $5, $6::int, $7::bigint, now())
         ON CONFLICT (consumer, event_id) DO NOTHING`,
        consumer,
        id,
        type,
        record.key,
        ...place(record),
      )
      return inserted === 1
    },

    /**
     * claim and keyHeld in one round trip, for a record with a key under 'block-key'. The check
     * reads the snapshot taken when the statement starts, before any wait on the claim: it can
     * only miss a parked row committed during that wait, which is a wait on this very event id,
     * whose claim then fails (a duplicate, skipped) or whose parking waits on this transaction.
     */
    async claimAndCheck(sql: RawSql, id: string, type: string, record: InboxRecord & { key: string }) {
      const [row] = await sql.$queryRawUnsafe<{ claimed: number; held: boolean }[]>(
        `WITH claimed AS (
           INSERT INTO ${inbox} (${columns}, handled_at) VALUES ($1, $2, 'handled', $3, $4, $5, $6::int, $7::bigint, now())
           ON CONFLICT (consumer, event_id) DO NOTHING RETURNING 1)
         SELECT (SELECT count(*) FROM claimed)::int AS claimed,
                EXISTS (SELECT 1 FROM ${inbox} WHERE consumer = $1 AND key = $4 AND ${holding} AND event_id <> $2) AS held`,
        consumer,
        id,
        type,
        record.key,
        ...place(record),
      )
      return { claimed: row?.claimed === 1, held: row?.held === true }
    },

    /** Whether a key has a parked record other than `id` in front of it. */
    async keyHeld(sql: RawSql, key: string, id: string): Promise<boolean> {
      const rows = await sql.$queryRawUnsafe<unknown[]>(
        `SELECT 1 FROM ${inbox} WHERE consumer = $1 AND key = $2 AND ${holding} AND event_id <> $3 LIMIT 1`,
        consumer,
        key,
        id,
      )
      return rows.length > 0
    },

    /**
     * Serializes, for one key, the live consumer parking a record as waiting and `retryParked`
     * releasing the key: without it a record could be parked behind a failure that a retry had
     * just cleared, and wait for nothing. Held until the transaction ends.
     */
    async lockKey(sql: RawSql, key: string): Promise<void> {
      await sql.$queryRawUnsafe(
        `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))::text`,
        `prisma-outbox inbox ${consumer.length}:${consumer}:${key}`,
      )
    },

    /** Turns a claimed row into a waiting one, keeping what a retry needs. */
    async markWaiting(sql: RawSql, id: string, record: InboxRecord): Promise<void> {
      await sql.$executeRawUnsafe(
        `UPDATE ${inbox} SET status = 'waiting', handled_at = NULL, value = $3, headers = $4::jsonb
         WHERE consumer = $1 AND event_id = $2`,
        consumer,
        id,
        record.value,
        JSON.stringify({ ...record.headers, '@timestamp': String(record.timestamp) }),
      )
    },

    /** Parks a record (a row of its own, outside any handler's transaction). */
    async park(
      sql: RawSql,
      id: string,
      status: ParkedStatus,
      type: string | null,
      record: InboxRecord,
      error: string,
      attempts: number,
    ): Promise<boolean> {
      const inserted = await sql.$executeRawUnsafe(
        `INSERT INTO ${inbox} (${columns}, value, headers, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7::int, $8::bigint, $9, $10::jsonb, $11, $12)
         ON CONFLICT (consumer, event_id) DO NOTHING`,
        consumer,
        id,
        status,
        type,
        record.key,
        ...place(record),
        record.value,
        JSON.stringify({ ...record.headers, '@timestamp': String(record.timestamp) }),
        error,
        attempts,
      )
      return inserted === 1
    },

    /** Keys (null: records without one) that have parked records a retry can run. */
    async heldKeys(sql: RawSql): Promise<(string | null)[]> {
      const rows = await sql.$queryRawUnsafe<{ key: string | null }[]>(
        `SELECT DISTINCT key FROM ${inbox} WHERE consumer = $1 AND ${holding}`,
        consumer,
      )
      return rows.map((r) => r.key)
    },

    /** The oldest parked record of a key, locked for the retry's transaction. */
    async nextHeld(sql: RawSql, key: string | null, after: string[] = []): Promise<ParkedRow | undefined> {
      const rows = await sql.$queryRawUnsafe<ParkedRow[]>(
        `SELECT event_id, status, key, topic, partition, "offset"::text AS "offset", value, headers,
                coalesce(headers->>'@timestamp', '0') AS timestamp
         FROM ${inbox} WHERE consumer = $1 AND key IS NOT DISTINCT FROM $2 AND ${holding}
           AND NOT (event_id = ANY($3::text[]))
         ORDER BY received_at, topic, partition, "offset" LIMIT 1 FOR UPDATE`,
        consumer,
        key,
        after,
      )
      return rows[0]
    },

    async markHandled(sql: RawSql, id: string): Promise<void> {
      await sql.$executeRawUnsafe(
        `UPDATE ${inbox} SET status = 'handled', handled_at = now(), value = NULL, headers = NULL, error = NULL
         WHERE consumer = $1 AND event_id = $2`,
        consumer,
        id,
      )
    },

    /** Records a failed retry on a parked row (it stays parked). */
    async markAttempt(sql: RawSql, id: string, error: string): Promise<void> {
      await sql.$executeRawUnsafe(
        `UPDATE ${inbox} SET attempts = attempts + 1, error = $3 WHERE consumer = $1 AND event_id = $2`,
        consumer,
        id,
        error,
      )
    },

    /** Deletes handled rows older than `ms`, in slices so no statement holds locks for long. */
    async purgeHandled(sql: RawSql, ms: number): Promise<number> {
      let total = 0
      for (;;) {
        const deleted = await sql.$executeRawUnsafe(
          `DELETE FROM ${inbox} WHERE ctid IN (
             SELECT ctid FROM ${inbox} WHERE consumer = $1 AND status = 'handled'
               AND handled_at < now() - $2::bigint * interval '1 millisecond' LIMIT 5000)`,
          consumer,
          ms,
        )
        total += deleted
        if (deleted < 5000) return total
      }
    },
  }
}

export type InboxStore = ReturnType<typeof inboxStore>
