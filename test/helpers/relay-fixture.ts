import { afterEach, beforeEach, inject } from 'vitest'
import { createTestDatabase, type TestDatabase, uniqueName } from './database.js'
import { collectTopics, ensureTopics } from './kafka.js'
import { spawnWorker, type WorkerProcess } from './worker.js'

export interface RelayTestState {
  db: TestDatabase
  slot: string
  /** Topics of this test start with it: `<prefix>.{aggregateType}`. */
  prefix: string
}

type Consumer = Awaited<ReturnType<typeof collectTopics>>

/**
 * The scaffold of a relay test file: before each test a fresh database (migrated), slot name and
 * topic prefix, handed to `onFresh`; after it, the workers it started are killed, its consumers
 * stopped and its database dropped. Brokers default to the suite's; a file with a broker of its own
 * (behind a fault proxy) passes where the worker connects and where test code reads.
 */
export function relayTestFixture(
  onFresh: (state: RelayTestState) => void,
  options: { workerBrokers?: () => string[]; readBrokers?: () => string[] } = {},
) {
  const workerBrokers = options.workerBrokers ?? (() => inject('kafkaBrokers'))
  const readBrokers = options.readBrokers ?? (() => inject('kafkaBrokers'))
  let state: RelayTestState
  const workers: WorkerProcess[] = []
  /** Set for the scenarios of a `describe.each(KAFKA_CLIENTS)`: every worker they start uses it. */
  let kafkaClient: string | undefined
  const consumers: Consumer[] = []

  beforeEach(async () => {
    state = {
      db: await createTestDatabase(inject('databaseUrl')),
      slot: uniqueName('slot'),
      prefix: uniqueName('t'),
    }
    onFresh(state)
  })
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()))
    await Promise.all(consumers.splice(0).map((c) => c.stop()))
    await state.db.dispose()
  })

  return {
    /** Inside a describe: the workers of its tests publish with this Kafka client. */
    useKafkaClient(client: string): void {
      beforeEach(() => {
        kafkaClient = client
      })
      afterEach(() => {
        kafkaClient = undefined
      })
    },
    /** The real CLI on this test's database, slot and topics; `env` overrides. */
    async startWorker(env: Record<string, string> = {}): Promise<WorkerProcess> {
      const worker = await spawnWorker({
        DATABASE_URL: state.db.url,
        KAFKA_BROKERS: workerBrokers().join(','),
        OUTBOX_SLOT: state.slot,
        OUTBOX_TOPIC: `${state.prefix}.{aggregateType}`,
        ...(kafkaClient ? { OUTBOX_KAFKA_CLIENT: kafkaClient } : {}),
        ...env,
      })
      workers.push(worker)
      return worker
    },
    /** Reads these topics from the beginning (creating them first when `create`). */
    async consume(topics: string[], { create = false } = {}): Promise<Consumer> {
      if (create) await ensureTopics(readBrokers(), topics)
      const consumer = await collectTopics(readBrokers(), topics)
      consumers.push(consumer)
      return consumer
    },
  }
}
