import type { TestDatabase } from '../helpers/database.js'

/**
 * Pre-fills the outbox inside PostgreSQL (one DO block committing every `perTransaction` rows):
 * `count` events with ~200-byte JSON payloads over 1,000 aggregates, as fast as the server
 * writes them, so the benchmark measures the relay and not the loader.
 */
export async function fillOutbox(
  db: TestDatabase,
  count: number,
  perTransaction: number,
  extraColumns = '',
): Promise<void> {
  await db.query(`
    DO $$
    DECLARE i int := 0;
    BEGIN
      WHILE i < ${count} LOOP
        INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload${extraColumns ? `, ${extraColumns}` : ''})
        SELECT gen_random_uuid(), 'order', ((i + g) % 1000)::text, 'order.created',
               json_build_object('seq', i + g, 'customer', 'c' || ((i + g) % 1000), 'pad', repeat('x', 150))::jsonb
               ${extraColumns ? ', NULL' : ''}
          FROM generate_series(0, ${perTransaction} - 1) g;
        COMMIT;
        i := i + ${perTransaction};
      END LOOP;
    END $$`)
}
