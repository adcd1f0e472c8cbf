/**
 * What an operator sees when the setup is wrong: one line on stderr naming the problem and the
 * fix, a documented exit code (2 configuration, 3 setup), and never a password.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, type OnTestFinishedHandler, test } from 'vitest'
import { type CliResult, runCli, workerCli } from '../helpers/cli.js'
import { createTestDatabase, type TestDatabase, uniqueName, withDatabase } from '../helpers/database.js'
import { spawnWorker } from '../helpers/worker.js'
import { type LocalPostgres, startLocalPostgres } from '../services/local-postgres.js'

/** `outbox-worker <args>` with short start-up waits, to its exit. */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { HEALTH_PORT: '0', OUTBOX_STARTUP_TIMEOUT_MS: '1500', OUTBOX_RETRY_INITIAL_MS: '100', ...env })
}

/**
 * A directory of the running test's own, removed when it ends (through the test context's hook:
 * these tests run concurrently).
 */
function temporaryDir(prefix: string, onTestFinished: (fn: OnTestFinishedHandler) => void): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** What `command` prints when its stdout is a terminal (`script` gives it one). */
function onTerminal(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 60_000,
    })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.once('error', reject)
    child.once('close', () => resolve(output))
  })
}

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'))
})
afterAll(async () => {
  await db?.dispose()
})

