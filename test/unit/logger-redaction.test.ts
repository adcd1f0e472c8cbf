/**
 * Any logger given to createWorker receives redacted text, not only the CLI's: a driver message
 * that quotes a connection string (here a stand-in server's, as a pooler or proxy in front of
 * PostgreSQL may send) reaches a programmatic user's logger without the password.
 */
import type { Server } from 'node:net'
import { afterEach, expect, test } from 'vitest'
import { createWorker, type Logger } from '../../worker/index.js'
import { refusingServer } from '../helpers/refusing-server.js'

let server: Server | undefined
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
})

/** Records everything it is given, child loggers' bound fields included, as text. */
function capturingLogger(lines: string[], bound: object = {}): Logger {
  const log = (level: string) => (fields: object, message: string) => {
    lines.push(JSON.stringify({ level, ...bound, ...fields, message }))
  }
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (fields) => capturingLogger(lines, { ...bound, ...fields }),
  }
}

test.each([
  // Transient: logged at each retry ("not reachable yet"), then as the cause of the failure.
  ['57P03', 'no server available for postgresql://app:hunter2@db:5432/app, retry later'],
  // A refused login: fails at once, the driver's message inside the error logged.
  ['28P01', 'password authentication failed for "postgresql://app:hunter2@db:5432/app"'],
])('a driver message (SQLSTATE %s) quoting the URL reaches an injected logger without the password', async (sqlstate, message) => {
  const refusing = await refusingServer(sqlstate, message)
  server = refusing.server
  const lines: string[] = []
  const worker = createWorker({
    databaseUrl: `postgresql://app:hunter2@127.0.0.1:${refusing.port}/app`,
    kafkaBrokers: ['127.0.0.1:1'],
    healthPort: 0,
    startupTimeoutMs: 300,
    retryInitialMs: 50,
    logger: capturingLogger(lines),
  })
  const error = await worker.start().catch((e: unknown) => e)
  // What start() rejects with is printed too, often by that same logger.
  expect((error as Error).message).not.toContain('hunter2')
  // The driver's message did reach the logger, so the assertion below can fail.
  expect(lines.join('\n')).toContain('@db:5432/app')
  expect(lines.join('\n')).not.toContain('hunter2')
  expect(lines.join('\n')).toContain('postgresql://app:***@db:5432/app')
})
