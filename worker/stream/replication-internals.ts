import type { Socket } from 'node:net'
import type { LogicalReplicationService } from 'pg-logical-replication'

/*
 * pg-logical-replication has no public handle on its connection, and the stream needs two things
 * from it: the socket (to pause reads under backpressure and to destroy a half-open connection,
 * whose orderly end would wait forever) and the server process id (to tell whether the slot is
 * still held by this connection). Both are private fields, so this is the one place that reaches
 * inside; package.json pins the library's exact version and test/integration/plumbing.test.ts
 * fails if either field stops being there.
 */

/** The replication connection's socket, once connected. */
export function replicationSocket(service: LogicalReplicationService): Socket | undefined {
  return (service as unknown as { _connection?: { stream?: Socket } })._connection?.stream
}

/** The walsender's process id of the replication connection, once connected. */
export function replicationBackendPid(service: LogicalReplicationService): number | undefined {
  return (service as unknown as { _client?: { processID?: number | null } })._client?.processID ?? undefined
}
