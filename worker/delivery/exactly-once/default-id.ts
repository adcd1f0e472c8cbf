import { type Admin, Kafka } from 'kafkajs'
import type { WorkerConfig } from '../../operations/config.js'
import { OutboxSetupError } from '../../operations/errors.js'
import type { Logger } from '../../operations/logger.js'
import { kafkaClientConfig } from '../kafkajs-publisher.js'
import { defaultTransactionalId, formerDefaultTransactionalId } from './checkpoint.js'
import { readLatest } from './checkpoint-read.js'
import { highWatermarks } from './kafkajs-transactional.js'
import { identifyServer } from './server-identity.js'
import { defaultTopicProblem, validTopicName } from './settings.js'

/** The option names of the worker's messages at start (the CLI's; createWorker's users know them too). */
const flag = (key: keyof WorkerConfig) =>
  key === 'checkpointTopic'
    ? '--checkpoint-topic (OUTBOX_CHECKPOINT_TOPIC)'
    : '--transactional-id (OUTBOX_TRANSACTIONAL_ID)'

/** Retries a connection at start until it succeeds (the worker's untilReachable). */
type UntilReachable = <T>(what: 'PostgreSQL' | 'Kafka', attempt: () => Promise<T>) => Promise<T>

/**
 * The configuration with exactly-once's default transactional id filled in: resolved once at
 * start, for every session of this worker (and shown in worker.config).
 */
export async function withDefaultTransactionalId(
  config: WorkerConfig,
  logger: Logger,
  untilReachable: UntilReachable,
): Promise<WorkerConfig> {
  const server = await untilReachable('PostgreSQL', () => identifyServer(config))
  const id = await untilReachable('Kafka', () =>
    resolveTransactionalId(config, server, kafkaCheckpointLookup(config, logger)),
  )
  logger.info({ transactionalId: id }, 'exactly-once: the default transactional id of this slot')
  return { ...config, transactionalId: id }
}

/** What resolveTransactionalId asks Kafka: whether a topic exists, the newest value of a key in one. */
export interface CheckpointLookup {
  topicExists(topic: string): Promise<boolean>
  latest(topic: string, key: string): Promise<string | undefined>
}

/**
 * The default transactional id of this slot (see defaultTransactionalId), from the server's
 * identity, checked once at start:
 * - its checkpoint topic must be a valid topic name (the database's name is part of it);
 * - upgrading from a version whose default came from DATABASE_URL: when the former default has a
 *   checkpoint and the new one has none, the worker stops (exit 3) instead of starting an empty
 *   checkpoint, which would publish the slot's replay a second time and let workers of the two
 *   versions run unfenced. The operator chooses: keep the former id, or start anew. By default
 *   each id has a topic of its own, so the topics tell; a --checkpoint-topic is shared by both
 *   ids (records are keyed by id), so its keys tell.
 */
export async function resolveTransactionalId(
  config: WorkerConfig,
  server: { system: string; database: string },
  kafka: CheckpointLookup,
): Promise<string> {
  const id = defaultTransactionalId(server, config.slot)
  const former = formerDefaultTransactionalId(config)
  if (config.checkpointTopic !== undefined) {
    const topic = config.checkpointTopic
    // A topic not created yet holds nobody's checkpoint (and cannot be read).
    if (former === id || !(await kafka.topicExists(topic))) return id
    if ((await kafka.latest(topic, former)) !== undefined && (await kafka.latest(topic, id)) === undefined)
      throw idChanged(id, former, `in topic "${topic}", keyed "${former}"`)
    return id
  }
  const topic = `${id}.checkpoint`
  if (!validTopicName(topic))
    throw new OutboxSetupError(defaultTopicProblem(topic, flag), { code: 'OUTBOX_INVALID_CONFIG' })
  if (former !== id && !(await kafka.topicExists(topic)) && (await kafka.topicExists(`${former}.checkpoint`)))
    throw idChanged(id, former, `topic "${former}.checkpoint"`)
  return id
}

function idChanged(id: string, former: string, where: string): OutboxSetupError {
  return new OutboxSetupError(
    `the default transactional id is now the slot's own, "${id}", but a checkpoint of the former default "${former}" exists (${where}): set ${flag('transactionalId')} to "${former}" to keep it (nothing is published twice, and workers of the earlier version are fenced as before), or to "${id}" to start an empty checkpoint (what the slot replays next is published again; stop every worker of the earlier version first). See docs/exactly-once.md`,
    { code: 'OUTBOX_TRANSACTIONAL_ID_CHANGED' },
  )
}

/**
 * Kafka as resolveTransactionalId asks it, with clients of its own (kafkajs, which reads the
 * checkpoint with either client's transactions). No transactional id is initialized:
 * read_committed, the read waits for a transaction a worker of the earlier version may have
 * open, as a session's checkpoint read does.
 */
export function kafkaCheckpointLookup(config: WorkerConfig, logger: Logger): CheckpointLookup {
  const withAdmin = async <T>(use: (kafka: Kafka, admin: Admin) => Promise<T>): Promise<T> => {
    const kafka = new Kafka(kafkaClientConfig(config, logger))
    const admin = kafka.admin()
    try {
      await admin.connect()
      return await use(kafka, admin)
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }
  return {
    topicExists: (topic) => withAdmin(async (_, admin) => (await admin.listTopics()).includes(topic)),
    latest: (topic, key) =>
      withAdmin((kafka, admin) =>
        readLatest(kafka, admin, (partitions) => highWatermarks(config, topic, partitions), topic, key),
      ),
  }
}
