import { topicNameProblem } from '../../src/topic.js'
import { exactlyOnceProblem } from '../delivery/exactly-once/settings.js'
import { applyTemplate } from '../delivery/records.js'
import { DEFAULT_RETRY } from '../retry-policy.js'
import { OutboxConfigError } from './errors.js'
import { rememberSecrets } from './redact.js'

/** Every worker option, resolved and validated. Built once by resolveConfig and used everywhere after. */
export interface WorkerConfig {
  databaseUrl: string
  kafkaBrokers: string[]
  slot: string
  publication: string
  /** `outbox` or `schema.outbox`. */
  table: string
  topicTemplate: string
  onPoison: 'dlq' | 'stop'
  /** at-least-once, or exactly-once through Kafka transactions (see worker/delivery/exactly-once). */
  delivery: 'at-least-once' | 'exactly-once'
  /** Exactly-once: the producer's transactional.id; undefined = the slot's default, resolved at start (exactly-once/default-id.ts). */
  transactionalId: string | undefined
  /** Exactly-once: the compacted topic of this worker's last delivered commit LSN; undefined = `<transactional id>.checkpoint`. */
  checkpointTopic: string | undefined
  /** An invalidated slot, or one that disappeared after this worker used it: re-create it, or exit 3. */
  onSlotLost: 'recreate' | 'stop'
  /** When the worker creates the slot, first publish the rows already in the table (initial), or not. */
  snapshot: 'initial' | 'never'
  /** Create the slot with failover = true (PostgreSQL 17+), so a standby can keep a synced copy. */
  failoverSlot: boolean
  dlqTopicTemplate: string
  /** Which Kafka client library publishes: both keep the same contract (delivery/publisher.ts). */
  kafkaClient: 'kafkajs' | 'platformatic'
  kafkaClientId: string
  kafkaSsl: boolean
  kafkaSslCaFile: string | undefined
  kafkaSaslMechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512' | undefined
  kafkaSaslUsername: string | undefined
  kafkaSaslPassword: string | undefined
  maxMessageBytes: number
  batchSize: number
  bufferEvents: number
  bufferBytes: number
  statusIntervalMs: number
  standbyPollMs: number
  startupTimeoutMs: number
  shutdownTimeoutMs: number
  retryInitialMs: number
  retryMaxMs: number
  healthPort: number
  healthHost: string
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'
  logFormat: 'auto' | 'json' | 'pretty'
  /** Delete outbox rows older than this many ms; 0 = never. */
  retentionMs: number
  /** How long events for a missing or unauthorized topic wait before they are poison. */
  missingTopicTimeoutMs: number
  /** How often the worker checks that the outbox table is still in the publication. */
  tableCheckIntervalMs: number
  /** How long the table may be out of the publication before the worker exits 3. */
  missingTableTimeoutMs: number
  /**
   * Readiness: events waiting with nothing acknowledged by Kafka for this long make `/readyz` 503
   * (a send pending or failing). See docs/probes.md.
   */
  readySendTimeoutMs: number
  /** Liveness: no sign of progress from the run loop for this long makes `/healthz` 503 (wedged). */
  livenessTimeoutMs: number
}

/** Any subset of the options, brokers as a list or comma-separated text; the rest come from DEFAULTS. */
export type ConfigInput = Omit<Partial<WorkerConfig>, 'kafkaBrokers'> & { kafkaBrokers?: string[] | string }

/** Options of createWorker(): a database URL and brokers, and anything else to override. */
export type WorkerOptions = ConfigInput & Pick<WorkerConfig, 'databaseUrl'> & { kafkaBrokers: string[] | string }

export type Key = keyof WorkerConfig
export interface OptionSpec {
  key: Key
  flag: string
  env: string
  description: string
  /** Secrets are read from the environment only: flags show up in `ps`. */
  envOnly?: boolean
  /** A switch: `--kafka-ssl` alone means true (`--kafka-ssl=false` is also understood). */
  isSwitch?: boolean
  /** Parses the text of a flag or variable. */
  parse: (text: string, name: string) => unknown
}

