/**
 * What an operator sees when the setup is wrong: one line on stderr naming the problem and the
 * fix, a documented exit code (2 configuration, 3 setup), and never a password.
 */
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest'
import { createTestDatabase, type TestDatabase, uniqueName, withDatabase } from '../helpers/database.js'
import { spawnWorker } from '../helpers/worker.js'
import { type LocalPostgres, startLocalPostgres } from '../services/local-postgres.js'

function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'worker/cli.ts', ...args], {
    env: {
      PATH: process.env.PATH,
      HEALTH_PORT: '0',
      OUTBOX_STARTUP_TIMEOUT_MS: '1500',
      OUTBOX_RETRY_INITIAL_MS: '100',
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: result.status, stderr: result.stderr, stdout: result.stdout, all: result.stdout + result.stderr }
}

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
})
afterAll(async () => {
  await db?.dispose()
})

describe('configuration errors exit 2 with one clear line', () => {
  test.each([
    ['no DATABASE_URL', [], { KAFKA_BROKERS: '127.0.0.1:9092' }, /DATABASE_URL is not set/],
    [
      'a malformed DATABASE_URL',
      [],
      { DATABASE_URL: 'not a url', KAFKA_BROKERS: '127.0.0.1:9092' },
      /DATABASE_URL is not a valid URL/,
    ],
    [
      'a non-postgres URL',
      [],
      { DATABASE_URL: 'mysql://u:pw@h/db', KAFKA_BROKERS: '127.0.0.1:9092' },
      /must start with postgresql:\/\//,
    ],
    ['no KAFKA_BROKERS', [], { DATABASE_URL: 'postgresql://u@h/db' }, /KAFKA_BROKERS is not set/],
    ['an unknown flag', ['--bogus'], {}, /Unknown option '--bogus'.*--help/],
    ['an unknown command', ['launch'], {}, /unknown command "launch"/],
    [
      'a bad topic template',
      ['--topic', '{nope}'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /OUTBOX_TOPIC "\{nope\}" uses \{nope\}/,
    ],
    [
      'a bad --on-poison',
      ['--on-poison', 'ignore'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /OUTBOX_ON_POISON must be one of dlq, stop/,
    ],
    [
      'a bad number',
      ['--batch-size', 'lots'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /--batch-size must be a whole number/,
    ],
  ])('%s', (_name, args, env, message) => {
    const { code, stderr } = cli(args as string[], env as Record<string, string>)
    expect(code).toBe(2)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toMatch(message as RegExp)
    expect(stderr).not.toMatch(/\n\s+at /) // no stack trace
  })

  test('flags win over environment variables', () => {
    const { stderr } = cli(['--database-url', 'mysql://x'], {
      DATABASE_URL: 'postgresql://u@h/db',
      KAFKA_BROKERS: 'h:1',
    })
    expect(stderr).toMatch(/must start with postgresql/)
  })

  test('--help lists every flag with its variable and default', () => {
    const { code, stdout } = cli(['--help'])
    expect(code).toBe(0)
    for (const text of [
      '--database-url',
      'DATABASE_URL',
      'OUTBOX_SLOT',
      '(default: prisma_outbox)',
      'HEALTH_PORT',
      '(default: 9464)',
      'KAFKA_SASL_PASSWORD',
    ]) {
      expect(stdout).toContain(text)
    }
  })
})

describe('setup problems exit 3 naming the fix, never printing the password', () => {
  test('unreachable PostgreSQL: the password in DATABASE_URL is redacted', () => {
    const { code, all } = cli([], {
      DATABASE_URL: 'postgresql://app:hunter2@127.0.0.1:1/db',
      KAFKA_BROKERS: '127.0.0.1:1',
    })
    expect(code).toBe(3)
    expect(all).toMatch(/cannot reach PostgreSQL/)
    expect(all).not.toContain('hunter2')
  })

  test('unreachable Kafka at start', () => {
    const { code, stderr } = cli([], {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: '127.0.0.1:1',
      OUTBOX_SLOT: uniqueName('slot'),
    })
    expect(code).toBe(3)
    expect(stderr).toMatch(/cannot reach Kafka at 127\.0\.0\.1:1.*check KAFKA_BROKERS/)
  })

  test('a missing publication', async () => {
    const bare = await createTestDatabase(inject('databaseUrl'), { migrate: false })
    try {
      const { code, stderr } = cli([], { DATABASE_URL: bare.url, KAFKA_BROKERS: inject('kafkaBrokers').join(',') })
      expect(code).toBe(3)
      expect(stderr).toMatch(/publication "prisma_outbox" does not exist: apply the outbox migration/)
    } finally {
      await bare.dispose()
    }
  })

  test('a role without REPLICATION, with its password redacted', async () => {
    const role = uniqueName('app')
    await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'sekrit-pw'`)
    try {
      const url = new URL(db.url)
      url.username = role
      url.password = 'sekrit-pw'
      const { code, all } = cli([], { DATABASE_URL: url.toString(), KAFKA_BROKERS: inject('kafkaBrokers').join(',') })
      expect(code).toBe(3)
      expect(all).toMatch(/lacks the REPLICATION attribute/)
      expect(all).not.toContain('sekrit-pw')
    } finally {
      await db.query(`DROP ROLE ${role}`)
    }
  })
})

describe('wal_level=replica', () => {
  let replica: LocalPostgres
  beforeAll(async () => {
    replica = await startLocalPostgres({ walLevel: 'replica' })
  })
  afterAll(async () => {
    await replica?.dispose()
  })

  test('the worker and status say exactly what to change', () => {
    const run = cli([], { DATABASE_URL: replica.url, KAFKA_BROKERS: inject('kafkaBrokers').join(',') })
    expect(run.code).toBe(3)
    expect(run.stderr).toMatch(/wal_level is "replica".*ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/)
    const status = cli(['status'], { DATABASE_URL: withDatabase(replica.url, 'postgres') })
    expect(status.code).toBe(3)
    expect(status.stdout).toMatch(/BROKEN/)
    expect(status.stdout).toMatch(/wal_level is replica/)
  })
})

test('status --json reports the slot, its confirmed LSN and lag once a worker has run', async () => {
  const slot = uniqueName('slot')
  const env = { DATABASE_URL: db.url, KAFKA_BROKERS: inject('kafkaBrokers').join(','), OUTBOX_SLOT: slot }
  expect(cli(['status'], env).code).toBe(3) // no slot yet: events committed now would not be streamed
  const worker = await spawnWorker(env)
  await worker.waitForLog(/"msg":"streaming"/)
  const { code, stdout } = cli(['status', '--json'], env)
  await worker.kill('SIGTERM')
  expect(code).toBe(0)
  const report = JSON.parse(stdout)
  expect(report).toMatchObject({
    healthy: true,
    walLevel: 'logical',
    publication: { name: 'prisma_outbox', exists: true, tables: ['public.outbox'] },
    slot: { name: slot, exists: true, active: true },
  })
  expect(report.slot.confirmedLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
  expect(report.slot.lagBytes).toBeGreaterThanOrEqual(0)
})
