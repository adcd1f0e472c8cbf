import pg from 'pg'
import { ContainersUnavailable, containerImages, startServiceContainers } from './containers.js'
import { answersMetadata, type KafkaJvm, type LocalKafka, startLocalKafka } from './local-kafka.js'
import { type LocalPostgres, startLocalPostgres } from './local-postgres.js'
import { requestedPostgresMajor } from './postgres-binaries.js'

export interface Services {
  databaseUrl: string
  kafkaBrokers: string[]
  /** Where they came from: the environment, containers, or processes started here. */
  source: ServicesSource
  postgresVersion: string
  kafkaVersion: string
  dispose(): Promise<void>
}

/**
 * Where the services come from; OUTBOX_TEST_SERVICES chooses, unset means: the environment's
 * (DATABASE_URL + KAFKA_BROKERS), else containers, else local processes.
 */
export type ServicesSource = 'env' | 'containers' | 'local'

export function chosenServices(): ServicesSource | undefined {
  const value = process.env.OUTBOX_TEST_SERVICES
  if (!value) return undefined
  if (value === 'env' || value === 'containers' || value === 'local') return value
  throw new Error(
    `OUTBOX_TEST_SERVICES=${value} is not one of containers, local, env (or leave it unset to let the tests choose)`,
  )
}

/**
 * Real PostgreSQL (wal_level=logical) and Kafka for tests, the demo and the benchmarks, in the
 * this order unless OUTBOX_TEST_SERVICES chooses: DATABASE_URL + KAFKA_BROKERS; else
 * containers if they start; else local processes. Fails fast, naming what is missing, instead of
 * letting a test time out.
 */
export interface ServicesOptions {
  /** How a local broker's JVM is tuned (see KafkaJvm): benchmarks ask for `throughput`. */
  kafkaJvm?: KafkaJvm
}

export async function startServices(
  log: (line: string) => void = () => {},
  options: ServicesOptions = {},
): Promise<Services> {
  const choice = chosenServices()
  const { DATABASE_URL, KAFKA_BROKERS } = process.env
  if (choice === 'env' || (choice === undefined && DATABASE_URL && KAFKA_BROKERS)) {
    if (!DATABASE_URL || !KAFKA_BROKERS) {
      throw new Error(
        'OUTBOX_TEST_SERVICES=env needs both DATABASE_URL and KAFKA_BROKERS (`npm run services` prints them), ' +
          'or leave OUTBOX_TEST_SERVICES unset to let the tests start their own',
      )
    }
    return await fromEnvironment(DATABASE_URL, KAFKA_BROKERS)
  }
  const { postgres, kafka, source } = await startOwnServices(choice, log, options)
  await checkPostgres(postgres.url)
  return {
    databaseUrl: postgres.url,
    kafkaBrokers: kafka.brokers,
    source,
    postgresVersion: postgres.version,
    kafkaVersion: kafka.version,
    dispose: async () => {
      await Promise.all([postgres.dispose(), kafka.dispose()])
    },
  }
}

/**
 * PostgreSQL and Kafka of the caller's own, which it may stop and restart (the fault suite does):
 * containers, or local processes when containers cannot start or OUTBOX_TEST_SERVICES=local.
 */
export async function startOwnServices(
  choice: ServicesSource | undefined = chosenServices(),
  log: (line: string) => void = () => {},
  options: ServicesOptions = {},
): Promise<{ postgres: LocalPostgres; kafka: LocalKafka; source: 'containers' | 'local' }> {
  // OUTBOX_TEST_POSTGRES chooses the binaries of a local server: a container would ignore it.
  const local = choice === 'local' || (choice === undefined && process.env.OUTBOX_TEST_POSTGRES)
  const containers = local ? undefined : await containersOrWhyNot(choice === 'containers', log)
  if (containers) return { ...containers, source: 'containers' }
  const [postgres, kafka] = await Promise.allSettled([startLocalPostgres(), startLocalKafka({ jvm: options.kafkaJvm })])
  if (postgres.status === 'rejected' || kafka.status === 'rejected') {
    if (postgres.status === 'fulfilled') await postgres.value.dispose()
    if (kafka.status === 'fulfilled') await kafka.value.dispose()
    const reason = postgres.status === 'rejected' ? postgres.reason : (kafka as PromiseRejectedResult).reason
    throw reason
  }
  return { postgres: postgres.value, kafka: kafka.value, source: 'local' }
}

/**
 * Containers, or undefined after one line saying why not and that local processes follow. When
 * containers were asked for (OUTBOX_TEST_SERVICES=containers), an error saying why and what to do.
 */
export async function containersOrWhyNot(
  required: boolean,
  log: (line: string) => void,
): Promise<{ postgres: LocalPostgres; kafka: LocalKafka } | undefined> {
  const images = containerImages()
  try {
    const started = await startServiceContainers()
    log(`services: containers (${images.postgres}, ${images.kafka})`)
    return started
  } catch (error) {
    const why = error instanceof ContainersUnavailable ? error.message : String(error)
    if (required) {
      throw new Error(
        `OUTBOX_TEST_SERVICES=containers, but containers cannot start: ${why}. Start a container runtime that ` +
          `can pull ${images.postgres} and ${images.kafka}, or set OUTBOX_TEST_POSTGRES_IMAGE and ` +
          'OUTBOX_TEST_KAFKA_IMAGE to images it has, or set OUTBOX_TEST_SERVICES=local to use local processes',
      )
    }
    log(`services: containers unavailable: ${why}; starting local PostgreSQL and Kafka processes instead`)
    return undefined
  }
}

async function fromEnvironment(databaseUrl: string, brokerList: string): Promise<Services> {
  const kafkaBrokers = brokerList.split(',').map((b) => b.trim())
  const postgresVersion = await checkPostgres(databaseUrl)
  const major = requestedPostgresMajor()
  if (major !== undefined && !postgresVersion.startsWith(`${major}.`)) {
    throw new Error(
      `OUTBOX_TEST_POSTGRES=${major}, but DATABASE_URL is PostgreSQL ${postgresVersion}: unset one of them`,
    )
  }
  if (!(await answersMetadata(kafkaBrokers).catch(() => false))) {
    throw new Error(
      `KAFKA_BROKERS=${brokerList} does not answer a metadata request: start Kafka or unset KAFKA_BROKERS`,
    )
  }
  return {
    databaseUrl,
    kafkaBrokers,
    source: 'env',
    postgresVersion,
    kafkaVersion: 'external',
    dispose: async () => {},
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
