import type { Socket } from 'node:net'

/**
 * Cuts a connection off. A plain TCP socket is reset (RST), so the kernel drops what it has not
 * yet delivered instead of retransmitting it for minutes: a produce request given up on must not
 * reach the broker after the next session's records. Node can reset only a TCP handle; a TLS
 * socket refuses (ERR_INVALID_HANDLE_TYPE) and is destroyed instead, which closes it without the
 * reset (see docs/worker.md, "Kafka clients": over TLS a request already handed to the kernel can still
 * arrive once a partition heals). Never throws, so whoever fences goes on to close the client.
 */
export function resetConnection(socket: Socket): void {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    // With an error, so a client that fails its requests in flight on 'error' does so now.
    socket.destroy(new Error('connection closed: the relay gave this client up'))
  }
}
