import type { WorkerConfig } from '../operations/config.js'
import { OutboxPoisonEventError } from '../operations/errors.js'
import type { Logger } from '../operations/logger.js'
import type { Metrics } from '../operations/metrics.js'
import type { DeliveryHooks } from './event-delivery.js'
import { type KafkaRecord, toDeadLetter } from './records.js'

/**
 * What becomes of a poison event, in both delivery modes: it is logged, and its dead letter is
 * returned for the delivery to send, or, with --on-poison stop, the worker stops on it
 * (OutboxPoisonEventError) before anything after it is confirmed.
 */
export function deadLetterFor(record: KafkaRecord, reason: string, config: WorkerConfig, logger: Logger): KafkaRecord {
  const id = record.headers.id ?? '?'
  logger.error({ id, topic: record.topic, reason, onPoison: config.onPoison }, 'poison event')
  if (config.onPoison === 'stop') throw new OutboxPoisonEventError(id, reason)
  return toDeadLetter(record, reason, config.dlqTopicTemplate, config.maxMessageBytes)
}

/** A dead letter Kafka has: counted, and reported to the delivery's owner (both modes). */
export function deadLetterAcknowledged(
  metrics: Metrics,
  hooks: DeliveryHooks,
  info: { id: string; topic: string; reason: string },
): void {
  metrics.eventsDeadLettered.inc()
  hooks.deadLettered(info)
}

/**
 * The dead-letter topic refused the dead letter too: nothing more can be done for the event
 * without losing it, so the worker stops on it (both modes).
 */
export function deadLetterRefused(
  id: string,
  reason: string,
  deadLetterTopic: string,
  type: string,
): OutboxPoisonEventError {
  return new OutboxPoisonEventError(id, `${reason}; the dead-letter topic ${deadLetterTopic} refused it too (${type})`)
}
