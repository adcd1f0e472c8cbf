import { OutboxError } from '../src/errors.js'

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
export class OutboxSetupError extends OutboxError {}

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
