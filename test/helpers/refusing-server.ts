import { createServer, type Server } from 'node:net'

/**
 * A stand-in for PostgreSQL that answers every connection with one ErrorResponse (its SQLSTATE
 * and message), the way the server refuses a login or a connection: what the driver then
 * reports is exactly `message`, so no real server in that state is needed.
 */
export async function refusingServer(sqlstate: string, message: string): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => {
    socket.once('data', () => {
      const fields = Buffer.concat([
        ...['SFATAL', 'VFATAL', `C${sqlstate}`, `M${message}`].map((f) => Buffer.from(`${f}\0`)),
        Buffer.from([0]),
      ])
      const header = Buffer.alloc(5)
      header.write('E', 0)
      header.writeInt32BE(fields.length + 4, 1)
      socket.end(Buffer.concat([header, fields]))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as { port: number }).port, server }
}
