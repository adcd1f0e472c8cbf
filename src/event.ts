import { OutboxValidationError } from './errors.js'
import { checkJson, checkText, type JsonSafe, type JsonValue } from './json.js'
import { recordBytes } from './record-size.js'
import { topicNameProblem } from './topic.js'

export type { JsonPrimitive, JsonSafe, JsonValue } from './json.js'

/**
 * An event as the app emits it. `P` is the payload's type: any JSON value by default, or your own
 * type or interface (`OutboxEvent<OrderCreated>`); `emit` checks at compile time that JSON can
 * carry it.
 */
export interface OutboxEvent<P = JsonValue> {
  /** What kind of thing changed, e.g. `order`. Routes the topic through the worker's template. */
  aggregateType: string
  /** Which one changed: the Kafka key, so events of one aggregate stay in order. */
  aggregateId: string | number | bigint
  /** What happened, e.g. `order.created`. Sent as the `type` header. */
  type: string
  /** The message value: any JSON value. */
  payload: P
  /** Extra Kafka headers; string values only. */
  headers?: Record<string, string>
  /** An explicit topic, instead of the worker's template. */
  topic?: string
}

/**
 * An event `emit` accepts: its payload is JSON all the way down (see JsonSafe), and it has no
 * fields besides OutboxEvent's (a misspelt `header` would otherwise be dropped silently).
 */
export type CheckedEvent<E extends OutboxEvent<unknown>> = E & { payload: JsonSafe<E['payload']> } & {
  [K in Exclude<keyof E, keyof OutboxEvent>]: never
}

/**
 * The event of type `K` in an app's event map (`{ 'order.created': OrderCreated, ... }`): the map
 * both sides share, so `emit` checks the payload the producer writes and the inbox's handler for
 * `K` receives it typed (prisma-outbox/inbox, docs/consuming.md).
 */
export type EventOf<M, K extends keyof M & string> = OutboxEvent<M[K]> & { type: K }

/** What the worker sets itself; an app cannot override them. */
export const RESERVED_HEADERS = ['id', 'type', 'aggregateType', 'aggregateId'] as const

/** A validated event, serialized as it will be stored. */
export interface OutboxRow {
  id: string
  aggregateType: string
  aggregateId: string
  type: string
  payloadJson: string
  headersJson: string | null
  topic: string | null
}

/**
 * Checks an event and serializes it, throwing OutboxValidationError (naming the field and the fix)
 * before any SQL runs. `field` prefixes names for emitMany (`events[3].type`).
 */
export function toOutboxRow(event: OutboxEvent<unknown>, id: string, maxEventBytes: number, field = ''): OutboxRow {
  if (event === null || typeof event !== 'object') {
    throw new OutboxValidationError(
      field || 'event',
      'is not an object',
      'pass { aggregateType, aggregateId, type, payload }',
    )
  }
  const at = (name: string) => (field ? `${field}.${name}` : name)
  const aggregateType = requiredText(event.aggregateType, at('aggregateType'))
  const aggregateId = aggregateIdText(event.aggregateId, at('aggregateId'))
  const type = requiredText(event.type, at('type'))
  if (event.payload === undefined) {
    throw new OutboxValidationError(at('payload'), 'is missing', 'pass any JSON value (use null for "no payload")')
  }
  const payloadBytes = checkJson(event.payload, at('payload'))
  const payloadJson = JSON.stringify(event.payload)
  const headers = event.headers === undefined ? undefined : checkHeaders(event.headers, at('headers'))
  const headersJson = headers === undefined ? null : JSON.stringify(headers)
  let topic: string | null = null
  if (event.topic !== undefined) {
    if (typeof event.topic !== 'string')
      throw new OutboxValidationError(at('topic'), 'is not a string', 'pass a topic name or omit it')
    const problem = topicNameProblem(event.topic)
    if (problem)
      throw new OutboxValidationError(
        at('topic'),
        problem,
        'use a valid Kafka topic name or omit it to use the worker template',
      )
    topic = event.topic
  }
  // Measured as the worker will measure the Kafka record: the payload as jsonb prints it (not as
  // JSON.stringify wrote it), the key, and the headers the worker adds. What passes here, the
  // worker can publish under the same limit.
  const bytes = recordBytes(aggregateId, payloadBytes, { ...headers, id, type, aggregateType, aggregateId })
  if (bytes > maxEventBytes) {
    throw new OutboxValidationError(
      field || 'event',
      `is ${bytes} bytes as Kafka will receive it (the payload as PostgreSQL stores it, the key and headers), over the ${maxEventBytes}-byte maximum`,
      "store large data elsewhere and send a reference, or raise maxEventBytes (and the worker's --max-message-bytes and Kafka's max.message.bytes) together",
    )
  }
  return { id, aggregateType, aggregateId, type, payloadJson, headersJson, topic }
}

function requiredText(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw new OutboxValidationError(
      field,
      value === undefined ? 'is missing' : value === null ? 'is null' : `is a ${typeof value}, not a string`,
      'pass a non-empty string',
    )
  }
  if (value.trim().length === 0) throw new OutboxValidationError(field, 'is empty', 'pass a non-empty string')
  checkText(value, field)
  return value
}

function aggregateIdText(value: unknown, field: string): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value))
      throw new OutboxValidationError(field, `is ${value}`, 'pass a string or a safe integer')
    return String(value)
  }
  if (typeof value === 'bigint') return value.toString()
  return requiredText(value, field)
}

function checkHeaders(headers: unknown, field: string): Record<string, string> {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw new OutboxValidationError(field, 'is not an object', 'pass { name: "value" } with string values, or omit it')
  }
  for (const [name, value] of Object.entries(headers)) {
    if (name.length === 0)
      throw new OutboxValidationError(field, 'has an empty header name', 'give every header a name')
    if ((RESERVED_HEADERS as readonly string[]).includes(name)) {
      throw new OutboxValidationError(
        `${field}.${name}`,
        'is set by the worker itself',
        `remove it (reserved: ${RESERVED_HEADERS.join(', ')})`,
      )
    }
    if (typeof value !== 'string') {
      throw new OutboxValidationError(
        `${field}.${name}`,
        value === null ? 'is null, not a string' : `is a ${typeof value}, not a string`,
        'convert header values to strings',
      )
    }
    checkText(name, field, `has a header name "${name.replace(/\0/g, '\\u0000')}" that `)
    checkText(value, `${field}.${name}`)
  }
  return headers as Record<string, string>
}