/**
 * Exactly-once's --batch-size and --buffer-events defaults. A Kafka transaction takes whole
 * PostgreSQL transactions up to --batch-size events, and one is in flight at a time: its fixed
 * cost (adding the partitions, the commit and its markers) is paid per transaction, so larger
 * ones drain faster. The buffer holds several transactions' worth so that the next ones are full
 * when one commits: with room for two, reading paused behind the one in flight and the next
 * often left short. Draining 200,000 events of ~200 bytes (npm run bench -- --only=relay
 * --exactly-once, runs interleaved, load 1.6-2.5), @platformatic/kafka: 25,900-39,700 events/s
 * with 2,000 / 4,000 (0.67-0.74 of at-least-once in the same run, peak RSS 174-200 MB),
 * 35,300-44,300 with 2,000 / 8,000 (0.75-0.92, 191-205 MB), 33,500-44,100 with 4,000 / 8,000
 * (0.73-0.90); kafkajs: 17,400-24,300 with 2,000 / 4,000, 24,700-26,800 with 2,000 / 8,000. For
 * events over ~2 KiB the byte bound below is reached first. At low rates transactions are small
 * either way: latency does not change.
 */
export const EXACTLY_ONCE_BATCH_SIZE = 2000
export const EXACTLY_ONCE_BUFFER_EVENTS = 8000

/** Exactly-once's --buffer-bytes default, for the same reason: two of its largest requests. */
export const EXACTLY_ONCE_BUFFER_BYTES = 16 * 1024 * 1024

/** The defaults, in one place. Documented in --help and docs/worker.md, both rendered from OPTIONS (options-doc.ts). */
export const DEFAULTS: Omit<WorkerConfig, 'databaseUrl' | 'kafkaBrokers'> = {
  slot: 'prisma_outbox',
  publication: 'prisma_outbox',
  table: 'outbox',
  topicTemplate: '{aggregateType}',
  onPoison: 'dlq',
  delivery: 'at-least-once',
  transactionalId: undefined,
  checkpointTopic: undefined,
  onSlotLost: 'stop',
  snapshot: 'initial',
  failoverSlot: false,
  dlqTopicTemplate: '{topic}.dlq',
  // The faster client that passes the whole fault suite, in both deliveries (docs/worker.md, "Kafka clients").
  kafkaClient: 'platformatic',
  kafkaClientId: 'prisma-outbox',
  kafkaSsl: false,
  kafkaSslCaFile: undefined,
  kafkaSaslMechanism: undefined,
  kafkaSaslUsername: undefined,
  kafkaSaslPassword: undefined,
  maxMessageBytes: 1024 * 1024,
  // At-least-once; exactly-once's default is EXACTLY_ONCE_BATCH_SIZE.
  batchSize: 1000,
  // At-least-once; exactly-once's default is EXACTLY_ONCE_BUFFER_EVENTS. Events held past a few
  // young-generation collections are promoted, and die in the old generation, which V8 lets grow
  // to several times what is live before it compacts: with 2,000 the old generation reached
  // ~80 MB draining a backlog, with 500 ~20 MB, at the same rate (test/bench, --only=relay).
  bufferEvents: 500,
  // At-least-once; exactly-once's default is EXACTLY_ONCE_BUFFER_BYTES. What a burst of large
  // events holds: draining 20,000 events of ~19 KB, peak RSS was 210 MB with 16 MiB, 159-166 MB
  // with 4 MiB, at the same rate (a request of up to 8 MiB is still built whenever that much is
  // buffered: reading pauses at 4 MiB, after the event that crosses it).
  bufferBytes: 4 * 1024 * 1024,
  statusIntervalMs: 10_000,
  standbyPollMs: 2_000,
  startupTimeoutMs: 30_000,
  shutdownTimeoutMs: 15_000,
  ...DEFAULT_RETRY,
  healthPort: 9464,
  healthHost: '0.0.0.0',
  logLevel: 'info',
  logFormat: 'auto',
  retentionMs: 0,
  missingTopicTimeoutMs: 60_000,
  tableCheckIntervalMs: 5_000,
  missingTableTimeoutMs: 60_000,
  // Longer than a partition leader election and several retries at the 5 s retry cap, so one
  // failed send does not flip readiness; short enough that a stall shows within two probe periods.
  readySendTimeoutMs: 30_000,
  // Far above the longest step of a healthy loop (a check of a hung PostgreSQL gives up after
  // 5 s to connect + 15 s per query; status updates every 10 s; retries every 5 s at most): a
  // restart for a loop that is merely slow would cost more than it saves.
  livenessTimeoutMs: 120_000,
}

