/** The fields the Kafka clients put on their errors, at any depth of the tree. */
export interface KafkaErrorFields {
  type?: unknown
  code?: unknown
  apiId?: unknown
}

/**
 * Every error in an error's tree, the error itself first, breadth first: both clients wrap the
 * broker's error, kafkajs in `cause` or `originalError` (retries), @platformatic/kafka in
 * `errors[]` (one per broker request of a multi-broker send). The error that decides what the
 * worker does can be at any depth, so every classification walks the whole tree, this one way.
 */
export function* errorTree(error: unknown): Generator<KafkaErrorFields> {
  const seen = new Set<unknown>()
  const pending: unknown[] = [error]
  while (pending.length > 0) {
    const current = pending.shift()
    if (!current || typeof current !== 'object' || seen.has(current)) continue
    seen.add(current)
    yield current as KafkaErrorFields
    const { cause, originalError, errors } = current as { cause?: unknown; originalError?: unknown; errors?: unknown }
    pending.push(cause, originalError)
    if (Array.isArray(errors)) pending.push(...errors)
  }
}
