/**
 * Kafka's own rules for topic names (legal characters, length, and the two reserved names): the
 * one place they are written, for emit, the worker's topics and its settings.
 */
const TOPIC_CHARACTERS = /^[a-zA-Z0-9._-]+$/
const NOT_TOPIC_CHARACTERS = /[^a-zA-Z0-9._-]/g
export const MAX_TOPIC_LENGTH = 249

/** Why `topic` is not a valid Kafka topic name, or undefined when it is. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'is empty'
  if (topic.length > MAX_TOPIC_LENGTH) return `is ${topic.length} characters long (Kafka allows ${MAX_TOPIC_LENGTH})`
  if (topic === '.' || topic === '..') return `is "${topic}", which Kafka reserves`
  if (!TOPIC_CHARACTERS.test(topic))
    return `"${topic}" has characters Kafka does not allow (only a-z, A-Z, 0-9, ".", "_", "-")`
  return undefined
}

/**
 * A valid topic name made from `name`: each character Kafka does not allow becomes "_", the
 * length is cut to Kafka's limit, and a name still invalid (empty, "." or "..") gives `fallback`.
 */
export function asTopicName(name: string, fallback: string): string {
  const topic = name.replace(NOT_TOPIC_CHARACTERS, '_').slice(0, MAX_TOPIC_LENGTH)
  return topicNameProblem(topic) === undefined ? topic : fallback
}
