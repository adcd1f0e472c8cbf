/**
 * Every side connection is bounded: a server that never answers the login, or never answers a
 * query, ends in an error instead of a job that waits forever. Two stand-in servers (no real
 * PostgreSQL) and fake timers, so the bounds pass in an instant.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, beforeEach, expect, test, vi } from 'vitest'
import { type Logger, silentLogger } from '../../worker/operations/logger.js'
import { SIDE_CONNECT_TIMEOUT_MS, SIDE_QUERY_TIMEOUT_MS } from '../../worker/operations/side-connection.js'
import { RetentionSchedule } from '../../worker/slot/retention.js'
import { readStatus } from '../../worker/slot/status.js'

let server: Server | undefined
const sockets: Socket[] = []

beforeEach(() => {
  // Only the timers: sockets, setImmediate and Date stay real.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
})
afterEach(async () => {
  vi.useRealTimers()
  for (const socket of sockets) socket.destroy()
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
  server = undefined
})

/** A port whose connections are accepted and then never answered (a black-holed network). */
async function blackHole(): Promise<number> {
  return await listen(() => {})
}

/**
 * A stand-in for PostgreSQL that accepts any login at once (AuthenticationOk, ReadyForQuery)
 * and then never answers a query; `asked` resolves when the first query arrives.
 */
async function silentAfterLogin(): Promise<{ port: number; asked: Promise<void> }> {
  let asked = () => {}
  const first = new Promise<void>((resolve) => {
    asked = resolve
  })
  const port = await listen((socket) => {
    let loggedIn = false
    socket.on('data', () => {
      if (loggedIn) return asked()
      loggedIn = true
      const ok = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]) // 'R', length 8, AuthenticationOk
      const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]) // 'Z', length 5, idle
      socket.write(Buffer.concat([ok, ready]))
    })
  })
  return { port, asked: first }
}

async function listen(onSocket: (socket: Socket) => void): Promise<number> {
  server = createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
    onSocket(socket)
  })
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
  return (server?.address() as { port: number }).port
}

/** Real event-loop turns (socket I/O) until `done` says so, or fails after `turns`. */
async function until(done: () => boolean, turns = 1000): Promise<void> {
  for (let i = 0; i < turns && !done(); i++) await new Promise((resolve) => setImmediate(resolve))
  expect(done()).toBe(true)
}

test('retention on a server that never answers the login: the run fails within the connect timeout and is retried', async () => {
  const port = await blackHole()
  const warnings: string[] = []
  const logger: Logger = { ...silentLogger, warn: (_fields, message) => warnings.push(message) }
  const schedule = new RetentionSchedule(
    { databaseUrl: `postgresql://app@127.0.0.1:${port}/app`, table: 'outbox', retentionMs: 3_600_000 },
    logger,
    () => Date.now(),
  )
  schedule.whenDue()
  await until(() => sockets.length === 1)
  await vi.advanceTimersByTimeAsync(SIDE_CONNECT_TIMEOUT_MS)
  await until(() => warnings.length > 0)
  expect(warnings).toEqual(['retention: delete failed; will try again'])
})

test('status on a server that logs in and never answers a query: an error within the query timeout', async () => {
  const { port, asked } = await silentAfterLogin()
  const status = readStatus({
    databaseUrl: `postgresql://app@127.0.0.1:${port}/app`,
    slot: 'prisma_outbox',
    publication: 'prisma_outbox',
    table: 'outbox',
  })
  let outcome: unknown
  status.then(
    () => (outcome = 'answered'),
    (error: unknown) => (outcome = error),
  )
  await asked
  await vi.advanceTimersByTimeAsync(SIDE_QUERY_TIMEOUT_MS)
  await until(() => outcome !== undefined)
  expect((outcome as Error).message).toMatch(/timeout/i)
})