/**
 * After SIGTERM the CLI exits by itself this long past shutdownTimeoutMs, whatever is still under
 * way (closing connections, an initial snapshot ending): the longest a graceful stop takes. A
 * container's grace period must exceed shutdownTimeoutMs plus this.
 */
export const SHUTDOWN_WATCHDOG_EXTRA_MS = 10_000

const text = (t: string) => t
const int = (t: string, name: string) => {
  if (!/^\d+$/.test(t.trim())) throw new OutboxConfigError(`${name} must be a whole number, got "${t}"`)
  return Number(t)
}
const bool = (t: string, name: string) => {
  if (/^(1|true|yes|on)$/i.test(t)) return true
  if (/^(0|false|no|off|)$/i.test(t)) return false
  throw new OutboxConfigError(`${name} must be true or false, got "${t}"`)
}
const list = (t: string) =>
  t
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

export const OPTIONS: OptionSpec[] = [
  {
    key: 'databaseUrl',
    flag: 'database-url',
    env: 'DATABASE_URL',
    parse: text,
    envOnly: true,
    description: 'PostgreSQL URL; the role needs REPLICATION (required; environment only, or DATABASE_URL_FILE)',
  },
  {
    key: 'kafkaBrokers',
    flag: 'kafka-brokers',
    env: 'KAFKA_BROKERS',
    parse: list,
    description: 'Kafka bootstrap brokers, comma-separated host:port (required)',
  },
  { key: 'slot', flag: 'slot', env: 'OUTBOX_SLOT', parse: text, description: 'replication slot (created if missing)' },
  {
    key: 'publication',
    flag: 'publication',
    env: 'OUTBOX_PUBLICATION',
    parse: text,
    description: 'publication the migration created',
  },
  {
    key: 'table',
    flag: 'table',
    env: 'OUTBOX_TABLE',
    parse: text,
    description: 'outbox table, optionally schema.table',
  },
  {
    key: 'topicTemplate',
    flag: 'topic',
    env: 'OUTBOX_TOPIC',
    parse: text,
    description: 'topic for events without one; {aggregateType} and {type} are replaced',
  },
  {
    key: 'onPoison',
    flag: 'on-poison',
    env: 'OUTBOX_ON_POISON',
    parse: text,
    description: 'event Kafka will never accept: dlq (dead-letter topic) or stop (exit 4)',
  },
  {
    key: 'delivery',
    flag: 'delivery',
    env: 'OUTBOX_DELIVERY',
    parse: text,
    description:
      'at-least-once, or exactly-once (Kafka transactions; consumers must read with isolation.level=read_committed)',
  },
  {
    key: 'transactionalId',
    flag: 'transactional-id',
    env: 'OUTBOX_TRANSACTIONAL_ID',
    parse: text,
    description: 'exactly-once: Kafka transactional.id (default prisma-outbox.<system identifier>.<database>.<slot>)',
  },
  {
    key: 'checkpointTopic',
    flag: 'checkpoint-topic',
    env: 'OUTBOX_CHECKPOINT_TOPIC',
    parse: text,
    description:
      'exactly-once: compacted topic of delivered positions, created if missing (default <transactional id>.checkpoint)',
  },
  {
    key: 'onSlotLost',
    flag: 'on-slot-lost',
    env: 'OUTBOX_ON_SLOT_LOST',
    parse: text,
    description:
      'slot invalidated or gone after use: stop (exit 3) or recreate it (see docs/operations.md, "Slot states")',
  },
  {
    key: 'snapshot',
    flag: 'snapshot',
    env: 'OUTBOX_SNAPSHOT',
    parse: text,
    description: 'on creating the slot, publish the rows already in the table first (initial) or not (never)',
  },
  {
    key: 'failoverSlot',
    flag: 'failover-slot',
    env: 'OUTBOX_FAILOVER_SLOT',
    parse: bool,
    isSwitch: true,
    description: 'create the slot with failover = true (PostgreSQL 17+); the flag alone means on',
  },
  {
    key: 'dlqTopicTemplate',
    flag: 'dlq-topic',
    env: 'OUTBOX_DLQ_TOPIC',
    parse: text,
    description: 'dead-letter topic; {topic} is the original topic',
  },
  {
    key: 'kafkaClient',
    flag: 'kafka-client',
    env: 'OUTBOX_KAFKA_CLIENT',
    parse: text,
    description: 'Kafka client library: platformatic (@platformatic/kafka) or kafkajs, for either delivery',
  },
  {
    key: 'kafkaClientId',
    flag: 'kafka-client-id',
    env: 'KAFKA_CLIENT_ID',
    parse: text,
    description: 'Kafka client id',
  },
  {
    key: 'kafkaSsl',
    flag: 'kafka-ssl',
    env: 'KAFKA_SSL',
    parse: bool,
    isSwitch: true,
    description: 'connect to Kafka with TLS',
  },
  {
    key: 'kafkaSslCaFile',
    flag: 'kafka-ssl-ca',
    env: 'KAFKA_SSL_CA',
    parse: text,
    description: 'PEM file of CA certificates for Kafka TLS',
  },
  {
    key: 'kafkaSaslMechanism',
    flag: 'kafka-sasl-mechanism',
    env: 'KAFKA_SASL_MECHANISM',
    parse: text,
    description: 'PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512',
  },
  {
    key: 'kafkaSaslUsername',
    flag: 'kafka-sasl-username',
    env: 'KAFKA_SASL_USERNAME',
    parse: text,
    description: 'SASL user name',
  },
  {
    key: 'kafkaSaslPassword',
    flag: 'kafka-sasl-password',
    env: 'KAFKA_SASL_PASSWORD',
    parse: text,
    envOnly: true,
    description: 'SASL password (environment only)',
  },
  {
    key: 'maxMessageBytes',
    flag: 'max-message-bytes',
    env: 'OUTBOX_MAX_MESSAGE_BYTES',
    parse: int,
    description: "largest record sent; larger ones are poison (Kafka's default limit)",
  },
  {
    key: 'batchSize',
    flag: 'batch-size',
    env: 'OUTBOX_BATCH_SIZE',
    parse: int,
    description: 'most records per Kafka request (exactly-once: per Kafka transaction, whole PostgreSQL transactions)',
  },
  {
    key: 'bufferEvents',
    flag: 'buffer-events',
    env: 'OUTBOX_BUFFER_EVENTS',
    parse: int,
    description: 'unacknowledged events held before reading pauses',
  },
  {
    key: 'bufferBytes',
    flag: 'buffer-bytes',
    env: 'OUTBOX_BUFFER_BYTES',
    parse: int,
    description: 'unacknowledged bytes held before reading pauses',
  },
  {
    key: 'statusIntervalMs',
    flag: 'status-interval-ms',
    env: 'OUTBOX_STATUS_INTERVAL_MS',
    parse: int,
    description: "status updates to PostgreSQL at least this often; at most a third of the server's wal_sender_timeout",
  },
  {
    key: 'standbyPollMs',
    flag: 'standby-poll-ms',
    env: 'OUTBOX_STANDBY_POLL_MS',
    parse: int,
    description: 'how often a standby checks whether the slot is free',
  },
  {
    key: 'startupTimeoutMs',
    flag: 'startup-timeout-ms',
    env: 'OUTBOX_STARTUP_TIMEOUT_MS',
    parse: int,
    description: 'give up (exit 3) if PostgreSQL or Kafka cannot be reached at start for this long',
  },
  {
    key: 'shutdownTimeoutMs',
    flag: 'shutdown-timeout-ms',
    env: 'OUTBOX_SHUTDOWN_TIMEOUT_MS',
    parse: int,
    description: 'on SIGTERM, time allowed to flush in-flight events',
  },
  {
    key: 'retryInitialMs',
    flag: 'retry-initial-ms',
    env: 'OUTBOX_RETRY_INITIAL_MS',
    parse: int,
    description: 'first retry delay after a Kafka or PostgreSQL error',
  },
  {
    key: 'retryMaxMs',
    flag: 'retry-max-ms',
    env: 'OUTBOX_RETRY_MAX_MS',
    parse: int,
    description: 'retry delay cap (exponential backoff with jitter)',
  },
  {
    key: 'healthPort',
    flag: 'health-port',
    env: 'HEALTH_PORT',
    parse: int,
    description: 'port of /healthz, /readyz and /metrics; 0 turns it off',
  },
  {
    key: 'healthHost',
    flag: 'health-host',
    env: 'HEALTH_HOST',
    parse: text,
    description: 'address the health server listens on',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'LOG_LEVEL',
    parse: text,
    description: 'trace, debug, info, warn, error, fatal or silent',
  },
  {
    key: 'logFormat',
    flag: 'log-format',
    env: 'LOG_FORMAT',
    parse: text,
    description: 'json, pretty, or auto (pretty on a terminal)',
  },
  {
    key: 'retentionMs',
    flag: 'retention',
    env: 'OUTBOX_RETENTION',
    parse: parseDuration,
    description: 'delete rows older than this (and delivered), e.g. 7d, 12h, 30m; 0 = keep',
  },
  {
    key: 'missingTopicTimeoutMs',
    flag: 'missing-topic-timeout',
    env: 'OUTBOX_MISSING_TOPIC_TIMEOUT',
    parse: parseDuration,
    description: 'events for a topic that does not exist (or may not be written) wait this long, then are poison',
  },
  {
    key: 'tableCheckIntervalMs',
    flag: 'table-check-interval',
    env: 'OUTBOX_TABLE_CHECK_INTERVAL',
    parse: parseDuration,
    description: 'how often to check that the outbox table is still in the publication',
  },
  {
    key: 'missingTableTimeoutMs',
    flag: 'missing-table-timeout',
    env: 'OUTBOX_MISSING_TABLE_TIMEOUT',
    parse: parseDuration,
    description: 'exit 3 when the outbox table stays out of the publication this long',
  },
  {
    key: 'readySendTimeoutMs',
    flag: 'ready-send-timeout',
    env: 'OUTBOX_READY_SEND_TIMEOUT',
    parse: parseDuration,
    description: '/readyz turns 503 when events wait this long with nothing acknowledged by Kafka',
  },
  {
    key: 'livenessTimeoutMs',
    flag: 'liveness-timeout',
    env: 'OUTBOX_LIVENESS_TIMEOUT',
    parse: parseDuration,
    description:
      '/healthz turns 503 when the run loop shows no progress this long (wedged; outages do not count); unset, at least 3 times the largest of the status interval, standby poll and retry cap',
  },
]

