import { createServer, type Server } from 'node:http'
import { OutboxConfigError } from './errors.js'
import type { Logger } from './logger.js'
import type { Metrics } from './metrics.js'

/**
 * `/healthz`: the process is alive. `/readyz`: this worker streams the slot and Kafka accepts
 * its sends (a standby is alive but not ready). `/metrics`: Prometheus text.
 */
export async function startHealthServer(options: {
  host: string
  port: number
  metrics: Metrics
  isReady: () => boolean
  logger: Logger
}): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
    } else if (path === '/readyz') {
      const ready = options.isReady()
      response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n')
    } else if (path === '/metrics') {
      options.metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(text),
        (error: Error) => response.writeHead(500).end(error.message),
      )
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n')
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(error, options.host, options.port)))
    server.listen(options.port, options.host, () => resolve())
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  options.logger.info({ port }, 'health server listening: /healthz /readyz /metrics')
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/**
 * A port already taken is usually a second worker on the same host: a configuration that cannot
 * work here (exit 2), with the way to run both.
 */
function listenError(error: NodeJS.ErrnoException, host: string, port: number): Error {
  if (error.code === 'EADDRINUSE') {
    return new OutboxConfigError(
      `the health port ${port} on ${host} is already in use (another worker on this host?): ` +
        'give this worker another port with HEALTH_PORT or --health-port, or 0 to turn its health server off',
    )
  }
  return error
}
