import pg from 'pg'
import { startContainerServices } from './containers.js'
import { answersMetadata, startLocalKafka } from './local-kafka.js'
import { startLocalPostgres } from './local-postgres.js'
import { requestedPostgresMajor } from './postgres-binaries.js'

export interface Services {
  databaseUrl: string
  kafkaBrokers: string[]
  /** Where they came from: the environment, containers, or processes started here. */
  source: 'env' | 'containers' | 'local'
  postgresVersion: string
  kafkaVersion: string
  dispose(): Promise<void>
}

/**
 * Real PostgreSQL (wal_level=logical) and Kafka for tests, the demo and the benchmarks, in the
 * order of SPEC §6: DATABASE_URL + KAFKA_BROKERS; else containers; else local processes
 * (`OUTBOX_TEST_POSTGRES=<major>` skips containers: it chooses a local server's version).
 * Fails fast, naming what is missing, instead of letting a test time out.
 */
export async function startServices(log: (line: string) => void = () => {}): Promise<Services> {
  const { DATABASE_URL, KAFKA_BROKERS } = process.env
  if (DATABASE_URL && KAFKA_BROKERS) {
    const kafkaBrokers = KAFKA_BROKERS.split(',').map((b) => b.trim())
    const postgresVersion = await checkPostgres(DATABASE_URL)
    const major = requestedPostgresMajor()
    if (major !== undefined && !postgresVersion.startsWith(`${major}.`)) {
      throw new Error(
        `OUTBOX_TEST_POSTGRES=${major}, but DATABASE_URL is PostgreSQL ${postgresVersion}: unset one of them`,
      )
    }
    if (!(await answersMetadata(kafkaBrokers).catch(() => false))) {
      throw new Error(
        `KAFKA_BROKERS=${KAFKA_BROKERS} does not answer a metadata request: start Kafka or unset KAFKA_BROKERS`,
      )
    }
    return {
      databaseUrl: DATABASE_URL,
      kafkaBrokers,
      source: 'env',
      postgresVersion,
      kafkaVersion: 'external',
      dispose: async () => {},
    }
  }

  // OUTBOX_TEST_POSTGRES chooses the binaries of a local server: a container would ignore it.
  const containers = process.env.OUTBOX_TEST_POSTGRES ? undefined : await startContainerServices()
  if (containers) {
    log('services: containers (a container runtime answered)')
    return { ...containers, source: 'containers' }
  }

  log(
    process.env.OUTBOX_TEST_POSTGRES
      ? `services: OUTBOX_TEST_POSTGRES=${process.env.OUTBOX_TEST_POSTGRES}; starting local PostgreSQL and Kafka processes`
      : 'services: no container runtime; starting local PostgreSQL and Kafka processes',
  )
  const [postgres, kafka] = await Promise.allSettled([startLocalPostgres(), startLocalKafka()])
  if (postgres.status === 'rejected' || kafka.status === 'rejected') {
    if (postgres.status === 'fulfilled') await postgres.value.dispose()
    if (kafka.status === 'fulfilled') await kafka.value.dispose()
    const reason = postgres.status === 'rejected' ? postgres.reason : (kafka as PromiseRejectedResult).reason
    throw reason
  }
  await checkPostgres(postgres.value.url)
  return {
    databaseUrl: postgres.value.url,
    kafkaBrokers: kafka.value.brokers,
    source: 'local',
    postgresVersion: postgres.value.version,
    kafkaVersion: kafka.value.version,
    dispose: async () => {
      await Promise.all([postgres.value.dispose(), kafka.value.dispose()])
    },
  }
}

/** Connects, and insists on wal_level=logical; returns the server version. */
async function checkPostgres(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
  } catch (error) {
    throw new Error(`cannot connect to PostgreSQL at DATABASE_URL: ${(error as Error).message}`)
  }
  try {
    const { rows } = await client.query<{ wal_level: string; version: string }>(
      `SELECT current_setting('wal_level') AS wal_level, current_setting('server_version') AS version`,
    )
    const row = rows[0]
    if (row?.wal_level !== 'logical') {
      throw new Error(
        `PostgreSQL has wal_level=${row?.wal_level}; logical replication needs wal_level=logical ` +
          `(ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)`,
      )
    }
    return row.version
  } finally {
    await client.end()
  }
}
