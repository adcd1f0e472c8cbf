/** Kafka's own rules for topic names (legal characters, length, and the two reserved names). */
const TOPIC_CHARACTERS = /^[a-zA-Z0-9._-]+$/
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
