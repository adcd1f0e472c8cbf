import { errorTree } from '../worker/operations/error-tree.js'

/**
 * Whether an error says the database could not be reached, as opposed to a handler that failed:
 * such a record is retried until the database is back, never parked (parking needs the database
 * too, and the record did nothing wrong). Walks the error's whole tree (errorTree): Prisma wraps the
 * driver adapter's error, which carries either a `kind` (adapter-pg's mapping) or the socket's `code`.
 */
const UNREACHABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections'])
const UNREACHABLE_CODES = new Set([
  // Prisma: can't reach, timed out, server closed the connection, pool timeout.
  'P1001',
  'P1002',
  'P1017',
  'P2024',
  // PostgreSQL: shutting down, starting up, too many connections.
  '57P01',
  '57P02',
  '57P03',
  '53300',
])
/** Any socket's failure: the database's, or a service the handler calls (see outageSign). */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * `database`: Prisma, its adapter or PostgreSQL says the database could not be reached. `socket`:
 * only a socket's code, which a handler's own call to another service (HTTP, a queue) raises too:
 * an outage only if the database does not answer either, which the caller checks.
 */
export function outageSign(error: unknown): 'database' | 'socket' | undefined {
  let socket = false
  for (const { kind, code } of errorTree(error)) {
    if (typeof kind === 'string' && UNREACHABLE_KINDS.has(kind)) return 'database'
    if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return 'database'
    if (typeof code === 'string' && SOCKET_CODES.has(code)) socket = true
  }
  return socket ? 'socket' : undefined
}
