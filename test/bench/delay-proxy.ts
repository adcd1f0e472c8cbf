import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of PostgreSQL that holds every chunk for `oneWayMs` in each direction, so
 * a round trip costs about 2 × oneWayMs more, as across a network (this machine's loopback costs
 * next to nothing). Node's timers round up to whole milliseconds, so 1 ms is the smallest step.
 */
export async function startDelayProxy(url: string, oneWayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(url)
  const sockets = new Set<Socket>()
  const forward = (from: Socket, to: Socket) => {
    from.on('data', (chunk) => {
      // Same delay for every chunk: timers due at the same offset fire in order, so bytes do too.
      setTimeout(() => to.writable && to.write(chunk), oneWayMs)
    })
    from.on('close', () => setTimeout(() => to.destroy(), oneWayMs))
    from.on('error', () => to.destroy())
  }
  const server: Server = createServer((client) => {
    client.setNoDelay(true)
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) })
    upstream.setNoDelay(true)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    }
    forward(client, upstream)
    forward(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const proxied = new URL(url)
  proxied.hostname = '127.0.0.1'
  proxied.port = String((server.address() as { port: number }).port)
  return {
    url: proxied.toString(),
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
