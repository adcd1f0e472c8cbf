import { MAX_TOPIC_LENGTH, topicNameProblem } from '../../../src/topic.js'

/**
 * The exactly-once settings: what they mean (the transactional id, the checkpoint topic) and
 * whether they are valid. Typed by the fields they read, not by WorkerConfig, so that the
 * configuration can check them without an import circle.
 */
export interface ExactlyOnceSettings {
  delivery: string
  /** Resolved at start when not given (default-id.ts). */
  transactionalId?: string | undefined
  checkpointTopic?: string | undefined
}

type SettingName = (key: 'delivery' | 'transactionalId' | 'checkpointTopic') => string

/**
 * The transactional id: the one given, or the slot's default, which the worker resolves once at
 * start (resolveTransactionalId), before any session.
 */
export function transactionalId(config: Pick<ExactlyOnceSettings, 'transactionalId' | 'checkpointTopic'>): string {
  if (config.transactionalId) return config.transactionalId
  throw new Error('the default transactional id is resolved when the worker starts, before any session')
}

/**
 * The checkpoint topic: by default one per transactional id. A topic shared with other ids would
 * let another worker's open transaction hold back what a read_committed reader sees of ours.
 */
export function checkpointTopic(config: Pick<ExactlyOnceSettings, 'transactionalId' | 'checkpointTopic'>): string {
  return config.checkpointTopic ?? `${transactionalId(config)}.checkpoint`
}

/** Checks of the exactly-once options; undefined when fine, else the problem and its fix. */
export function exactlyOnceProblem(config: ExactlyOnceSettings, name: SettingName): string | undefined {
  if (config.delivery !== 'exactly-once') return undefined
  if (config.transactionalId !== undefined && config.transactionalId.trim() === '')
    return `${name('transactionalId')} is empty: leave it unset for the default (from the database and slot) or give an id`
  // The default id (and so the default topic) is known only at start: checked then (default-id.ts).
  if (config.transactionalId === undefined && config.checkpointTopic === undefined) return undefined
  const topic = checkpointTopic(config)
  if (!validTopicName(topic)) {
    if (config.checkpointTopic !== undefined)
      return `${name('checkpointTopic')} "${topic}" is not a valid Kafka topic name (letters, digits, ".", "_", "-"; at most ${MAX_TOPIC_LENGTH})`
    return defaultTopicProblem(topic, name)
  }
  return undefined
}

export function validTopicName(topic: string): boolean {
  return topicNameProblem(topic) === undefined
}

/** The default checkpoint topic is no valid topic name (the id has other characters): the fix. */
export function defaultTopicProblem(topic: string, name: SettingName): string {
  return `the default checkpoint topic "${topic}" (the transactional id and ".checkpoint") is not a valid Kafka topic name (letters, digits, ".", "_", "-"; at most ${MAX_TOPIC_LENGTH}): set ${name('checkpointTopic')}, or a ${name('transactionalId')} made of those characters`
}
