import { OutboxError } from './errors.js'

/**
 * The two setup steps an app can miss, caught where they show and named with the command that
 * fixes them, instead of Prisma's `Cannot read properties of undefined (reading 'emit')` and
 * `relation "outbox" does not exist`.
 */

/** `outbox()` on a client generated without the Outbox model: fail at `$extends`, not at emit. */
export function noOutboxModelError(): OutboxError {
  return new OutboxError(
    'prisma-outbox: this PrismaClient has no Outbox model, so there is no prisma.outbox to add emit to: ' +
      'run npx outbox-worker init (adds the model and its migration), then npx prisma generate',
    { code: 'OUTBOX_NO_MODEL' },
  )
}

/** The outbox table is missing (SQLSTATE 42P01 from the insert): the migration was not applied. */
export function missingTableError(error: unknown, table: string): unknown {
  if (prismaSqlState(error) !== '42P01') return error
  return new OutboxError(
    `prisma-outbox: the outbox table "${table}" does not exist in this database: apply the outbox migration ` +
      '(written by npx outbox-worker init) with npx prisma migrate deploy (or migrate dev)',
    { code: 'OUTBOX_NO_TABLE', cause: error },
  )
}

/**
 * The SQLSTATE of a failed raw query as Prisma reports it: P2010 with the driver adapter's error
 * (Prisma 7), or `meta.code` (query engine). Not the worker's sqlState(), which reads pg's own
 * errors: an app's Prisma wraps the driver's error, and src/ ships without worker/.
 */
function prismaSqlState(error: unknown): string | undefined {
  const e = error as { code?: unknown; meta?: { code?: unknown; driverAdapterError?: unknown } }
  if (e?.code !== 'P2010') return undefined
  const code = adapterSqlState(e.meta?.driverAdapterError) ?? e.meta?.code
  return typeof code === 'string' ? code : undefined
}

/** The SQLSTATE of a driver adapter's error: @prisma/adapter-pg keeps PostgreSQL's in `cause.originalCode`. */
export function adapterSqlState(error: unknown): string | undefined {
  const code = (error as { cause?: { originalCode?: unknown } } | undefined)?.cause?.originalCode
  return typeof code === 'string' ? code : undefined
}
