/**
 * Any logger given to createWorker receives redacted text, not only the CLI's: a driver message
 * that quotes a connection string (here a stand-in server's, as a pooler or proxy in front of
 * PostgreSQL may send) reaches a programmatic user's logger without the password.
 */
import type { Server } from 'node:net'
import { afterEach, expect, test } from 'vitest'
import { createWorker, type Logger } from '../../worker/index.js'
import { resolveConfig } from '../../worker/operations/config.js'
import { OutboxSetupError } from '../../worker/operations/errors.js'
import { redactingLogger } from '../../worker/operations/logger.js'
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

/**
 * Whether `text` holds `secret`, without printing either: a failed assertion shows only the
 * label, so the test output never carries a secret.
 */
function leaked(text: string, secrets: Record<string, string>): string[] {
  return Object.entries(secrets)
    .filter(([, secret]) => text.includes(secret))
    .map(([label]) => label)
}

test('fields that are no plain object, or nested deep, reach the logger redacted', () => {
  const lines: string[] = []
  const logger = redactingLogger(capturingLogger(lines))
  class DriverError extends Error {
    detail = 'while connecting to postgres://app:Fld-Pw-1@db/shop'
  }
  let deep: object = { url: 'postgres://app:Fld-Pw-1@db/shop' }
  for (let i = 0; i < 12; i++) deep = { inner: deep }
  logger.info({ url: new URL('postgres://app:Fld-Pw-1@db/shop') }, 'a URL')
  logger.info({ raw: Buffer.from('postgres://app:Fld-Pw-1@db/shop') }, 'a Buffer')
  logger.info({ error: new DriverError('failed: postgres://app:Fld-Pw-1@db/shop') }, 'an Error subclass')
  logger.info(deep, 'deep')
  expect(lines).toHaveLength(4)
  expect(leaked(lines.join('\n'), { password: 'Fld-Pw-1' })).toEqual([])
  // Still readable: the host is kept.
  expect(lines.join('\n')).toContain('@db/shop')
})

test('the passwords of the configuration are replaced wherever they appear, in any logger', () => {
  const secrets = { database: 'Db-Pw-@#9', sasl: 'Sasl-Pw-7' }
  resolveConfig({
    databaseUrl: `postgresql://app:${encodeURIComponent(secrets.database)}@db/shop`,
    kafkaBrokers: ['k:9092'],
    kafkaSaslMechanism: 'plain',
    kafkaSaslUsername: 'app',
    kafkaSaslPassword: secrets.sasl,
  } as never)
  const lines: string[] = []
  const logger = redactingLogger(capturingLogger(lines))
  // No URL nor "password=" around them: only the values themselves can tell.
  logger.warn({ sasl: { mechanism: 'plain', username: 'app', pass: secrets.sasl } }, 'kafka auth failed')
  logger.error({ detail: `role "app" with ${secrets.database} refused` }, `bad credentials ${secrets.sasl}`)
  logger.child({ bound: secrets.database }).info({}, 'child')
  expect(lines).toHaveLength(3)
  expect(leaked(lines.join('\n'), secrets)).toEqual([])
  expect(lines.join('\n')).toContain('kafka auth failed')
})

test('an OutboxSetupError keeps its cause, redacted', () => {
  const cause = Object.assign(new Error('cannot connect to postgres://app:Cause-Pw-3@db/shop'), {
    code: 'ECONNREFUSED',
  })
  const error = new OutboxSetupError('cannot reach PostgreSQL', { code: 'OUTBOX_UNREACHABLE', cause })
  const kept = error.cause as Error & { code?: string }
  expect(kept).toBeInstanceOf(Error)
  expect(kept.code).toBe('ECONNREFUSED')
  expect(leaked(`${kept.message}\n${kept.stack}`, { password: 'Cause-Pw-3' })).toEqual([])
  expect(kept.message).toContain('postgres://app:***@db/shop')
})
