import pg from 'pg'

/**
 * How long a side connection may take to be ready for queries (TCP, TLS, the login). A server
 * that never answers (a black-holed network) must end in an error the caller logs or retries,
 * never in a job that waits forever. The liveness and standby bounds in docs/probes.md count on
 * this and the query timeout below: change them together.
 */
export const SIDE_CONNECT_TIMEOUT_MS = 5_000

/**
 * How long one query may go unanswered before the client gives up on it: the checks are small
 * (settings, the slot's row, the publication), so this long means the server or the network is
 * gone, and the session or command ends rather than hangs.
 */
export const SIDE_QUERY_TIMEOUT_MS = 15_000

/** No client-side bound on a query: only for statements that may rightly run long (say why). */
export const NO_QUERY_TIMEOUT = 0

export interface SideConnectionOptions {
  /**
   * Overrides SIDE_QUERY_TIMEOUT_MS, for statements that may rightly take longer; NO_QUERY_TIMEOUT
   * for none. Counts only while a query waits for its answer, not while the connection is idle.
   */
  queryTimeoutMs?: number
  /** A replication connection (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT) instead of a plain one. */
  replication?: boolean
  /** Names the connection in pg_stat_activity, for an operator looking at who holds what. */
  applicationName?: string
  /** TCP keepalives from this side after this much silence: for a connection that may wait long. */
  keepAliveAfterMs?: number
  /** Settings for this session on the server (`name=value`, sent as `-c name=value`). */
  serverSettings?: string[]
}

/**
 * A client for a short-lived side connection to DATABASE_URL (checks, status, retention, the
 * snapshot, republish; not the stream), bounded by the timeouts above unless the caller says
 * otherwise. Not yet connected: the caller connects it and ends it. Its errors (a server that goes
 * away between queries) surface in the query that meets them, not as an unhandled 'error' event.
 */
export function sideConnection(databaseUrl: string, options: SideConnectionOptions = {}): pg.Client {
  const config: pg.ClientConfig & { replication?: string } = {
    connectionString: databaseUrl,
    connectionTimeoutMillis: SIDE_CONNECT_TIMEOUT_MS,
  }
  const queryTimeoutMs = options.queryTimeoutMs ?? SIDE_QUERY_TIMEOUT_MS
  if (queryTimeoutMs !== NO_QUERY_TIMEOUT) config.query_timeout = queryTimeoutMs
  if (options.replication) config.replication = 'database'
  if (options.applicationName !== undefined) config.application_name = options.applicationName
  if (options.keepAliveAfterMs !== undefined) {
    config.keepAlive = true
    config.keepAliveInitialDelayMillis = options.keepAliveAfterMs
  }
  if (options.serverSettings?.length) config.options = options.serverSettings.map((s) => `-c ${s}`).join(' ')
  const client = new pg.Client(config)
  client.on('error', () => {})
  return client
}
