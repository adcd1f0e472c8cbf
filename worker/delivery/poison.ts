import type { WorkerConfig } from '../operations/config.js'
import { OutboxPoisonEventError } from '../operations/errors.js'
import type { Logger } from '../operations/logger.js'
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
