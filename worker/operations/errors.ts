import { OutboxError } from '../../src/errors.js'
import { redact, redactError } from './redact.js'

/**
 * Exit codes of `outbox-worker`, one per kind of failure, so a supervisor can tell a bad
 * deployment (2, 3) from a poison event (4) and from a crash (1).
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  config: 2,
  setup: 3,
  poison: 4,
} as const

/** A flag, environment variable or option that is missing or malformed. */
export class OutboxConfigError extends OutboxError {
  constructor(message: string) {
    super(message, { code: 'OUTBOX_INVALID_CONFIG' })
  }
}

/**
 * The database or Kafka is not set up for the worker (wal_level, publication, permissions,
 * unreachable at start). The message names the fix.
 */
export class OutboxSetupError extends OutboxError {
  // Its message is printed (exit 3) and its cause often a driver's error quoting DATABASE_URL:
  // both redacted here, once, whoever builds one.
  constructor(message: string, options: { code: string; retriable?: boolean; cause?: unknown }) {
    super(redact(message), { ...options, cause: redactError(options.cause) })
  }
}

/** An event Kafka will never accept (too large, invalid topic), with `--on-poison stop`. */
export class OutboxPoisonEventError extends OutboxError {
  readonly eventId: string
  constructor(eventId: string, reason: string) {
    super(`event ${eventId} cannot be published: ${reason}; fix the cause (or use --on-poison dlq) and restart`, {
      code: 'OUTBOX_POISON_EVENT',
    })
    this.eventId = eventId
  }
}

/** SQLSTATEs the worker branches on (never on message text). */
export const SQLSTATE = {
  duplicateObject: '42710',
  insufficientPrivilege: '42501',
  objectInUse: '55006',
  undefinedObject: '42704',
  configurationLimitExceeded: '53400',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  invalidCatalogName: '3D000',
} as const

/** The SQLSTATE of a PostgreSQL error as pg reports it; undefined for any other error. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/**
 * PostgreSQL refused the login (SQLSTATE class 28): a wrong password (28P01), an unknown role or
 * no pg_hba.conf entry (28000). Retrying cannot help, so the worker fails at once with the fix.
 */
export function loginRefused(error: unknown): OutboxSetupError | undefined {
  const code = sqlState(error)
  if (code !== SQLSTATE.invalidPassword && code !== SQLSTATE.invalidAuthorization) return undefined
  const fix =
    code === SQLSTATE.invalidPassword
      ? 'check the user and password in DATABASE_URL'
      : 'check the user and password in DATABASE_URL, and that pg_hba.conf lets this user connect from this host'
  return new OutboxSetupError(`PostgreSQL refused the login (${(error as Error).message}): ${fix}`, {
    code: 'OUTBOX_LOGIN_REFUSED',
    cause: error,
  })
}

/**
 * The database named in DATABASE_URL does not exist (SQLSTATE 3D000): a configuration mistake like
 * a refused login, so the worker fails at once instead of retrying as if the server were down.
 */
export function databaseMissing(error: unknown): OutboxSetupError | undefined {
  if (sqlState(error) !== SQLSTATE.invalidCatalogName) return undefined
  return new OutboxSetupError(
    `PostgreSQL has no such database (${(error as Error).message}): check the database name at the end of DATABASE_URL, or create the database and apply your migrations`,
    { code: 'OUTBOX_NO_DATABASE', cause: error },
  )
}

/** Errors at connect that retrying cannot fix: a refused login, a database that does not exist. */
export function refusedAtConnect(error: unknown): OutboxSetupError | undefined {
  return loginRefused(error) ?? databaseMissing(error)
}

/** Where a PostgreSQL URL points, for messages: host, port and database, never the user or password. */
export function postgresAddress(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl)
    return `${url.hostname}:${url.port || '5432'}${url.pathname}`
  } catch {
    return 'DATABASE_URL'
  }
}
