import { waitBeforeRetry } from '../retry-policy.js'
import type { WorkerConfig } from './config.js'
import { OutboxPoisonEventError, OutboxSetupError, postgresAddress, refusedAtConnect } from './errors.js'
import { errorFields, type Logger } from './logger.js'

export interface ReachContext {
  config: WorkerConfig
  logger: Logger
  /** A sign of progress for the liveness probe: waiting for a server to come up is no wedge. */
  heartbeat: () => void
  signal: AbortSignal
  /** Rejects when stop() is called. */
  stopped: () => Promise<never>
}

/**
 * A connection at start, tried until it succeeds or --startup-timeout-ms has passed (then a clear
 * OutboxSetupError, exit 3), pausing between tries (retry-policy.ts). Mistakes no retry fixes (a
 * refused login, a database that does not exist, a setup problem, poison with --on-poison stop)
 * fail at once.
 */
export async function untilReachable<T>(
  what: 'PostgreSQL' | 'Kafka',
  attempt: () => Promise<T>,
  context: ReachContext,
): Promise<T> {
  const { config, logger, signal } = context
  const deadline = Date.now() + config.startupTimeoutMs
  for (let tries = 0; ; tries++) {
    context.heartbeat()
    try {
      // stop() must not wait for a connection attempt that may take seconds to time out.
      return await Promise.race([attempt(), context.stopped()])
    } catch (error) {
      // Poison with --on-poison stop (the initial snapshot publishes at start) is no outage either.
      if (error instanceof OutboxSetupError || error instanceof OutboxPoisonEventError || signal.aborted) throw error
      const refused = refusedAtConnect(error) // a wrong password or database name is not transient
      if (refused) throw refused
      if (Date.now() >= deadline) {
        const where = what === 'Kafka' ? `Kafka at ${config.kafkaBrokers.join(',')}` : 'PostgreSQL at DATABASE_URL'
        const fix =
          what === 'Kafka'
            ? 'check KAFKA_BROKERS and that the brokers are up'
            : 'check DATABASE_URL and that the server is up'
        throw new OutboxSetupError(`cannot reach ${where} (${(error as Error).message}): ${fix}`, {
          code: 'OUTBOX_UNREACHABLE',
          cause: error,
        })
      }
      // Where it tried, without credentials: brokers are host:port, the URL only host, port and database.
      const at = what === 'Kafka' ? config.kafkaBrokers.join(',') : postgresAddress(config.databaseUrl)
      logger.warn({ ...errorFields(error), attempt: tries + 1, at }, `${what} at ${at} not reachable yet; retrying`)
      await waitBeforeRetry(config, tries, signal)
    }
  }
}
