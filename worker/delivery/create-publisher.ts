import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import { createKafkaPublisher } from './kafkajs-publisher.js'
import type { Publisher } from './publisher.js'

/** The publisher of the client chosen by --kafka-client / OUTBOX_KAFKA_CLIENT. */
export function createPublisher(config: WorkerConfig, logger: Logger): Publisher {
  return config.kafkaClient === 'platformatic' ? platformaticPublisher(config) : createKafkaPublisher(config, logger)
}

/**
 * @platformatic/kafka compiles its option schemas (ajv) when it is imported: over a second of CPU
 * at start on a busy 2-core machine (CPU profile). Loaded only when chosen.
 */
function platformaticPublisher(config: WorkerConfig): Publisher {
  const loaded = import('./platformatic-publisher.js').then((module) => module.createPlatformaticPublisher(config))
  // A failed import is reported by the first call; until then it must not be unhandled.
  loaded.catch(() => {})
  return {
    connect: async () => (await loaded).connect(),
    send: async (records) => (await loaded).send(records),
    unavailableTopics: async (topics) => (await loaded).unavailableTopics(topics),
    disconnect: async () => (await loaded).disconnect(),
  }
}
