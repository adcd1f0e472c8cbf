/**
 * A refused login is not "not reachable yet": the worker fails at once with the fix. A tiny
 * stand-in server answers every connection the way PostgreSQL answers a refused login (an
 * ErrorResponse with the SQLSTATE), so no real server with password authentication is needed.
 */
import type { Server } from 'node:net'
import { afterEach, expect, test } from 'vitest'
import { createWorker, OutboxSetupError } from '../../worker/index.js'
import { refusingServer as refusingOn } from '../helpers/refusing-server.js'

let server: Server | undefined
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
})

/** Listens on a free port and refuses every login with `sqlstate` and `message`. */
async function refusingServer(sqlstate: string, message: string): Promise<number> {
  const refusing = await refusingOn(sqlstate, message)
  server = refusing.server
  return refusing.port
}

function workerOn(port: number) {
  return createWorker({
    databaseUrl: `postgresql://app:wrong-pw@127.0.0.1:${port}/app`,
    kafkaBrokers: ['127.0.0.1:1'],
    healthPort: 0,
    // Were the refusal retried, start() would outlive the test's own 5 s timeout.
    startupTimeoutMs: 60_000,
  })
}

test('a wrong password (28P01) fails at start, without retrying, saying to check the user and password', async () => {
  const port = await refusingServer('28P01', 'password authentication failed for user "app"')
  const worker = workerOn(port)
  const error = await worker.start().catch((e: unknown) => e)
  expect(error).toBeInstanceOf(OutboxSetupError)
  expect(error).toMatchObject({ code: 'OUTBOX_LOGIN_REFUSED' })
  expect((error as Error).message).toBe(
    'PostgreSQL refused the login (password authentication failed for user "app"): check the user and password in DATABASE_URL',
  )
  expect((error as Error).message).not.toContain('wrong-pw')
})

test('no pg_hba.conf entry (28000) fails at start too, naming pg_hba.conf', async () => {
  const port = await refusingServer('28000', 'no pg_hba.conf entry for host "127.0.0.1", user "app", database "app"')
  const error = await workerOn(port)
    .start()
    .catch((e: unknown) => e)
  expect((error as Error).message).toMatch(
    /^PostgreSQL refused the login \(no pg_hba\.conf entry .*\): check the user and password in DATABASE_URL, and that pg_hba\.conf lets this user connect from this host$/,
  )
})

test('a database that does not exist (3D000) fails at start too, as a configuration mistake, not an outage', async () => {
  const port = await refusingServer('3D000', 'database "app" does not exist')
  const started = Date.now()
  const error = await workerOn(port)
    .start()
    .catch((e: unknown) => e)
  expect(Date.now() - started).toBeLessThan(5_000)
  expect(error).toBeInstanceOf(OutboxSetupError)
  expect(error).toMatchObject({ code: 'OUTBOX_NO_DATABASE' })
  expect((error as Error).message).toBe(
    'PostgreSQL has no such database (database "app" does not exist): check the database name at the end of DATABASE_URL, or create the database and apply your migrations',
  )
})
