import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import { createKafkaPublisher } from './kafkajs-publisher.js'
import { createPlatformaticPublisher } from './platformatic-publisher.js'
import type { Publisher } from './publisher.js'

/** The publisher of the client chosen by --kafka-client / OUTBOX_KAFKA_CLIENT. */
export function createPublisher(config: WorkerConfig, logger: Logger): Publisher {
  return config.kafkaClient === 'platformatic'
    ? createPlatformaticPublisher(config)
    : createKafkaPublisher(config, logger)
}
