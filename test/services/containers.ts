import { request } from 'node:http'
import { connect } from 'node:net'
import pg from 'pg'
import type { ContainerRuntimeClient, StartedTestContainer } from 'testcontainers'
import { answersMetadata, type LocalKafka, pinnedKafkaVersion } from './local-kafka.js'
import type { LocalPostgres } from './local-postgres.js'
import { freePort, waitUntil } from './ports.js'

/** Why containers cannot be used here, in one line; the caller falls back or reports it. */
export class ContainersUnavailable extends Error {
  override name = 'ContainersUnavailable'
}

/**
 * The images: the official ones by default. OUTBOX_TEST_POSTGRES_IMAGE / OUTBOX_TEST_KAFKA_IMAGE
 * name others that take the same configuration (CI builds such look-alikes: .ci/images/).
 */
export function containerImages(): { postgres: string; kafka: string } {
  return {
    postgres: process.env.OUTBOX_TEST_POSTGRES_IMAGE || 'postgres:17',
    kafka: process.env.OUTBOX_TEST_KAFKA_IMAGE || `apache/kafka:${pinnedKafkaVersion()}`,
  }
}

/**
 * A container runtime that answers, or ContainersUnavailable. A DOCKER_HOST that does not answer
 * is reported as such: testcontainers would silently try the default socket instead.
 */
async function containerRuntime(): Promise<ContainerRuntimeClient> {
  const { DOCKER_HOST } = process.env
  if (DOCKER_HOST) {
    const problem = await pingDockerHost(DOCKER_HOST)
    if (problem) throw new ContainersUnavailable(`DOCKER_HOST=${DOCKER_HOST} does not answer (${problem})`)
  }
  const { getContainerRuntimeClient, getReaper } = await import('testcontainers')
  let client: ContainerRuntimeClient
  try {
    client = await getContainerRuntimeClient()
  } catch {
    throw new ContainersUnavailable(
      DOCKER_HOST
        ? `DOCKER_HOST=${DOCKER_HOST} answers, but testcontainers cannot use it (DEBUG='testcontainers*' shows why)`
        : 'no container runtime answers (no DOCKER_HOST, no /var/run/docker.sock)',
    )
  }
  // testcontainers starts its reaper (Ryuk) before the first container: a runtime that cannot
  // pull fails here first, and saying so beats blaming the PostgreSQL image.
  if (process.env.TESTCONTAINERS_RYUK_DISABLED !== 'true') {
    try {
      await getReaper(client)
    } catch (error) {
      throw new ContainersUnavailable(`the testcontainers reaper (Ryuk) could not start: ${oneLine(error)}`)
    }
  }
  return client
}

/** Undefined when DOCKER_HOST answers (or cannot be checked here), else why it does not. */
async function pingDockerHost(dockerHost: string): Promise<string | undefined> {
  let url: URL
  try {
    url = new URL(dockerHost)
  } catch {
    return 'not a URL such as unix:///var/run/docker.sock or tcp://host:2375'
  }
  if (url.protocol === 'unix:') return await httpPing({ socketPath: url.pathname })
  if (url.protocol !== 'tcp:') return undefined // ssh:// and friends: testcontainers' concern
  const address = { host: url.hostname, port: Number(url.port || 2375) }
  // A TLS endpoint needs the client certificates; reaching its port is the check here.
  return process.env.DOCKER_TLS_VERIFY === '1' ? await tcpReachable(address) : await httpPing(address)
}

function httpPing(target: { socketPath: string } | { host: string; port: number }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', timeout: 3000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode} to /_ping`)
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 3 s')))
    req.on('error', (e) => resolve(e.message))
    req.end()
  })
}

function tcpReachable(address: { host: string; port: number }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect(address)
    socket.setTimeout(3000, () => socket.destroy(new Error('no answer within 3 s')))
    socket.on('connect', () => {
      socket.end()
      resolve(undefined)
    })
    socket.on('error', (e) => resolve(e.message))
  })
}

/**
 * PostgreSQL and Kafka in containers, each with the handle a local process has (stop/start keep
 * its data), so the fault suite can restart either. Fails with ContainersUnavailable (one line)
 * when there is no runtime or it cannot pull, create or start an image.
 */
