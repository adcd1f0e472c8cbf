import type { Server } from 'node:http'
import { OutboxConfigError } from './errors.js'
import type { Logger } from './logger.js'
import { type Metrics, processMetrics } from './metrics.js'

// Not `import ... from 'node:http'`: on Node 22+ that import reads every export of the module,
// and some of them load Node's fetch implementation (undici), about 25 ms of the worker's start
// that nothing here uses. getBuiltinModule returns the module as it is.
const { createServer } = process.getBuiltinModule('node:http')

/**
 * `/healthz`: the run loop makes progress (liveness). `/readyz`: the worker does its part, an
 * active one whose events flow or a standby that can take over (readiness). `/status`: the
 * worker's state as JSON. `/metrics`: Prometheus text, the worker's and the process's. The rules
 * are in probes.ts; docs/probes.md is their table.
 */
export async function startHealthServer(options: {
  host: string
  port: number
  metrics: Metrics
  isReady: () => boolean
  isLive: () => boolean
  status: () => Promise<unknown>
  logger: Logger
}): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]
    const failed = (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(error.message)
    if (path === '/healthz') {
      const live = options.isLive()
      response.writeHead(live ? 200 : 503, { 'content-type': 'text/plain' }).end(live ? 'ok\n' : 'wedged\n')
    } else if (path === '/readyz') {
      const ready = options.isReady()
      response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n')
    } else if (path === '/status') {
      options
        .status()
        .then(
          (status) =>
            response.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(status, null, 2)}\n`),
          failed,
        )
    } else if (path === '/metrics') {
      const registry = options.metrics.registry
      Promise.all([registry.metrics(), processMetrics().metrics()]).then(
        ([worker, process]) => response.writeHead(200, { 'content-type': registry.contentType }).end(worker + process),
        failed,
      )
    } else {
      response
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /healthz, /readyz, /status or /metrics\n')
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(error, options.host, options.port)))
    server.listen(options.port, options.host, () => resolve())
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  options.logger.info({ port }, 'health server listening: /healthz /readyz /status /metrics')
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
