import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import { importTransactional, whenLoaded } from './create-publisher.js'
import { Delivery } from './delivery.js'
import type { DeliveryHooks, EventDelivery } from './event-delivery.js'
import { TransactionalDelivery } from './exactly-once/transactional-delivery.js'
import type { TransactionalPublisher } from './exactly-once/transactional-publisher.js'
import { type Publisher, type PublisherFactory, withSend } from './publisher.js'

export interface SessionDeliveryHooks extends DeliveryHooks {
  /** Exactly-once: a transaction failed (or the producer was fenced): end the session. */
  ended(error: unknown): void
  /** The replication connection is within its receive deadline (see gatedPublisher). */
  alive(): boolean
}

/** The delivery --delivery chooses, for one session. */
export function createDelivery(
  config: WorkerConfig,
  createPublisher: PublisherFactory,
  metrics: Metrics,
  logger: Logger,
  hooks: SessionDeliveryHooks,
): EventDelivery {
  if (config.delivery === 'exactly-once')
    return new TransactionalDelivery(config, lazyTransactionalPublisher(config, logger), metrics, logger, hooks)
  return new Delivery(config, gatedPublisher(createPublisher(), hooks.alive), metrics, logger, hooks)
}

/**
 * The publisher, refusing every send once the replication connection is past its receive
 * deadline: from then on the server may hand the slot to another worker, and a record sent after
 * that worker's would reorder the stream. (Exactly-once needs no such gate: the worker that takes
 * the slot fences this one's transactional id before it reads the checkpoint.)
 */
function gatedPublisher(publisher: Publisher, alive: () => boolean): Publisher {
  return withSend(publisher, (records) =>
    alive()
      ? publisher.send(records)
      : Promise.reject(new Error('the replication connection is presumed dead: nothing more is sent')),
  )
}

/**
 * Exactly-once's publisher for the chosen client, imported only when that delivery is chosen:
 * at-least-once with @platformatic/kafka must not pay for kafkajs's import.
 */
function lazyTransactionalPublisher(config: WorkerConfig, logger: Logger): TransactionalPublisher {
  return whenLoaded<TransactionalPublisher>(
    importTransactional(config).then((create) => create(config, logger)),
    {
      connect: true,
      readCheckpoint: true,
      commitTransaction: true,
      probe: true,
      unavailableTopics: true,
      disconnect: true,
    },
  )
}
