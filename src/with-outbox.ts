import { OutboxError } from './errors.js'
import { inlineParams } from './inline-sql.js'
import { EMIT_SQL_MARKER } from './sql.js'

// The parts of Prisma's driver adapter interface (@prisma/driver-adapter-utils) this wrapper
// touches, written structurally so the generated client's own types flow through unchanged.
interface SqlQuery {
  sql: string
  args: unknown[]
  argTypes: unknown[]
}
interface AdapterTransaction {
  readonly options: { usePhantomQuery: boolean }
  executeRaw(query: SqlQuery): Promise<number>
  rollback(): Promise<void>
  createSavepoint?(name: string): Promise<void>
  rollbackToSavepoint?(name: string): Promise<void>
  releaseSavepoint?(name: string): Promise<void>
}
interface Adapter {
  startTransaction(...args: never[]): Promise<AdapterTransaction>
}
interface AdapterFactory {
  readonly provider: string
  readonly adapterName: string
  connect(): Promise<Adapter>
}

/**
 * Wraps a PostgreSQL driver adapter (`new PrismaPg(...)`) so that, inside a transaction, the
 * statements `emit` and `emitMany` send are held and sent in the same round trip as the COMMIT:
 * one simple-query message `<held statements>; COMMIT`. The transaction then costs what it costs
 * without the outbox, plus the server's work on the event.
 *
 * Prisma's transaction manager ends a transaction by sending `COMMIT` or `ROLLBACK` through the
 * transaction's `executeRaw` (adapters with `usePhantomQuery: false`, such as @prisma/adapter-pg),
 * and nested `$transaction` calls through `createSavepoint` / `rollbackToSavepoint` /
 * `releaseSavepoint`: those are the calls intercepted here. Everything else, including
 * `connectToShadowDb`, `provider`, `adapterName` and whatever else the adapter offers, passes through.
 *
 * What changes for the app: a failing event statement fails the COMMIT (the `$transaction` rejects
 * and nothing commits), and a read of the outbox inside the transaction does not see held events.
 * Outside a transaction `emit` writes at once, as without the wrapper.
 */
export function withOutbox<F extends AdapterFactory>(factory: F): F {
  if (factory?.provider !== 'postgres') {
    throw new OutboxError(
      `withOutbox wraps a PostgreSQL driver adapter, got provider ${JSON.stringify(factory?.provider)}: pass new PrismaPg(...)`,
      { code: 'OUTBOX_UNSUPPORTED_ADAPTER' },
    )
  }
  return forward<F>(factory, {
    async connect() {
      const adapter = await factory.connect()
      return forward(adapter, {
        async startTransaction(...args: never[]) {
          return holdingEmits(await adapter.startTransaction(...args))
        },
      })
    },
  })
}

function holdingEmits(tx: AdapterTransaction): AdapterTransaction {
  // An adapter that commits without SQL gives nothing to ride along with: send emits at once.
  if (tx.options.usePhantomQuery) return tx
  // Held statements with their parameters written in, in emit order; and for each open savepoint,
  // how many were held when it was made, so rolling back to it drops exactly the later ones.
  const held: string[] = []
  const savepoints: { name: string; mark: number }[] = []
  const indexOf = (name: string) => savepoints.findLastIndex((s) => s.name === name)

  const overrides: Partial<AdapterTransaction> = {
    async executeRaw(query) {
      if (query.sql.startsWith(EMIT_SQL_MARKER)) {
        held.push(inlineParams(query.sql, query.args))
        // What the statement would have reported: one row (or message) per event.
        return (query.args.find(Array.isArray) as unknown[] | undefined)?.length ?? 1
      }
      if (query.sql === 'COMMIT' && held.length > 0) return commitWith(tx, held.splice(0))
      if (query.sql === 'ROLLBACK') held.length = 0
      return tx.executeRaw(query)
    },
    async rollback() {
      held.length = 0
      return tx.rollback()
    },
  }
  const { createSavepoint, rollbackToSavepoint, releaseSavepoint } = tx
  // Only where the adapter has them: Prisma reads their presence as support for nesting.
  if (createSavepoint && rollbackToSavepoint) {
    overrides.createSavepoint = async (name) => {
      await createSavepoint.call(tx, name)
      savepoints.push({ name, mark: held.length })
    }
    overrides.rollbackToSavepoint = async (name) => {
      await rollbackToSavepoint.call(tx, name)
      // Like PostgreSQL: the savepoint stays, the ones made after it are gone.
      const index = indexOf(name)
      if (index >= 0) {
        held.length = (savepoints[index] as { mark: number }).mark
        savepoints.length = index + 1
      }
    }
  }
  if (releaseSavepoint) {
    overrides.releaseSavepoint = async (name) => {
      await releaseSavepoint.call(tx, name)
      // Its held statements now belong to the enclosing level, and commit with it.
      const index = indexOf(name)
      if (index >= 0) savepoints.length = index
    }
  }
  return forward(tx, overrides)
}

/**
 * Sends the held statements and COMMIT as one message. When one fails, PostgreSQL skips the rest
 * of the message, COMMIT included, and leaves the transaction aborted: it is rolled back here
 * before the error goes on, so the connection returns to the pool clean.
 */
async function commitWith(tx: AdapterTransaction, statements: string[]): Promise<number> {
  try {
    await tx.executeRaw({ sql: `${statements.join(';\n')};\nCOMMIT`, args: [], argTypes: [] })
    return 0
  } catch (error) {
    await tx.executeRaw({ sql: 'ROLLBACK', args: [], argTypes: [] }).catch(() => {})
    // Our statements are well formed; a syntax error means the adapter prepared the message,
    // and a prepared statement cannot hold several commands.
    if ((error as { cause?: { originalCode?: unknown } })?.cause?.originalCode === SYNTAX_ERROR) {
      throw new OutboxError(
        'withOutbox cannot send events with COMMIT through an adapter that prepares statements: ' +
          'remove the statementNameGenerator option of PrismaPg, or do not use withOutbox',
        { code: 'OUTBOX_ADAPTER_PREPARES', cause: error },
      )
    }
    throw error
  }
}

const SYNTAX_ERROR = '42601'

/**
 * `target` with some members replaced. Every other member is the target's own, methods bound to
 * it, so private state and members added in later adapter versions keep working.
 */
function forward<T extends object>(target: T, overrides: Record<PropertyKey, unknown>): T {
  const bound = new Map<unknown, unknown>()
  return new Proxy(target, {
    get(object, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property]
      const value = Reflect.get(object, property, object)
      if (typeof value !== 'function') return value
      // One bound copy per method, so each query does not allocate a new one.
      if (!bound.has(value)) bound.set(value, value.bind(object))
      return bound.get(value)
    },
  })
}
