import { OutboxValidationError } from './errors.js'
import { topicNameProblem } from './topic.js'

export type JsonPrimitive = string | number | boolean | null
/** Any value JSON can carry. Objects with a `toJSON` method (Date, Prisma's Decimal) are accepted too. */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue } | { toJSON(): unknown }

/** An event as the app emits it. */
export interface OutboxEvent {
  /** What kind of thing changed, e.g. `order`. Routes the topic through the worker's template. */
  aggregateType: string
  /** Which one changed: the Kafka key, so events of one aggregate stay in order. */
  aggregateId: string | number | bigint
  /** What happened, e.g. `order.created`. Sent as the `type` header. */
  type: string
  /** The message value: any JSON value. */
  payload: JsonValue
  /** Extra Kafka headers; string values only. */
  headers?: Record<string, string>
  /** An explicit topic, instead of the worker's template. */
  topic?: string
}

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
export function toOutboxRow(event: OutboxEvent, id: string, maxEventBytes: number, field = ''): OutboxRow {
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
  checkJson(event.payload, at('payload'), new Set())
  const payloadJson = JSON.stringify(event.payload)
  const headersJson = event.headers === undefined ? null : JSON.stringify(checkHeaders(event.headers, at('headers')))
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
  // What Kafka will count against its message size limit: value, key, headers, topic.
  const bytes =
    Buffer.byteLength(payloadJson) +
    Buffer.byteLength(aggregateId) +
    Buffer.byteLength(headersJson ?? '') +
    Buffer.byteLength(type) +
    Buffer.byteLength(aggregateType) +
    id.length
  if (bytes > maxEventBytes) {
    throw new OutboxValidationError(
      field || 'event',
      `is ${bytes} bytes, over the ${maxEventBytes}-byte maximum`,
      'store large data elsewhere and send a reference, or raise maxEventBytes (and Kafka max.message.bytes) together',
    )
  }
  return { id, aggregateType, aggregateId, type, payloadJson, headersJson, topic }
}

function requiredText(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw new OutboxValidationError(
      field,
      value === undefined ? 'is missing' : `is a ${typeof value}, not a string`,
      'pass a non-empty string',
    )
  }
  if (value.trim().length === 0) throw new OutboxValidationError(field, 'is empty', 'pass a non-empty string')
  return noNul(value, field)
}

/**
 * PostgreSQL's text and jsonb cannot hold U+0000: the insert would fail, and with withOutbox
 * only at COMMIT. Refused here instead, so both modes reject the same events up front.
 */
function noNul(value: string, field: string): string {
  if (value.includes('\u0000'))
    throw new OutboxValidationError(field, 'contains a NUL character (U+0000)', 'remove it: PostgreSQL cannot store it')
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
    noNul(name, `${field} name`)
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
        `is a ${value === null ? 'null' : typeof value}, not a string`,
        'convert header values to strings',
      )
    }
    noNul(value, `${field}.${name}`)
  }
  return headers as Record<string, string>
}

/**
 * Rejects what JSON.stringify would drop, alter or choke on: undefined, functions, symbols, BigInt,
 * NaN and Infinity, cycles, and objects that serialize to `{}` (Map, Set, class instances) unless
 * they define toJSON (Date, Decimal), whose result is checked in turn.
 */
function checkJson(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
      noNul(value, path)
      return
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value))
        throw new OutboxValidationError(path, `is ${value}`, 'JSON has no NaN or Infinity: use null or a string')
      return
    case 'bigint':
      throw new OutboxValidationError(path, 'is a BigInt', 'convert it to a string (or a number if it is safe)')
    case 'undefined':
      throw new OutboxValidationError(path, 'is undefined, which JSON drops silently', 'use null or leave the key out')
    case 'function':
    case 'symbol':
      throw new OutboxValidationError(path, `is a ${typeof value}`, 'payloads carry data only')
  }
  if (value === null) return
  const object = value as object
  if (seen.has(object))
    throw new OutboxValidationError(path, 'refers back to itself (a cycle)', 'send a tree, not a graph')
  seen.add(object)
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
    checkJson((object as { toJSON(): unknown }).toJSON(), path, seen)
  } else if (Array.isArray(object)) {
    for (let index = 0; index < object.length; index++) checkJson(object[index], `${path}[${index}]`, seen)
  } else {
    const proto = Object.getPrototypeOf(object)
    if (proto !== Object.prototype && proto !== null) {
      const kind = proto?.constructor?.name ?? 'object'
      throw new OutboxValidationError(
        path,
        `is a ${kind}, which JSON turns into {}`,
        'convert it to a plain object or array',
      )
    }
    for (const [key, item] of Object.entries(object)) {
      if (key.includes('\u0000'))
        throw new OutboxValidationError(
          path,
          'has a key with a NUL character (U+0000)',
          'remove it: jsonb cannot store it',
        )
      checkJson(item, `${path}.${key}`, seen)
    }
  }
  seen.delete(object)
}
