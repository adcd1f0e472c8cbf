import { OutboxError } from './errors.js'
import { inlineParams } from './inline-sql.js'
import { adapterSqlState } from './setup-errors.js'
import { EMIT_SQL_MARKER } from './sql.js'
import { transactionEnd } from './transaction-end.js'

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
  queryRaw(query: SqlQuery): Promise<ResultSet>
  commit(): Promise<void>
  rollback(): Promise<void>
  createSavepoint?(name: string): Promise<void>
  rollbackToSavepoint?(name: string): Promise<void>
  releaseSavepoint?(name: string): Promise<void>
}
interface ResultSet {
  columnNames: string[]
  columnTypes: unknown[]
  rows: unknown[][]
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
 * Prisma 7.10 ends a transaction by sending `COMMIT` or `ROLLBACK` through the transaction's
 * `executeRaw` and then calling its `commit()` or `rollback()` (adapters with `usePhantomQuery:
 * false`, such as @prisma/adapter-pg, whose `commit()` only releases the connection), and nested
 * `$transaction` calls through `createSavepoint` / `rollbackToSavepoint` / `releaseSavepoint`.
 * The wrapper fails closed on every other way, so rows never commit without their events:
 * - any statement sent through `executeRaw` or `queryRaw` that commits (COMMIT or END, however
 *   spelled, see transaction-end.ts) carries the held statements; one that rolls back drops them;
 * - `commit()` called while statements are still held sends them with a COMMIT first (a Prisma
 *   version that ends the transaction with `commit()` alone);
 * - a statement it cannot follow (PREPARE TRANSACTION, several statements one of which ends the
 *   transaction, ROLLBACK TO SAVEPOINT in raw SQL, …) is refused while statements are held, and
 *   the transaction can then only roll back;
 * - once the transaction has ended before Prisma ends it (the app's own COMMIT or ROLLBACK without
 *   AND CHAIN, a statement it cannot follow sent while nothing was held, a failed COMMIT), later
 *   emits are sent at once, as without the wrapper.
 * Everything else, including `connectToShadowDb`, `provider`, `adapterName` and whatever else the
 * adapter offers, passes through.
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
  // Set when a statement was refused. Like a failed statement in PostgreSQL, it leaves the
  // transaction able only to roll back: an app that catches the error and carries on must not
  // commit what came before and after it without the refused statement.
  let refused: OutboxError | undefined
  const forget = () => {
    held.length = 0
    savepoints.length = 0
    refused = undefined
  }
  // Set once the session may have left the transaction before Prisma ends it. PostgreSQL then
  // commits each later statement on its own, and nothing of Prisma's ROLLBACK (the callback threw)
  // or a crash undoes the rows: an event held for an end that no longer comes would be lost while
  // its row stays. So later emits are sent at once, where the app put them, and the server does
  // with them what it does with the rows around them, as without the wrapper; even a BEGIN the app
  // sends next is then followed. Refusing later statements instead would keep nothing together:
  // a row written after the COMMIT is already committed when its emit comes, and apps that work
  // without the wrapper would fail with it.
  let ended = false
  const end = () => {
    forget()
    ended = true
  }

  /**
   * Ends the transaction with `ending`, a statement that commits, sent after the held ones; with
   * `chain` (AND CHAIN) a new transaction begins, whose emits are held in turn.
   */
  async function commitHeld(ending: string, chain: boolean): Promise<void> {
    if (refused) {
      const error = refused
      // Rolled back below: the session is outside any transaction even if the app carries on.
      end()
      await rollbackQuietly(tx)
      throw error
    }
    const statements = held.splice(0)
    savepoints.length = 0
    try {
      await commitWith(tx, statements, ending)
    } catch (error) {
      // commitWith rolled back, AND CHAIN or not: no transaction is open any more.
      end()
      throw error
    }
    if (!chain) end()
  }

