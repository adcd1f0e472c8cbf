import type { Socket } from 'node:net'
import type { LogicalReplicationService } from 'pg-logical-replication'

/*
 * pg-logical-replication has no public handle on its connection, and the stream needs two things
 * from it: the socket (to pause reads under backpressure and to destroy a half-open connection,
 * whose orderly end would wait forever), the server process id (to tell whether the slot is
 * still held by this connection) and the connection itself, to send our own status updates
 * (status-update.ts: the library's carry a wrong timestamp). All are private fields, so this is the one place that reaches
 * inside; package.json pins the library's exact version and test/integration/plumbing.test.ts
 * fails if any of them stops being there.
 */

/** The replication connection's socket, once connected. */
export function replicationSocket(service: LogicalReplicationService): Socket | undefined {
  return (service as unknown as { _connection?: { stream?: Socket } })._connection?.stream
}

/** The walsender's process id of the replication connection, once connected. */
export function replicationBackendPid(service: LogicalReplicationService): number | undefined {
  return (service as unknown as { _client?: { processID?: number | null } })._client?.processID ?? undefined
}

/**
 * Sends a message of the replication protocol (CopyData) on the connection; false when there is no
 * connection yet. A write on a socket already closed is dropped by pg, as the library's own
 * status updates were. A connection without the method is a library that changed: rather than
 * never confirming the slot in silence, it throws.
 */
export function sendCopyData(service: LogicalReplicationService, message: Buffer): boolean {
  const connection = (service as unknown as { _connection?: { sendCopyFromChunk?(chunk: Buffer): void } })._connection
  if (!connection) return false
  if (typeof connection.sendCopyFromChunk !== 'function')
    throw new Error('pg-logical-replication changed: its connection cannot send status updates (sendCopyFromChunk)')
  connection.sendCopyFromChunk(message)
  return true
}
