/**
 * Every error this package throws is an OutboxError with a stable `code` to branch on (never the
 * message text), whether retrying can help (`retriable`), and the underlying `cause`.
 */
export class OutboxError extends Error {
  readonly code: string
  readonly retriable: boolean

  constructor(message: string, options: { code: string; retriable?: boolean; cause?: unknown }) {
    super(message, { cause: options.cause })
    this.name = new.target.name
    this.code = options.code
    this.retriable = options.retriable ?? false
  }
}

/**
 * An event that cannot be written: thrown by `emit`/`emitMany` before any SQL runs, so nothing is
 * written. `field` names the offending field (e.g. `payload.items[2].price`); the transaction is
 * the caller's to roll back (throwing out of `$transaction` does that).
 */
export class OutboxValidationError extends OutboxError {
  readonly field: string

  constructor(field: string, problem: string, fix: string) {
    super(`invalid outbox event: ${field} ${problem}; ${fix}`, { code: 'OUTBOX_INVALID_EVENT' })
    this.field = field
  }
}
