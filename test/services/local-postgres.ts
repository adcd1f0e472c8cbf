import { execFileSync } from 'node:child_process'
import { appendFileSync, chownSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { guardServiceDir } from './guardian.js'
import { ManagedProcess } from './managed-process.js'
import { freePort } from './ports.js'
import { postgresBinDir, requestedPostgresMajor } from './postgres-binaries.js'

export interface LocalPostgres {
  url: string
  version: string
  /** Fast shutdown (SIGINT), as an operator's `pg_ctl stop -m fast`. */
  stop(): Promise<void>
  start(): Promise<void>
  /** Stops the server and removes its data directory. */
  dispose(): Promise<void>
}

/** PostgreSQL refuses to run as root; when we are root the server runs as the `postgres` user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    return { uid, gid }
  } catch {
    throw new Error(
      'running as root, but there is no `postgres` user to run PostgreSQL as (apt-get install -y postgresql creates it)',
    )
  }
}

/**
 * A throwaway PostgreSQL server (`wal_level=logical` unless told otherwise; `settings` are lines
 * added to postgresql.conf) on a free loopback port, in a fresh
 * data directory that is removed afterwards (also when the test run is killed; see guardian.ts).
 */
export async function startLocalPostgres(
  options: { walLevel?: 'logical' | 'replica'; settings?: string[] } = {},
): Promise<LocalPostgres> {
  const bin = await postgresBinDir()
  const user = serverUser()
  const dir = mkdtempSync('/tmp/prisma-outbox-pg-')
  const dataDir = join(dir, 'data')
  const disarm = guardServiceDir(join(dir, 'pid'), dir)
  if (user) chownSync(dir, user.uid, user.gid)
  const asServerUser = { uid: user?.uid, gid: user?.gid, env: { ...process.env, HOME: dir, LC_ALL: 'C.UTF-8' } }

  execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], {
    ...asServerUser,
    stdio: 'pipe',
  })
  const port = await freePort()
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    [
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      `wal_level = ${options.walLevel ?? 'logical'}`,
      'max_replication_slots = 64',
      'max_wal_senders = 64',
      'max_connections = 200',
      // Test data is disposable: skip fsync, keep synchronous_commit so WAL reaches
      // the walsender as soon as a transaction commits (as in production).
      'fsync = off',
      'full_page_writes = off',
      ...(options.settings ?? []),
      '',
    ].join('\n'),
  )

  const server = new ManagedProcess({
    name: 'postgres',
    command: join(bin, 'postgres'),
    args: ['-D', dataDir],
    ...asServerUser,
    logFile: join(dir, 'postgres.log'),
    pidFile: join(dir, 'pid'),
    stopSignal: 'SIGINT',
  })
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`

  // Restarted on the same port (fault tests): the port stays ours (ports.ts), and a conflict all
  // the same is retried.
  const start = () =>
    server.startUntil(
      () => canQuery(url),
      () => /Address already in use/.test(server.logTail(5)),
      30_000,
    )
  await start()
  const version = await queryOne(url, 'SHOW server_version')
  const dispose = async () => {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
    disarm()
  }
  const major = requestedPostgresMajor()
  if (major !== undefined && !version.startsWith(`${major}.`)) {
    await dispose()
    throw new Error(`OUTBOX_TEST_POSTGRES=${major} asked for PostgreSQL ${major}, but ${bin} started ${version}`)
  }

  return { url, version, start, stop: () => server.stop(), dispose }
}

async function canQuery(url: string): Promise<boolean> {
  await queryOne(url, 'SELECT 1')
  return true
}

async function queryOne(url: string, sql: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  await client.connect()
  try {
    const result = await client.query({ text: sql, rowMode: 'array' })
    return String(result.rows[0]?.[0])
  } finally {
    await client.end()
  }
}