export async function startServiceContainers(): Promise<{ postgres: LocalPostgres; kafka: LocalKafka }> {
  const client = await containerRuntime()
  const images = containerImages()
  const [postgres, kafka] = await Promise.allSettled([
    startPostgresContainer(client, images.postgres),
    startKafkaContainer(client, images.kafka),
  ])
  if (postgres.status === 'fulfilled' && kafka.status === 'fulfilled')
    return { postgres: postgres.value, kafka: kafka.value }
  if (postgres.status === 'fulfilled') await postgres.value.dispose()
  if (kafka.status === 'fulfilled') await kafka.value.dispose()
  const reason = postgres.status === 'rejected' ? postgres.reason : (kafka as PromiseRejectedResult).reason
  throw reason instanceof ContainersUnavailable ? reason : new ContainersUnavailable(oneLine(reason))
}

/** Starts one container; any failure (pull, create, start, wait) becomes a one-line reason. */
async function start(image: string, configure: (c: import('testcontainers').GenericContainer) => void) {
  const { GenericContainer } = await import('testcontainers')
  const container = new GenericContainer(image)
  configure(container)
  try {
    return await container.start()
  } catch (error) {
    throw new ContainersUnavailable(`${image} could not start: ${oneLine(error)}`)
  }
}

/** The host port is fixed before start, so a restart keeps the URL. */
async function startPostgresContainer(client: ContainerRuntimeClient, image: string): Promise<LocalPostgres> {
  const { Wait } = await import('testcontainers')
  const port = await freePort()
  const started = await start(image, (c) =>
    c
      .withEnvironment({ POSTGRES_PASSWORD: 'postgres' })
      .withCommand([
        'postgres',
        '-c',
        'wal_level=logical',
        '-c',
        'max_replication_slots=64',
        '-c',
        'max_wal_senders=64',
      ])
      .withExposedPorts({ container: 5432, host: port })
      // The official image logs this twice: once for its set-up server, once for the real one.
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2)),
  )
  const url = `postgresql://postgres:postgres@${started.getHost()}:${port}/postgres`
  const answers = () => waitUntil(`PostgreSQL (${image}) to accept connections`, () => canQuery(url), 60_000)
  await answers()
  return {
    url,
    version: await serverVersion(url),
    ...restartable(client, started, 'SIGINT', answers),
  }
}

/**
 * Kafka (KRaft, one node). It advertises the address clients must use, so the host port is fixed
 * before start and used inside too.
 */
async function startKafkaContainer(client: ContainerRuntimeClient, image: string): Promise<LocalKafka> {
  const { Wait } = await import('testcontainers')
  const port = await freePort()
  const started = await start(image, (c) =>
    c
      .withEnvironment({
        KAFKA_NODE_ID: '1',
        KAFKA_PROCESS_ROLES: 'broker,controller',
        KAFKA_LISTENERS: `PLAINTEXT://0.0.0.0:${port},CONTROLLER://0.0.0.0:9093`,
        KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://${client.info.containerRuntime.host}:${port}`,
        KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
        KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
        KAFKA_NUM_PARTITIONS: '4',
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      })
      .withExposedPorts({ container: port, host: port })
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/)),
  )
  const brokers = [`${started.getHost()}:${port}`]
  const answers = () =>
    waitUntil(`Kafka (${image}) to answer a metadata request`, () => answersMetadata(brokers), 60_000, 250)
  await answers()
  // No proxy sits in front of a container: its direct address is the one clients use.
  return {
    brokers,
    directBrokers: brokers,
    version: image.split(':').pop() ?? image,
    ...restartable(client, started, 'SIGTERM', answers),
  }
}

/**
 * stop sends the graceful signal a local process gets (PostgreSQL's fast shutdown is SIGINT, as
 * the official image's STOPSIGNAL; Kafka's controlled shutdown SIGTERM) and waits for the exit,
 * SIGKILL after 30 s; start is `docker start` of the same container, its data kept.
 */
function restartable(
  client: ContainerRuntimeClient,
  started: StartedTestContainer,
  stopSignal: NodeJS.Signals,
  answers: () => Promise<void>,
) {
  const container = client.container.getById(started.getId())
  return {
    async stop() {
      if (!(await container.inspect()).State.Running) return
      const exited = container.wait()
      await container.kill({ signal: stopSignal })
      const timer = setTimeout(() => container.kill({ signal: 'SIGKILL' }).catch(() => {}), 30_000)
      await exited
      clearTimeout(timer)
    },
    async start() {
      await container.start()
      await answers()
    },
    async dispose() {
      await started.stop()
    },
  }
}

async function canQuery(url: string): Promise<boolean> {
  await serverVersion(url)
  return true
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  await client.connect()
  try {
    return (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?'
  } finally {
    await client.end()
  }
}

/** Docker's errors carry the daemon's message after the HTTP status; keep it on one line. */
function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/\s+/g, ' ').trim().slice(0, 300)
}
