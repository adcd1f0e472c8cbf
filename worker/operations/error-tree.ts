/**
 * The fields that decide what an error means, at any depth of its tree: Kafka's error `type`
 * (kafkajs) or `apiId` (@platformatic/kafka), a numeric Kafka or string socket/SQLSTATE/Prisma
 * `code`, and the driver adapter's `kind` (@prisma/adapter-pg).
 */
export interface ErrorFields {
  type?: unknown
  code?: unknown
  apiId?: unknown
  kind?: unknown
}

/**
 * Every error in an error's tree, the error itself first, breadth first. Libraries wrap the error
 * that matters: kafkajs in `cause` or `originalError` (retries), @platformatic/kafka in `errors[]`
 * (one per broker request of a multi-broker send), Prisma and its adapter in `cause`, an
 * AggregateError in `errors[]`. That error can be at any depth, so every classification (Kafka's
 * errors in worker/delivery/, a database outage in inbox/) walks the whole tree, this one way.
 */
export function* errorTree(error: unknown): Generator<ErrorFields> {
  const seen = new Set<unknown>()
  const pending: unknown[] = [error]
  while (pending.length > 0) {
    const current = pending.shift()
    if (!current || typeof current !== 'object' || seen.has(current)) continue
    seen.add(current)
    yield current as ErrorFields
    const { cause, originalError, errors } = current as { cause?: unknown; originalError?: unknown; errors?: unknown }
    pending.push(cause, originalError)
    if (Array.isArray(errors)) pending.push(...errors)
  }
}
