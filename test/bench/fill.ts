import { MESSAGE_FORMAT_VERSION, messagePrefix } from '../../src/message-format.js'
import type { TestDatabase } from '../helpers/database.js'

/**
 * Pre-fills the outbox inside PostgreSQL (one DO block committing every `perTransaction` rows):
 * `count` events with ~200-byte JSON payloads over 1,000 aggregates, as fast as the server
 * writes them, so the benchmark measures the relay and not the loader. Aggregate ids (the Kafka
 * keys) are '0' to '999', or with `uuidIds` the UUIDs most apps key by (36 bytes).
 */
export async function fillOutbox(
  db: TestDatabase,
  count: number,
  perTransaction: number,
  extraColumns = '',
  uuidIds = false,
): Promise<void> {
  const aggregateId = uuidIds ? 'md5(((i + g) % 1000)::text)::uuid::text' : '((i + g) % 1000)::text'
  await db.query(`
    DO $$
    DECLARE i int := 0;
    BEGIN
      WHILE i < ${count} LOOP
        INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload${extraColumns ? `, ${extraColumns}` : ''})
        SELECT gen_random_uuid(), 'order', ${aggregateId}, 'order.created',
               json_build_object('seq', i + g, 'customer', 'c' || ((i + g) % 1000), 'pad', repeat('x', 150))::jsonb
               ${extraColumns ? ', NULL' : ''}
          FROM generate_series(0, ${perTransaction} - 1) g;
        COMMIT;
        i := i + ${perTransaction};
      END LOOP;
    END $$`)
}

/**
 * The same events as fillOutbox, written in message mode: transactional logical messages in the
 * format of src/message-format.ts, built inside PostgreSQL, with no rows.
 */
export async function fillMessages(db: TestDatabase, count: number, perTransaction: number): Promise<void> {
  await db.query(`
    DO $$
    DECLARE i int := 0;
    BEGIN
      WHILE i < ${count} LOOP
        PERFORM pg_logical_emit_message(true, '${messagePrefix('outbox')}',
                  '${MESSAGE_FORMAT_VERSION}' || E'\\n' ||
                  json_build_array(gen_random_uuid(), 'order', ((i + g) % 1000)::text, 'order.created',
                                   NULL, NULL)::text || E'\\n' ||
                  (extract(epoch FROM now()) * 1000000)::bigint || E'\\n' ||
                  json_build_object('seq', i + g, 'customer', 'c' || ((i + g) % 1000), 'pad', repeat('x', 150))::jsonb::text)
          FROM generate_series(0, ${perTransaction} - 1) g;
        COMMIT;
        i := i + ${perTransaction};
      END LOOP;
    END $$`)
}
