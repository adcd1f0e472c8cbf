import { Kafka, logLevel } from 'kafkajs'
import type pg from 'pg'

/**
 * The baseline: the usual polling relay, written to be fair. A `published_at` column with a
 * partial index on unpublished rows; every 100 ms (at once when the last batch was full) it
 * locks up to 500 unpublished rows with FOR UPDATE SKIP LOCKED, sends them with the same kafkajs
 * producer settings as the worker (idempotent, acks=all, one request in flight), marks them
 * published and commits.
 */
export const POLLING_SCHEMA = `
  ALTER TABLE outbox ADD COLUMN published_at timestamptz;
  CREATE INDEX outbox_unpublished ON outbox (created_at, id) WHERE published_at IS NULL;`

/** Routes like the worker's default template: `<topicPrefix>.<aggregatetype>`. */
export async function startPollingRelay(pool: pg.Pool, brokers: string[], topicPrefix: string) {
  const producer = new Kafka({ clientId: 'polling-relay', brokers, logLevel: logLevel.NOTHING }).producer({
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  let running = true
  let published = 0
  const loop = (async () => {
    while (running) {
      const client = await pool.connect()
      let count = 0
      try {
        await client.query('BEGIN')
        const { rows } = await client.query(
          `SELECT id, aggregatetype, aggregateid, type, payload::text AS payload, created_at FROM outbox
            WHERE published_at IS NULL ORDER BY created_at, id LIMIT 500 FOR UPDATE SKIP LOCKED`,
        )
        count = rows.length
        if (count > 0) {
          const byTopic = new Map<string, typeof rows>()
          for (const r of rows) {
            const topic = `${topicPrefix}.${r.aggregatetype}`
            byTopic.set(topic, [...(byTopic.get(topic) ?? []), r])
          }
          await producer.sendBatch({
            acks: -1,
            topicMessages: [...byTopic].map(([topic, list]) => ({
              topic,
              messages: list.map((r) => ({
                key: r.aggregateid,
                value: r.payload,
                timestamp: String(new Date(r.created_at).getTime()),
                headers: { id: r.id, type: r.type },
              })),
            })),
          })
          await client.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])', [
            rows.map((r) => r.id),
          ])
        }
        await client.query('COMMIT')
        published += count
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {})
        if (running) throw error
      } finally {
        client.release()
      }
      if (count < 500) await new Promise((r) => setTimeout(r, 100))
    }
  })()
  return {
    get published() {
      return published
    },
    async stop() {
      running = false
      await loop
      await producer.disconnect()
    },
  }
}
