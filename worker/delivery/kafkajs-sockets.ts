import { isIP, connect as netConnect, Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { ISocketFactory } from 'kafkajs'
import { resetConnection } from './reset-connection.js'

/**
 * The sockets of one kafkajs client, so that a producer given up on can be cut off for good.
 * kafkajs's disconnect ends a socket gracefully, so the kernel keeps retransmitting a request the
 * broker has not acknowledged yet (for minutes, through a partition); and a send that fails while
 * disconnected makes kafkajs reconnect on its own. Resetting the sockets (RST) drops what is
 * unsent, and once sealed no new connection can be made.
 */
export class FencedSockets {
  private readonly sockets = new Set<Socket>()
  private sealed = false

  readonly factory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    if (this.sealed) {
      const dead = new Socket()
      process.nextTick(() => dead.destroy(new Error('this publisher is closed')))
      return dead
    }
    const socket = ssl
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
      : netConnect({ host, port }, onConnect)
    socket.setKeepAlive(true, 60_000)
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    return socket
  }

  /**
   * Resets every open connection. kafkajs listens for 'error' and 'end', not 'close': without
   * the error it would learn of the reset only when its request timed out (30 s).
   */
  resetAll(): void {
    for (const socket of this.sockets) {
      resetConnection(socket)
      socket.emit('error', new Error('connection reset: the relay gave this producer up'))
    }
    this.sockets.clear()
  }

  /** Resets every open connection and refuses new ones. */
  seal(): void {
    this.sealed = true
    this.resetAll()
  }
}