  /**
   * Before `query` (any statement but an emit) is sent: true when it commits and was sent here,
   * after the held statements; throws when it is refused.
   */
  async function sentWithHeld(query: SqlQuery): Promise<boolean> {
    if (ended) return false
    const ending = transactionEnd(query.sql)
    if (ending === undefined) return false
    if (ending === 'rollback and chain') {
      forget()
      return false
    }
    if (ending === 'rollback') {
      end()
      return false
    }
    if (held.length === 0 && !refused) {
      // Nothing held: nothing to send or to lose now. But, AND CHAIN aside, the statement may
      // leave the session outside the transaction (COMMIT, PREPARE TRANSACTION, text that may hold
      // either), and later emits must not wait for an end that would not come.
      if (ending !== 'commit and chain') end()
      return false
    }
    if (ending === 'commit' || ending === 'commit and chain') {
      await commitHeld(query.sql, ending === 'commit and chain')
      return true
    }
    refused = ending === 'prepare' ? cannotPrepare() : cannotFollow()
    throw refused
  }

  const overrides: Partial<AdapterTransaction> = {
    async executeRaw(query) {
      if (query.sql.startsWith(EMIT_SQL_MARKER) && !ended) {
        held.push(inlineParams(query.sql, query.args))
        // What the statement would have reported: one row (or message) per event.
        return (query.args.find(Array.isArray) as unknown[] | undefined)?.length ?? 1
      }
      // What COMMIT reports: no rows.
      return (await sentWithHeld(query)) ? 0 : tx.executeRaw(query)
    },
    async queryRaw(query) {
      return (await sentWithHeld(query)) ? { columnNames: [], columnTypes: [], rows: [] } : tx.queryRaw(query)
    },
    async commit() {
      // Prisma 7.10 has sent COMMIT through executeRaw, with the held statements, before this.
      if (held.length > 0 || refused) {
        try {
          await commitHeld('COMMIT', false)
        } catch (error) {
          // The transaction is over: hand the connection back, as commit() would have.
          await tx.rollback().catch(() => {})
          throw error
        }
      }
      return tx.commit()
    },
    async rollback() {
      end()
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
 * Sends the held statements and `ending` (COMMIT, or however the app spelled it) as one message.
 * When one fails, PostgreSQL skips the rest of the message, the ending included, and leaves the
 * transaction aborted: it is rolled back here before the error goes on, so the connection returns
 * to the pool clean.
 */
async function commitWith(tx: AdapterTransaction, statements: string[], ending: string): Promise<void> {
  try {
    await tx.executeRaw({ sql: `${statements.join(';\n')};\n${ending}`, args: [], argTypes: [] })
  } catch (error) {
    await rollbackQuietly(tx)
    // Our statements are well formed; a syntax error means the adapter prepared the message,
    // and a prepared statement cannot hold several commands.
    if (adapterSqlState(error) === SYNTAX_ERROR) {
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

async function rollbackQuietly(tx: AdapterTransaction): Promise<void> {
  await tx.executeRaw({ sql: 'ROLLBACK', args: [], argTypes: [] }).catch(() => {})
}

// The statement itself is left out of both messages: raw SQL can carry values that are not for logs.
function cannotPrepare(): OutboxError {
  return new OutboxError(
    'withOutbox cannot hold events across PREPARE TRANSACTION: this transaction has events waiting for its COMMIT, ' +
      'so nothing of it will commit. Use the adapter without withOutbox for two-phase commit',
    { code: 'OUTBOX_TRANSACTION_CONTROL' },
  )
}

function cannotFollow(): OutboxError {
  return new OutboxError(
    'withOutbox cannot tell how a raw statement holding COMMIT, END, ROLLBACK, ABORT or PREPARE ends this ' +
      'transaction (among several statements, beside a string with a backslash, or ROLLBACK TO), which has events ' +
      'waiting for its COMMIT, so nothing of it will commit. Send COMMIT or ROLLBACK as a statement of its own (or ' +
      'let $transaction end the transaction), pass values with backslashes as parameters, and make savepoints ' +
      'with nested $transaction calls rather than raw SAVEPOINT / ROLLBACK TO',
    { code: 'OUTBOX_TRANSACTION_CONTROL' },
  )
}

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
