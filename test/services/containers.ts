import type { StartedTestContainer } from 'testcontainers'
import { pinnedKafkaVersion } from './local-kafka.js'
import { freePort } from './ports.js'

export interface ContainerServices {
  databaseUrl: string
  kafkaBrokers: string[]
  postgresVersion: string
  kafkaVersion: string
  dispose(): Promise<void>
}

/**
 * PostgreSQL and Kafka in containers, used when a container runtime answers. Returns undefined
 * when there is none (the usual case on CI machines without Docker), so the caller falls back
 * to local processes. Tests that stop and restart services use local processes either way.
 */
export async function startContainerServices(): Promise<ContainerServices | undefined> {
  const { getContainerRuntimeClient, GenericContainer, Wait } = await import('testcontainers')
  try {
    await getContainerRuntimeClient()
  } catch {
    return undefined
  }
  const started: StartedTestContainer[] = []
  const dispose = async () => {
    await Promise.all(started.map((c) => c.stop()))
  }
  try {
    const postgres = await new GenericContainer('postgres:17')
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
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start()
    started.push(postgres)

    // Kafka advertises the address clients must use, so the host port is fixed before start.
    const kafkaVersion = pinnedKafkaVersion()
    const hostPort = await freePort()
    const kafka = await new GenericContainer(`apache/kafka:${kafkaVersion}`)
      .withEnvironment({
        KAFKA_NODE_ID: '1',
        KAFKA_PROCESS_ROLES: 'broker,controller',
        KAFKA_LISTENERS: `PLAINTEXT://0.0.0.0:${hostPort},CONTROLLER://0.0.0.0:9093`,
        KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${hostPort}`,
        KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
        KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
        KAFKA_NUM_PARTITIONS: '4',
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      })
      .withExposedPorts({ container: hostPort, host: hostPort })
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
      .start()
    started.push(kafka)

    const databaseUrl = `postgresql://postgres:postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`
    return {
      databaseUrl,
      kafkaBrokers: [`127.0.0.1:${hostPort}`],
      postgresVersion: '17 (container)',
      kafkaVersion,
      dispose,
    }
  } catch (error) {
    await dispose()
    throw error
  }
}
