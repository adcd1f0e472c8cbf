import type { JsonValue } from '../src/json.js'

/**
 * What a consumer's handlers may be typed by: event `type` → payload type. The emitting side
 * uses the same map (`EventOf<Events, 'order.created'>` from `prisma-outbox`), so a payload
 * changed on one side fails to compile on the other.
 */
// `object`, not Record<string, unknown>: an interface (no index signature) must qualify.
export type EventMap = object

/** Without a map every type is accepted and payloads are plain JSON. */
export type UntypedEvents = Record<string, JsonValue>

/** One event as a handler receives it: the outbox event, plus where Kafka had it. */
export interface InboxEvent<P = JsonValue, K extends string = string> {
  /** The event's id (the outbox row's UUIDv7): what the inbox deduplicates on. */
  id: string
  type: K
  aggregateType: string
  /** The Kafka key, always text (an emitted number or bigint arrives as its digits). */
  aggregateId: string
  payload: P
  /** Every header of the record, including the worker's own (id, type, traceparent…). */
  headers: Record<string, string>
  topic: string
  partition: number
  offset: string
  /** The record's Kafka timestamp, ms since epoch. */
  timestamp: number
}

/** The transaction client `prisma.$transaction(async (tx) => …)` gives to its callback. */
export type TransactionOf<C> = C extends { $transaction<R>(fn: (tx: infer T) => Promise<R>, options?: never): unknown }
  ? T
  : C extends { $transaction(fn: (tx: infer T) => Promise<unknown>, ...rest: never[]): unknown }
    ? T
    : never

export type Handler<P, K extends string, Tx> = (event: InboxEvent<P, K>, tx: Tx) => Promise<unknown>

/** A handler per event type; a type without one is acknowledged and left alone. */
export type Handlers<M extends EventMap, Tx> = { [K in keyof M & string]?: Handler<M[K], K, Tx> }
