import { Kafka } from 'kafkajs'
import type { WorkerConfig } from '../../operations/config.js'
import { OutboxSetupError } from '../../operations/errors.js'
import type { Logger } from '../../operations/logger.js'
import { kafkaClientConfig } from '../kafkajs-publisher.js'
import {
  defaultTopicProblem,
  defaultTransactionalId,
  formerDefaultTransactionalId,
  validTopicName,
} from './checkpoint.js'

/** The option names of the worker's messages at start (the CLI's; createWorker's users know them too). */
const flag = (key: keyof WorkerConfig) =>
  key === 'checkpointTopic'
    ? '--checkpoint-topic (OUTBOX_CHECKPOINT_TOPIC)'
    : '--transactional-id (OUTBOX_TRANSACTIONAL_ID)'

/**
 * The default transactional id of this slot (see defaultTransactionalId), from the server's
 * identity, checked once at start:
 * - its checkpoint topic must be a valid topic name (the database's name is part of it);
 * - upgrading from a version whose default came from DATABASE_URL: when the former default's
 *   checkpoint topic exists and the new one does not, the worker stops (exit 3) instead of
 *   starting an empty checkpoint, which would publish the slot's replay a second time and let
 *   workers of the two versions run unfenced. The operator chooses: keep the former id, or start anew.
 */
export async function resolveTransactionalId(
  config: WorkerConfig,
  server: { system: string; database: string },
  topicExists: (topic: string) => Promise<boolean>,
): Promise<string> {
  const id = defaultTransactionalId(server, config.slot)
  if (config.checkpointTopic !== undefined) return id
  const topic = `${id}.checkpoint`
  if (!validTopicName(topic))
    throw new OutboxSetupError(defaultTopicProblem(topic, flag), { code: 'OUTBOX_INVALID_CONFIG' })
  const former = formerDefaultTransactionalId(config)
  if (former !== id && !(await topicExists(topic)) && (await topicExists(`${former}.checkpoint`))) {
    throw new OutboxSetupError(
      `the default transactional id is now the slot's own, "${id}", but a checkpoint of the former default "${former}" exists (topic "${former}.checkpoint"): set ${flag('transactionalId')} to "${former}" to keep it (nothing is published twice, and workers of the earlier version are fenced as before), or to "${id}" to start an empty checkpoint (what the slot replays next is published again; stop every worker of the earlier version first). See the README, "Exactly-once delivery"`,
      { code: 'OUTBOX_TRANSACTIONAL_ID_CHANGED' },
    )
  }
  return id
}

/** Whether a topic exists, asked with a kafkajs admin of its own (exactly-once is built on kafkajs). */
export function kafkaTopicExists(config: WorkerConfig, logger: Logger): (topic: string) => Promise<boolean> {
  return async (topic) => {
    const admin = new Kafka(kafkaClientConfig(config, logger)).admin()
    try {
      await admin.connect()
      return (await admin.listTopics()).includes(topic)
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }
}
