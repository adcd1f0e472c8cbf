import { OutboxError } from '../src/errors.js'
import { topicNameProblem } from '../src/topic.js'
import type { Logger } from '../worker/operations/logger.js'
import { DEFAULT_RETRY } from '../worker/retry-policy.js'
import type { EventMap, Handlers } from './types.js'

/** What `createInbox` needs; every optional field has its default in DEFAULT_INBOX_OPTIONS. */
export interface InboxOptions<M extends EventMap, C, Tx> {
  /** The app's PrismaClient (extended or not): handlers run in its `$transaction`. */
  prisma: C
  kafka: {
    brokers: string[]
    clientId?: string
    /** Passed to kafkajs as is (TLS, SASL), for clusters that need them. */
    ssl?: boolean | object
    sasl?: object
  }
  topics: (string | RegExp)[]
  /** The Kafka consumer group: consumers in one group share the partitions. */
  group: string
  /**
   * The consumer's name in the inbox table: events are deduplicated per name, so two consumers
   * (billing, shipping) of one topic each apply every event once. Keep it when renaming the group
   * (a renamed group reads the topics from the beginning: see retainHandledMs).
   */
  name: string
  handlers: Handlers<M, Tx>
  logger?: Logger
  /**
   * What a parked record does to the later records of its key. `block-key`: they are parked as
   * waiting, in order, and `retryParked` applies them after it; the rest flows. `continue`: they
   * are handled as if nothing happened (order of effects per key is then not kept).
   * Default: `block-key`.
   */
  onFailure?: 'block-key' | 'continue'
  /** Attempts of a throwing handler before its record is parked. Default: 5. */
  attempts?: number
  /** Backoff between attempts: the first wait, doubling up to `retryMaxMs`, each 50–100 % of that at random (so consumers that failed together do not retry together). Default: 200 / 5,000 ms. */
  retryInitialMs?: number
  retryMaxMs?: number
  /** Partitions handled at once; within a partition one record at a time, in order. Default: 4. */
  partitionsConcurrently?: number
  /** The inbox table, optionally schema-qualified. Default: `inbox`. */
  table?: string
  /**
   * Handled rows older than this are deleted (checked hourly); 0 keeps them. Default: 7 days. A
   * record read again after its row is gone is applied again: keep it longer than any resend and,
   * when the group may read from the beginning again (offsets expired, group renamed or reset),
   * longer than the topic's retention.
   */
  retainHandledMs?: number
  /** A new group starts at the earliest record (true) or only new ones. Default: true. */
  fromBeginning?: boolean
  /** Kafka group session timeout: how long a dead member holds its partitions. Default: 30,000 ms. */
  sessionTimeoutMs?: number
  /** Time limit of one handler's transaction (Prisma's `timeout`). Default: 30,000 ms. */
  transactionTimeoutMs?: number
}

export const DEFAULT_INBOX_OPTIONS = {
  onFailure: 'block-key' as 'block-key' | 'continue',
  attempts: 5,
  ...DEFAULT_RETRY,
  partitionsConcurrently: 4,
  table: 'inbox',
  retainHandledMs: 7 * 24 * 3600 * 1000,
  fromBeginning: true,
  sessionTimeoutMs: 30_000,
  transactionTimeoutMs: 30_000,
}

export type ResolvedInboxOptions<M extends EventMap, C, Tx> = Required<Omit<InboxOptions<M, C, Tx>, 'logger'>> & {
  logger: Logger | undefined
}

/** A configuration mistake in `createInbox`'s options, naming the option and the fix. */
export class InboxConfigError extends OutboxError {
  constructor(option: string, problem: string, fix: string) {
    super(`createInbox: ${option} ${problem}; ${fix}`, { code: 'INBOX_INVALID_OPTIONS' })
  }
}

/** Checks the options once and fills in the defaults; everything after uses the result. */
export function resolveInboxOptions<M extends EventMap, C, Tx>(
  options: InboxOptions<M, C, Tx>,
): ResolvedInboxOptions<M, C, Tx> {
  if (!options || typeof options !== 'object') {
    throw new InboxConfigError('options', 'are missing', 'pass { prisma, kafka, topics, group, name, handlers }')
  }
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  const config = { ...DEFAULT_INBOX_OPTIONS, ...given } as ResolvedInboxOptions<M, C, Tx>
  const prisma = config.prisma as { $transaction?: unknown } | undefined
  if (typeof prisma?.$transaction !== 'function') {
    throw new InboxConfigError('prisma', 'is not a PrismaClient', "pass the app's client (new PrismaClient(...))")
  }
  const brokers = config.kafka?.brokers
  if (
    !Array.isArray(brokers) ||
    brokers.length === 0 ||
    brokers.some((b) => typeof b !== 'string' || !b.includes(':'))
  ) {
    throw new InboxConfigError('kafka.brokers', `is ${JSON.stringify(brokers)}`, 'pass ["host:port", ...]')
  }
  if (!Array.isArray(config.topics) || config.topics.length === 0) {
    throw new InboxConfigError('topics', 'is empty or not an array', 'pass the topics to consume, e.g. ["order"]')
  }
  for (const topic of config.topics) {
    const problem =
      typeof topic === 'string' ? topicNameProblem(topic) : topic instanceof RegExp ? undefined : 'is not a string'
    if (problem)
      throw new InboxConfigError(
        `topics entry ${JSON.stringify(topic)}`,
        problem,
        'pass a valid topic name or a RegExp',
      )
  }
  for (const field of ['group', 'name'] as const) {
    if (typeof config[field] !== 'string' || config[field].trim() === '') {
      throw new InboxConfigError(field, 'is missing or empty', `pass a non-empty string`)
    }
  }
  if (!config.handlers || typeof config.handlers !== 'object') {
    throw new InboxConfigError('handlers', 'is missing', "pass { 'order.created': async (event, tx) => { ... } }")
  }
  for (const [type, handler] of Object.entries(config.handlers)) {
    if (typeof handler !== 'function') {
      throw new InboxConfigError(`handlers['${type}']`, 'is not a function', 'pass async (event, tx) => { ... }')
    }
  }
  if (config.onFailure !== 'block-key' && config.onFailure !== 'continue') {
    throw new InboxConfigError('onFailure', `is ${JSON.stringify(config.onFailure)}`, 'pass "block-key" or "continue"')
  }
  const positive = [
    'attempts',
    'retryInitialMs',
    'retryMaxMs',
    'partitionsConcurrently',
    'sessionTimeoutMs',
    'transactionTimeoutMs',
  ] as const
  for (const field of positive) {
    if (!Number.isSafeInteger(config[field]) || config[field] <= 0) {
      throw new InboxConfigError(field, `is ${config[field]}`, 'pass a positive whole number')
    }
  }
  if (!Number.isSafeInteger(config.retainHandledMs) || config.retainHandledMs < 0) {
    throw new InboxConfigError(
      'retainHandledMs',
      `is ${config.retainHandledMs}`,
      'pass milliseconds, or 0 to keep rows',
    )
  }
  if (typeof config.table !== 'string' || !/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/.test(config.table)) {
    throw new InboxConfigError(
      'table',
      `is ${JSON.stringify(config.table)}`,
      'pass a table name like "inbox" or "schema.inbox"',
    )
  }
  return config
}
