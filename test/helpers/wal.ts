import { type Pgoutput, PgoutputPlugin } from 'pg-logical-replication'
import type { TestDatabase } from './database.js'

/**
 * Consumes what a pgoutput slot holds, decoded with the same parser the worker uses: the WAL as a
 * subscriber sees it, so a test can assert what the worker will be given.
 */
export async function takeSlotChanges(
  db: TestDatabase,
  slot: string,
  publication = 'prisma_outbox',
): Promise<Pgoutput.Message[]> {
  const rows = await db.query<{ data: Buffer }>(
    `SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)`,
    [slot, publication],
  )
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] })
  return rows.map((row) => plugin.parse(row.data))
}

export async function createSlot(db: TestDatabase, slot: string): Promise<void> {
  await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
}

/** The inserts into `table` among decoded messages, in WAL order. */
export function insertsInto(messages: Pgoutput.Message[], table = 'outbox'): Record<string, unknown>[] {
  return messages.flatMap((m) => (m.tag === 'insert' && m.relation.name === table ? [m.new] : []))
}