describe.concurrent('configuration errors exit 2 with one clear line', () => {
  test.each([
    [
      'no DATABASE_URL: the ways to give it, not a flag that is refused',
      [],
      { KAFKA_BROKERS: '127.0.0.1:9092' },
      /^outbox-worker: DATABASE_URL is not set: set it in the environment \(export DATABASE_URL=postgresql:\/\/\.\.\.\), or load your \.env with --env-file \.env, or set DATABASE_URL_FILE to a file holding it$/,
    ],
    ['tail without a topic', ['tail'], {}, /^outbox-worker: tail needs a topic: outbox-worker tail <topic>/],
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
    ['an unknown flag', ['--bogus'], {}, /^outbox-worker: unknown option --bogus \(see outbox-worker --help\)$/],
    [
      'a misspelt flag',
      ['--health_port', '0'],
      {},
      /^outbox-worker: unknown option --health_port: did you mean --health-port\? \(see outbox-worker --help\)$/,
    ],
    ['a flag without its value', ['--slot'], {}, /^outbox-worker: --slot needs a value: --slot <value>/],
    [
      'a flag followed by another flag instead of its value',
      ['--slot', '--table', 'outbox'],
      {},
      /^outbox-worker: --slot needs a value/,
    ],
    ['an unknown command', ['launch'], {}, /unknown command "launch"/],
    [
      'a bad topic template',
      ['--topic', '{nope}'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --topic "\{nope\}" uses \{nope\}; allowed: \{aggregateType\}, \{type\}$/,
    ],
    [
      'a bad --on-poison',
      ['--on-poison', 'ignore'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --on-poison must be one of dlq, stop; got "ignore"$/,
    ],
    [
      'a bad number',
      ['--batch-size', 'lots'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /--batch-size must be a whole number/,
    ],
    [
      'a zero batch size, named as the flag was typed',
      ['--batch-size', '0'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --batch-size must be a positive whole number, got 0$/,
    ],
    [
      'a zero message size, named as the variable was set',
      [],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1', OUTBOX_MAX_MESSAGE_BYTES: '0' },
      /^outbox-worker: OUTBOX_MAX_MESSAGE_BYTES must be a positive whole number, got 0$/,
    ],
    [
      'a port out of range as a flag',
      ['--health-port', '99999'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --health-port must be a port number \(1-65535\), or 0 to turn the health server off; got 99999$/,
    ],
    [
      'a port out of range as a variable',
      [],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1', HEALTH_PORT: '99999' },
      /^outbox-worker: HEALTH_PORT must be a port number/,
    ],
    [
      'a standby poll of 0 ms',
      ['--standby-poll-ms', '0'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --standby-poll-ms must be a positive whole number, got 0$/,
    ],
    [
      'an unknown SASL mechanism',
      ['--kafka-sasl-mechanism', 'GSSAPI'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --kafka-sasl-mechanism must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; got "GSSAPI"$/,
    ],
    [
      // Kafka's spelling is accepted: the error is about the missing credentials, not the name.
      'a SASL mechanism as Kafka spells it, without credentials',
      ['--kafka-sasl-mechanism', 'SCRAM-SHA-512'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --kafka-sasl-mechanism is set: also give the user name \(--kafka-sasl-username or KAFKA_SASL_USERNAME\) and the password \(KAFKA_SASL_PASSWORD\)$/,
    ],
    [
      // --kafka-ssl is a switch: alone, it does not swallow the next flag as its value.
      '--kafka-ssl alone, followed by another flag',
      ['--kafka-ssl', '--slot', 'Bad-Slot'],
      { DATABASE_URL: 'postgresql://u@h/db', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --slot "Bad-Slot" must be a plain identifier/,
    ],
    [
      'a malformed URL: the hint shows the form, readable, and no secret',
      [],
      { DATABASE_URL: 'postgresql//app:hunter2@db/x', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: DATABASE_URL is not a valid URL: use postgresql:\/\/<user>:<password>@<host>:5432\/<database>$/,
    ],
    [
      // A flag shows in ps: the database URL (with its password) is a secret.
      'the database URL as a flag',
      ['--database-url', 'postgresql://app:hunter2@db/x'],
      { KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: --database-url is not accepted: a flag shows in ps to every user of the machine; set DATABASE_URL in the environment, or DATABASE_URL_FILE to the path of a file holding it$/,
    ],
    [
      'a secret file that cannot be read',
      [],
      { DATABASE_URL_FILE: '/nonexistent/db-url', KAFKA_BROKERS: 'h:1' },
      /^outbox-worker: DATABASE_URL_FILE=\/nonexistent\/db-url cannot be read \(ENOENT\): check the path$/,
    ],
  ])('%s', async (_name, args, env, message) => {
    const { code, stderr } = await cli(args as string[], env as Record<string, string>)
    expect(code).toBe(2)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr.trim()).toMatch(message as RegExp)
    expect(stderr).not.toMatch(/\n\s+at /) // no stack trace
    expect(stderr).not.toMatch(/hunter2|batchSize|maxMessageBytes|healthPort|standbyPollMs|kafkaSasl/)
  })

  test('flags win over environment variables', async () => {
    const { stderr } = await cli(['--slot', 'Bad-Slot'], {
      DATABASE_URL: 'postgresql://u@h/db',
      KAFKA_BROKERS: 'h:1',
      OUTBOX_SLOT: 'fine',
    })
    expect(stderr).toMatch(/--slot "Bad-Slot"/)
  })

  test('DATABASE_URL_FILE: the URL is read from the file (a mounted secret)', async ({ onTestFinished }) => {
    const file = join(temporaryDir('outbox-secret-', onTestFinished), 'url')
    writeFileSync(file, 'mysql://x\n')
    const { stderr } = await cli([], { DATABASE_URL_FILE: file, KAFKA_BROKERS: 'h:1' })
    expect(stderr).toMatch(/^outbox-worker: DATABASE_URL_FILE must start with postgresql/)
  })

  test("--env-file loads the app's .env; variables already set win; no .env is read unless asked", async ({
    onTestFinished,
  }) => {
    const dir = temporaryDir('outbox-env-', onTestFinished)
    writeFileSync(join(dir, '.env'), 'DATABASE_URL="mysql://from-env-file"\nOUTBOX_SLOT=Bad-From-File\n')
    const loaded = await cli(['--env-file', join(dir, '.env')], { KAFKA_BROKERS: 'h:1' })
    expect(loaded.code).toBe(2)
    expect(loaded.stderr).toMatch(/^outbox-worker: DATABASE_URL must start with postgresql:\/\/, not mysql:/)
    const setWins = await cli(['--env-file', join(dir, '.env')], {
      KAFKA_BROKERS: 'h:1',
      DATABASE_URL: 'postgresql://u@h/db',
    })
    expect(setWins.stderr).toMatch(/OUTBOX_SLOT "Bad-From-File"/)
    const missing = await cli(['--env-file', '/nonexistent/.env'], { KAFKA_BROKERS: 'h:1' })
    if (missing.code === 9) {
      // Node itself (20.20, 22.23 and 24.21 here) reads --env-file even after the script's name,
      // and refuses a missing file before the worker runs: its own message, its own exit code.
      expect(missing.code).toBe(9)
      expect(missing.stderr).toContain('/nonexistent/.env: not found')
    } else {
      expect(missing.code).toBe(2)
      expect(missing.stderr.trim()).toBe(
        'outbox-worker: --env-file /nonexistent/.env: no such file; give the path of the file holding DATABASE_URL (usually .env)',
      )
    }
    // Run from the folder holding .env without the flag: it is not read.
    const result = await runCli([], { KAFKA_BROKERS: 'h:1', HEALTH_PORT: '0' }, { cwd: dir })
    expect(result.stderr).toMatch(/DATABASE_URL is not set/)
  })

  test('--help lists every flag with its variable and default', async () => {
    const { code, stdout } = await cli(['--help'])
    expect(code).toBe(0)
    for (const text of [
      'DATABASE_URL',
      'DATABASE_URL_FILE',
      'OUTBOX_SLOT',
      '(default: prisma_outbox)',
      'HEALTH_PORT',
      '(default: 9464)',
      'KAFKA_SASL_PASSWORD_FILE',
      '--env-file <path>',
      'tail <topic>',
    ]) {
      expect(stdout).toContain(text)
    }
    // Durations as they are written: 60s, not 60000.
    expect(stdout).toMatch(/--missing-topic-timeout .*\(default: 60s\)/)
    expect(stdout).toMatch(/--liveness-timeout .*\(default: 2m\)/)
    expect(stdout).toMatch(/--table-check-interval .*\(default: 5s\)/)
    expect(stdout).toMatch(/--retention .*\(default: off\)/)
  })
})

describe.concurrent('setup problems exit 3 naming the fix, never printing the password', () => {
  test('unreachable PostgreSQL: the password in DATABASE_URL is redacted', async () => {
    const { code, all } = await cli([], {
      DATABASE_URL: 'postgresql://app:hunter2@127.0.0.1:1/db',
      KAFKA_BROKERS: '127.0.0.1:1',
    })
    expect(code).toBe(3)
    expect(all).toMatch(/cannot reach PostgreSQL/)
    expect(all).not.toContain('hunter2')
  })

  test('a database that does not exist (3D000): exit 3 at once, not retried as unreachable', async () => {
    const started = Date.now()
    const { code, all, stderr } = await cli([], {
      DATABASE_URL: withDatabase(db.url, uniqueName('nodb')),
      KAFKA_BROKERS: '127.0.0.1:1',
      OUTBOX_STARTUP_TIMEOUT_MS: '30000',
    })
    expect(code).toBe(3)
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(stderr).toMatch(
      /^outbox-worker: PostgreSQL has no such database \(database "nodb_\w+" does not exist\): check the database name/,
    )
    expect(all).not.toMatch(/not reachable yet/)
  })

  test('logs are readable lines on a terminal, JSON lines otherwise; retry lines say where, without the password', async () => {
    const env = {
      DATABASE_URL: 'postgresql://app:hunter2@127.0.0.1:1/db',
      KAFKA_BROKERS: '127.0.0.1:1',
      OUTBOX_STARTUP_TIMEOUT_MS: '1200',
    }
    const piped = await cli([], env)
    expect(piped.stdout).toMatch(
      /^\{"level":40,.*"msg":"PostgreSQL at 127\.0\.0\.1:1\/db not reachable yet; retrying"\}$/m,
    )
    // `script` gives the worker a terminal for its stdout.
    const command = ['env', '-i', `PATH=${process.env.PATH}`, 'HEALTH_PORT=0', 'OUTBOX_RETRY_INITIAL_MS=100']
    for (const [name, value] of Object.entries(env)) command.push(`${name}=${value}`)
    command.push(process.execPath, workerCli)
    const tty = await onTerminal(command.join(' '))
    expect(tty).toMatch(/WARN.*PostgreSQL at 127\.0\.0\.1:1\/db not reachable yet; retrying/)
    expect(tty).not.toMatch(/\{"level"/)
    expect(piped.all + tty).not.toContain('hunter2')
  })

  test('unreachable Kafka at start', async () => {
    const { code, stderr, stdout } = await cli([], {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: '127.0.0.1:1',
      OUTBOX_SLOT: uniqueName('slot'),
    })
    expect(code).toBe(3)
    expect(stderr).toMatch(/cannot reach Kafka at 127\.0\.0\.1:1.*check KAFKA_BROKERS/)
    // Each retry says where it tried.
    expect(stdout).toMatch(/"at":"127\.0\.0\.1:1".*"msg":"Kafka at 127\.0\.0\.1:1 not reachable yet; retrying"/)
  })

  test('a missing publication', async () => {
    const bare = await createTestDatabase(inject('databaseUrl'), { migrate: false })
    try {
      const { code, stderr } = await cli([], {
        DATABASE_URL: bare.url,
        KAFKA_BROKERS: inject('kafkaBrokers').join(','),
      })
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
      const { code, all } = await cli([], {
        DATABASE_URL: url.toString(),
        KAFKA_BROKERS: inject('kafkaBrokers').join(','),
      })
      expect(code).toBe(3)
      expect(all).toContain(
        `the database role "${role}" lacks the REPLICATION attribute: run ALTER ROLE "${role}" WITH REPLICATION`,
      )
      expect(all).not.toContain('sekrit-pw')
      // status checks it too.
      const status = await cli(['status'], { DATABASE_URL: url.toString() })
      expect(status.code).toBe(3)
      expect(status.stdout).toContain(`role         ${role}: lacks REPLICATION`)
      expect(status.stdout).toContain(`ALTER ROLE "${role}" WITH REPLICATION`)
      expect(status.all).not.toContain('sekrit-pw')
    } finally {
      await db.query(`DROP ROLE ${role}`)
    }
  })
})

describe.concurrent('the outbox table', () => {
  const env = () => ({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: inject('kafkaBrokers').join(','),
    OUTBOX_SLOT: uniqueName('slot'),
  })

  test('one that does not exist is named as missing, not suggested for the publication', async () => {
    const run = await cli(['--table', 'nosuch'], env())
    expect(run.code).toBe(3)
    expect(run.stderr.trim()).toBe(
      'outbox-worker: table public.nosuch does not exist (not created yet, or dropped, renamed or moved): check OUTBOX_TABLE (--table), or apply the outbox migration (npx outbox-worker init, then npx prisma migrate deploy)',
    )
    const status = await cli(['status', '--table', 'nosuch'], env())
    expect(status.code).toBe(3)
    expect(status.stdout).toContain('table public.nosuch does not exist')
  })

  test.each([
    [
      'of another plugin',
      `SELECT pg_create_logical_replication_slot($1, 'test_decoding')`,
      'uses the test_decoding plugin',
    ],
    ['that is physical', 'SELECT pg_create_physical_replication_slot($1)', 'is a physical slot'],
  ])('a slot %s under our name: the worker refuses it and status says why', async (_, create, what) => {
    const slotEnv = env()
    await db.query(create, [slotEnv.OUTBOX_SLOT])
    try {
      const fix = `replication slot "${slotEnv.OUTBOX_SLOT}" ${what}, not pgoutput: choose another slot name with --slot (OUTBOX_SLOT)`
      const run = await cli([], slotEnv)
      expect(run.code).toBe(3)
      expect(run.stderr).toContain(fix)
      const status = await cli(['status'], slotEnv)
      expect(status.code).toBe(3)
      expect(status.stdout).toContain('BROKEN')
      expect(status.stdout).toContain(fix)
    } finally {
      await db.query('SELECT pg_drop_replication_slot($1)', [slotEnv.OUTBOX_SLOT])
    }
  })

  test('one that exists but is not published gets the ALTER PUBLICATION fix', async () => {
    const run = await cli(['--table', 'orders'], env())
    expect(run.code).toBe(3)
    expect(run.stderr).toContain(
      'the outbox table public.orders is not in publication "prisma_outbox" (never added, or re-created or dropped from it): ALTER PUBLICATION "prisma_outbox" ADD TABLE "public"."orders"',
    )
  })
})

test('a health port already in use: exit 2 with the way to run a second worker on the host', async () => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  const port = (taken.address() as AddressInfo).port
  try {
    const { code, stderr, all } = await cli([], {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: inject('kafkaBrokers').join(','),
      HEALTH_HOST: '127.0.0.1',
      HEALTH_PORT: String(port),
    })
    expect(code).toBe(2)
    // Once: not also in the log on stdout (on a terminal both show).
    expect(all.split('is already in use').length).toBe(2)
    expect(stderr.trim()).toBe(
      `outbox-worker: the health port ${port} on 127.0.0.1 is already in use (another worker on this host?): give this worker another port with HEALTH_PORT or --health-port, or 0 to turn its health server off`,
    )
  } finally {
    await new Promise((resolve) => taken.close(resolve))
  }
})

describe('wal_level=replica', () => {
  let replica: LocalPostgres
  beforeAll(async () => {
    replica = await startLocalPostgres({ walLevel: 'replica' })
  })
  afterAll(async () => {
    await replica?.dispose()
  })

  test('the worker and status say exactly what to change', async () => {
    const run = await cli([], { DATABASE_URL: replica.url, KAFKA_BROKERS: inject('kafkaBrokers').join(',') })
    expect(run.code).toBe(3)
    expect(run.stderr).toMatch(/wal_level is "replica".*ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/)
    const status = await cli(['status'], { DATABASE_URL: withDatabase(replica.url, 'postgres') })
    expect(status.code).toBe(3)
    expect(status.stdout).toMatch(/BROKEN/)
    // The same words as the worker's: one check, one message.
    expect(status.stdout).toMatch(
      /wal_level is "replica".*ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/,
    )
  })
})

test('status --json reports the slot, its confirmed LSN and lag once a worker has run', async () => {
  const slot = uniqueName('slot')
  const env = { DATABASE_URL: db.url, KAFKA_BROKERS: inject('kafkaBrokers').join(','), OUTBOX_SLOT: slot }
  expect((await cli(['status'], env)).code).toBe(3) // no slot yet: events committed now would not be streamed
  const worker = await spawnWorker(env)
  await worker.waitForLog(/"msg":"streaming"/)
  // LSNs in the log read as PostgreSQL and status print them: 0/192C610.
  const streaming = worker.output.find((line) => line.includes('"msg":"streaming"')) as string
  expect(JSON.parse(streaming).from).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
  const { code, stdout } = await cli(['status', '--json'], env)
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
