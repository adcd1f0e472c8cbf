import type { WorkerConfig } from '../operations/config.js'
import type { Logger } from '../operations/logger.js'
import type { TransactionalPublisher } from './exactly-once/transactional-publisher.js'
import { loadPlatformaticKafka } from './platformatic-import.js'
import type { Publisher } from './publisher.js'

/**
 * The publisher of the client chosen by --kafka-client / OUTBOX_KAFKA_CLIENT. Each library is
 * imported only when chosen: @platformatic/kafka's import alone takes ~45 MB of memory and over a
 * second of CPU at start on a busy 2-core machine (it compiles its option schemas), kafkajs ~13 MB.
 */
export function createPublisher(config: WorkerConfig, logger: Logger): Publisher {
  return whenLoaded<Publisher>(
    config.kafkaClient === 'kafkajs'
      ? import('./kafkajs-publisher.js').then((module) => module.createKafkaPublisher(config, logger))
      : importPlatformaticPublisher().then((module) => module.createPlatformaticPublisher(config)),
    { connect: true, send: true, unavailableTopics: true, disconnect: true },
  )
}

/**
 * An object whose methods wait for `loaded` (a client's module being imported), then call the
 * loaded object's: a publisher can be handed out at once, and its library imported beside the
 * start-up checks. A failed import is reported by the first call, never as an unhandled rejection.
 * `methods` names every method of T (the compiler checks that none is left out).
 */
export function whenLoaded<T extends object>(loaded: Promise<T>, methods: { [K in keyof Required<T>]: true }): T {
  loaded.catch(() => {})
  const forwarding: Record<string, (...args: unknown[]) => Promise<unknown>> = {}
  for (const method of Object.keys(methods) as (keyof T & string)[])
    forwarding[method] = async (...args) => {
      const target = await loaded
      return (target[method] as (...args: unknown[]) => unknown).apply(target, args)
    }
  return forwarding as T
}

/**
 * Starts importing the Kafka client the configuration will use, so that its import (most of the
 * worker's start-up CPU) runs while PostgreSQL is checked, and is not counted against
 * --startup-timeout-ms as if Kafka were slow to answer. createPublisher then finds it loaded.
 */
export function preloadKafkaClient(config: WorkerConfig): Promise<unknown> {
  if (config.delivery === 'exactly-once') return importTransactional(config)
  return config.kafkaClient === 'kafkajs' ? import('./kafkajs-publisher.js') : importPlatformaticPublisher()
}

/** The modules that import '@platformatic/kafka', each after loadPlatformaticKafka. */
export async function importPlatformaticPublisher() {
  await loadPlatformaticKafka()
  return import('./platformatic-publisher.js')
}

/** The transactional publisher of the chosen client, as a factory. */
export async function importTransactional(
  config: WorkerConfig,
): Promise<(config: WorkerConfig, logger: Logger) => TransactionalPublisher> {
  await loadPlatformaticKafka()
  if (config.kafkaClient === 'platformatic')
    return (await import('./exactly-once/platformatic-transactional.js')).createPlatformaticTransactionalPublisher
  return (await import('./exactly-once/kafkajs-transactional.js')).createKafkajsTransactionalPublisher
}

export async function importDefaultId() {
  await loadPlatformaticKafka()
  return import('./exactly-once/default-id.js')
}