/** `7d`, `12h`, `30m`, `45s`, `500ms` or a plain number of ms. */
export function parseDuration(t: string, name: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(t.trim())
  if (!match) throw new OutboxConfigError(`${name} must be a duration like 7d, 12h, 30m or 45s, got "${t}"`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 'ms') as 'ms']
  return Number(match[1]) * unit
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
const TEMPLATE_FIELDS = new Set(['aggregateType', 'type', 'topic'])
const POSITIVE: Key[] = [
  'maxMessageBytes',
  'batchSize',
  'bufferEvents',
  'bufferBytes',
  'statusIntervalMs',
  'standbyPollMs',
  'retryInitialMs',
  'retryMaxMs',
  'missingTopicTimeoutMs',
  'tableCheckIntervalMs',
  'missingTableTimeoutMs',
  'readySendTimeoutMs',
  'livenessTimeoutMs',
]

export interface ResolveOptions {
  /** `status` needs no Kafka. Default: true. */
  requireKafka?: boolean
  /**
   * How the user wrote each option they gave, for messages in their words: the CLI passes
   * `--health-port` or `HEALTH_PORT`. Without it (createWorker), options are named by their
   * keys (`healthPort`), as the caller typed them.
   */
  names?: Partial<Record<Key, string>>
}

/** Merges options over DEFAULTS and validates everything once; throws OutboxConfigError naming the fix. */
export function resolveConfig(options: ConfigInput, { requireKafka = true, names }: ResolveOptions = {}): WorkerConfig {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  const config = { ...DEFAULTS, ...defined } as WorkerConfig
  if (typeof config.kafkaBrokers === 'string') config.kafkaBrokers = list(config.kafkaBrokers)
  // Before any check, whose message may quote an option: from here on nothing prints them.
  rememberSecrets(config)
  const fromCli = names !== undefined
  const spec = (key: Key) => OPTIONS.find((o) => o.key === key) as OptionSpec
  /** The option as the user wrote it. */
  const name = (key: Key) => names?.[key] ?? (fromCli ? spec(key).env : key)
  /** How to give an option that is missing. */
  const howToGive = (key: Key) => {
    const o = spec(key)
    if (!fromCli) return key
    return o.envOnly ? o.env : `--${o.flag} or ${o.env}`
  }

  if (!config.databaseUrl) {
    throw new OutboxConfigError(
      fromCli
        ? 'DATABASE_URL is not set: set it in the environment (export DATABASE_URL=postgresql://...), or load your .env with --env-file .env, or set DATABASE_URL_FILE to a file holding it'
        : 'databaseUrl is missing: pass a postgresql:// URL',
    )
  }
  let url: URL
  try {
    url = new URL(config.databaseUrl)
  } catch {
    throw new OutboxConfigError(
      `${name('databaseUrl')} is not a valid URL: use postgresql://<user>:<password>@<host>:5432/<database>`,
    )
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new OutboxConfigError(`${name('databaseUrl')} must start with postgresql://, not ${url.protocol}//`)
  }
  config.kafkaBrokers ??= []
  if (requireKafka && config.kafkaBrokers.length === 0) {
    throw new OutboxConfigError(
      fromCli
        ? 'KAFKA_BROKERS is not set: pass --kafka-brokers host:9092[,host2:9092] or set KAFKA_BROKERS'
        : "kafkaBrokers is missing: pass ['host:9092', ...]",
    )
  }
  for (const broker of config.kafkaBrokers) {
    if (!/^[^\s:/]+:\d{1,5}$/.test(broker))
      throw new OutboxConfigError(`${name('kafkaBrokers')} has "${broker}": use host:port, comma-separated`)
  }
  for (const key of ['slot', 'publication'] as const) {
    if (!IDENTIFIER.test(config[key]))
      throw new OutboxConfigError(`${name(key)} "${config[key]}" must be a plain identifier (letters, digits, _)`)
  }
  if (!/^[a-z0-9_]{1,63}$/.test(config.slot)) {
    throw new OutboxConfigError(
      `${name('slot')} "${config.slot}": PostgreSQL slot names use lower-case letters, digits and _ only`,
    )
  }
  if (!config.table.split('.').every((part) => IDENTIFIER.test(part)) || config.table.split('.').length > 2) {
    throw new OutboxConfigError(`${name('table')} "${config.table}" must be a table name like outbox or schema.outbox`)
  }
  checkTemplate(name('topicTemplate'), config.topicTemplate, { aggregateType: 'x', type: 'x' })
  checkTemplate(name('dlqTopicTemplate'), config.dlqTopicTemplate, { topic: 'x' })
  oneOf(name('onPoison'), config.onPoison, ['dlq', 'stop'])
  if (defined.batchSize === undefined && config.delivery === 'exactly-once') config.batchSize = EXACTLY_ONCE_BATCH_SIZE
  if (defined.bufferEvents === undefined && config.delivery === 'exactly-once')
    config.bufferEvents = EXACTLY_ONCE_BUFFER_EVENTS
  if (defined.bufferBytes === undefined && config.delivery === 'exactly-once')
    config.bufferBytes = EXACTLY_ONCE_BUFFER_BYTES
  oneOf(name('kafkaClient'), config.kafkaClient, ['kafkajs', 'platformatic'])
  oneOf(name('delivery'), config.delivery, ['at-least-once', 'exactly-once'])
  const deliveryProblem = exactlyOnceProblem(config, name)
  if (deliveryProblem) throw new OutboxConfigError(deliveryProblem)
  oneOf(name('onSlotLost'), config.onSlotLost, ['recreate', 'stop'])
  oneOf(name('snapshot'), config.snapshot, ['initial', 'never'])
  oneOf(name('logLevel'), config.logLevel, ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
  oneOf(name('logFormat'), config.logFormat, ['auto', 'json', 'pretty'])
  if (config.kafkaSaslMechanism !== undefined) {
    // Kafka spells them PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; kafkajs wants lower case.
    const given = String(config.kafkaSaslMechanism)
    const mechanism = given.toLowerCase()
    if (mechanism !== 'plain' && mechanism !== 'scram-sha-256' && mechanism !== 'scram-sha-512') {
      throw new OutboxConfigError(
        `${name('kafkaSaslMechanism')} must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; got "${given}"`,
      )
    }
    config.kafkaSaslMechanism = mechanism
    if (!config.kafkaSaslUsername || !config.kafkaSaslPassword) {
      throw new OutboxConfigError(
        `${name('kafkaSaslMechanism')} is set: also give the user name (${howToGive('kafkaSaslUsername')}) and the password (${howToGive('kafkaSaslPassword')})`,
      )
    }
  }
  for (const key of POSITIVE) {
    const value = config[key] as number
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new OutboxConfigError(`${name(key)} must be a positive whole number, got ${value}`)
  }
  // A healthy loop goes this long between signs of progress (a status update, a standby check, a
  // retry): a liveness bound at or below it would restart healthy workers.
  const step = Math.max(config.statusIntervalMs, config.standbyPollMs, config.retryMaxMs)
  // Unset, it grows with a loop given longer steps (a standby polling every few minutes).
  if (defined.livenessTimeoutMs === undefined) config.livenessTimeoutMs = Math.max(config.livenessTimeoutMs, step * 3)
  if (config.livenessTimeoutMs <= step * 2) {
    throw new OutboxConfigError(
      `${name('livenessTimeoutMs')} (${config.livenessTimeoutMs} ms) must be more than twice the longest step of the loop (${step} ms, the largest of ${name('statusIntervalMs')}, ${name('standbyPollMs')} and ${name('retryMaxMs')}): raise it or lower those`,
    )
  }
  if (!Number.isInteger(config.healthPort) || config.healthPort < 0 || config.healthPort > 65535) {
    throw new OutboxConfigError(
      `${name('healthPort')} must be a port number (1-65535), or 0 to turn the health server off; got ${config.healthPort}`,
    )
  }
  return config
}

/**
 * The status interval against the server's wal_sender_timeout, which only the server knows (the
 * worker reads it before each session). The server ends a walsender that has not heard from the
 * worker for wal_sender_timeout, and while reading is paused (a full buffer, Kafka slow) the status
 * updates are all it hears. The interval also shortens the worker's own receive timeout (see
 * receiveTimeout in slot/preparation.ts), which must stay above half of wal_sender_timeout: at most a third
 * keeps both. Refused, not clamped: the worker runs as configured or says why not. undefined
 * when fine, or when the timeout is off (0).
 */
export function statusIntervalProblem(statusIntervalMs: number, walSenderTimeoutMs: number): string | undefined {
  const most = Math.floor(walSenderTimeoutMs / 3)
  if (walSenderTimeoutMs <= 0 || statusIntervalMs <= most) return undefined
  return `--status-interval-ms (OUTBOX_STATUS_INTERVAL_MS) is ${statusIntervalMs} ms, but the server's wal_sender_timeout is ${walSenderTimeoutMs} ms: PostgreSQL would end the replication connection between two status updates while reading is paused, or before this worker notices a dead connection. Set the status interval to at most a third of wal_sender_timeout (${most} ms), or raise wal_sender_timeout`
}

function oneOf(name: string, value: string, allowed: string[]): void {
  if (!allowed.includes(value))
    throw new OutboxConfigError(`${name} must be one of ${allowed.join(', ')}; got "${value}"`)
}

/** A template is valid when it only names known fields and yields a legal topic for plain values. */
function checkTemplate(name: string, template: string, sample: Record<string, string>): void {
  for (const [, field] of template.matchAll(/\{([^}]*)\}/g)) {
    if (!TEMPLATE_FIELDS.has(field as string) || !((field as string) in sample)) {
      throw new OutboxConfigError(
        `${name} "${template}" uses {${field}}; allowed: ${Object.keys(sample)
          .map((f) => `{${f}}`)
          .join(', ')}`,
      )
    }
  }
  const problem = topicNameProblem(applyTemplate(template, sample))
  if (problem) throw new OutboxConfigError(`${name} "${template}" does not make a valid Kafka topic: it ${problem}`)
}
