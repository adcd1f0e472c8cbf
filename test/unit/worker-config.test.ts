import { describe, expect, test } from 'vitest'
import { classifyPublishError } from '../../worker/delivery/publisher.js'
import { poisonReason, toDeadLetter, toKafkaRecord } from '../../worker/delivery/records.js'
import { configFrom, parseCommandLine } from '../../worker/operations/args.js'
import {
  DEFAULTS,
  EXACTLY_ONCE_BATCH_SIZE,
  EXACTLY_ONCE_BUFFER_BYTES,
  EXACTLY_ONCE_BUFFER_EVENTS,
  parseDuration,
  resolveConfig,
} from '../../worker/operations/config.js'
import { OutboxConfigError } from '../../worker/operations/errors.js'
import { redact } from '../../worker/operations/redact.js'

const base = { databaseUrl: 'postgresql://u:pw@db:5432/app', kafkaBrokers: 'k1:9092, k2:9092' }

describe('configuration', () => {
  test('fills documented defaults and splits the broker list', () => {
    const config = resolveConfig(base)
    expect(config.kafkaBrokers).toEqual(['k1:9092', 'k2:9092'])
    expect(config).toMatchObject({
      slot: 'prisma_outbox',
      publication: 'prisma_outbox',
      table: 'outbox',
      topicTemplate: '{aggregateType}',
      healthPort: 9464,
    })
    expect(config.maxMessageBytes).toBe(DEFAULTS.maxMessageBytes)
  })
  // createWorker({ ... }): options are named as the caller typed them, by their keys.
  test.each([
    [{ slot: 'Bad-Slot' }, /^slot "Bad-Slot"/],
    [{ table: 'a.b.c' }, /^table "a.b.c"/],
    [{ kafkaBrokers: 'k1' }, /^kafkaBrokers has "k1": use host:port/],
    [{ dlqTopicTemplate: '{aggregateType}.dlq' }, /^dlqTopicTemplate/],
    [{ topicTemplate: 'orders v1' }, /^topicTemplate "orders v1" does not make a valid Kafka topic/],
    [
      { kafkaSaslMechanism: 'plain' as const },
      /also give the user name \(kafkaSaslUsername\) and the password \(kafkaSaslPassword\)/,
    ],
    [{ healthPort: 70000 }, /^healthPort must be a port number/],
    [{ standbyPollMs: 0 }, /^standbyPollMs must be a positive whole number, got 0$/],
  ])('rejects %j', (override, message) => {
    expect(() => resolveConfig({ ...base, ...override })).toThrow(OutboxConfigError)
    expect(() => resolveConfig({ ...base, ...override })).toThrow(message)
  })
  test('durations', () => {
    expect(parseDuration('7d', 'x')).toBe(604_800_000)
    expect(parseDuration('1500', 'x')).toBe(1500)
    expect(() => parseDuration('soon', 'OUTBOX_RETENTION')).toThrow(/OUTBOX_RETENTION must be a duration/)
  })
})

describe('the command line, in the words the user typed', () => {
  const env = { DATABASE_URL: 'postgresql://u@db/app', KAFKA_BROKERS: 'k:9092' }
  const configOf = (argv: string[], vars: Record<string, string> = env) => {
    const { values } = parseCommandLine(argv)
    return configFrom(values, vars, true)
  }

  test('a flag is named as the flag, a variable as the variable', () => {
    expect(() => configOf(['--health-port', '99999'])).toThrow(/^--health-port must be a port number/)
    expect(() => configOf([], { ...env, HEALTH_PORT: '99999' })).toThrow(/^HEALTH_PORT must be a port number/)
    expect(() => configOf(['--batch-size', '0'])).toThrow('--batch-size must be a positive whole number, got 0')
    expect(() => configOf([], { ...env, OUTBOX_BATCH_SIZE: '0' })).toThrow(
      'OUTBOX_BATCH_SIZE must be a positive whole number, got 0',
    )
  })

  test('--kafka-ssl is a switch; KAFKA_SSL and --kafka-ssl=false still take a value', () => {
    expect(configOf(['--kafka-ssl', '--slot', 's1'])).toMatchObject({ kafkaSsl: true, slot: 's1' })
    expect(configOf(['--kafka-ssl=false'], { ...env, KAFKA_SSL: 'true' }).kafkaSsl).toBe(false)
    expect(configOf([], { ...env, KAFKA_SSL: 'yes' }).kafkaSsl).toBe(true)
    expect(configOf([]).kafkaSsl).toBe(false)
  })

  test('SASL mechanisms as Kafka spells them', () => {
    const sasl = { ...env, KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }
    expect(configOf(['--kafka-sasl-mechanism', 'PLAIN'], sasl).kafkaSaslMechanism).toBe('plain')
    expect(configOf([], { ...sasl, KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256' }).kafkaSaslMechanism).toBe('scram-sha-256')
    expect(configOf(['--kafka-sasl-mechanism', 'scram-sha-512'], sasl).kafkaSaslMechanism).toBe('scram-sha-512')
  })

  test('--kafka-client / OUTBOX_KAFKA_CLIENT chooses the client; an unknown one is named as typed', () => {
    expect(configOf([]).kafkaClient).toBe(DEFAULTS.kafkaClient)
    expect(configOf(['--kafka-client', 'platformatic']).kafkaClient).toBe('platformatic')
    expect(configOf([], { ...env, OUTBOX_KAFKA_CLIENT: 'kafkajs' }).kafkaClient).toBe('kafkajs')
    expect(() => configOf(['--kafka-client', 'rdkafka'])).toThrow(
      '--kafka-client must be one of kafkajs, platformatic; got "rdkafka"',
    )
    expect(() => configOf([], { ...env, OUTBOX_KAFKA_CLIENT: 'franz' })).toThrow(
      'OUTBOX_KAFKA_CLIENT must be one of kafkajs, platformatic; got "franz"',
    )
  })

  test('--batch-size, --buffer-events and --buffer-bytes default by delivery: exactly-once keeps larger transactions; a given value wins', () => {
    expect(configOf([]).batchSize).toBe(DEFAULTS.batchSize)
    expect(configOf(['--delivery', 'exactly-once']).batchSize).toBe(EXACTLY_ONCE_BATCH_SIZE)
    expect(EXACTLY_ONCE_BATCH_SIZE).toBeGreaterThan(DEFAULTS.batchSize)
    expect(configOf(['--delivery', 'exactly-once', '--batch-size', '700']).batchSize).toBe(700)
    expect(configOf([]).bufferEvents).toBe(DEFAULTS.bufferEvents)
    expect(configOf(['--delivery', 'exactly-once']).bufferEvents).toBe(EXACTLY_ONCE_BUFFER_EVENTS)
    expect(configOf(['--delivery', 'exactly-once', '--buffer-events', '300']).bufferEvents).toBe(300)
    expect(configOf([]).bufferBytes).toBe(DEFAULTS.bufferBytes)
    expect(configOf(['--delivery', 'exactly-once']).bufferBytes).toBe(EXACTLY_ONCE_BUFFER_BYTES)
    expect(configOf(['--delivery', 'exactly-once', '--buffer-bytes', '1000000']).bufferBytes).toBe(1_000_000)
  })

  test('unknown and incomplete flags get our message and the --help pointer', () => {
    expect(() => parseCommandLine(['--bogus'])).toThrow(/^unknown option --bogus \(see outbox-worker --help\)$/)
    expect(() => parseCommandLine(['--HEALTH_PORT', '1'])).toThrow(/did you mean --health-port\?/)
    expect(() => parseCommandLine(['-x'])).toThrow(/^unknown option -x/)
    expect(() => parseCommandLine(['status', '--slot'])).toThrow(/^--slot needs a value/)
  })

  test('no internal option name leaks from any CLI message', () => {
    const attempts: [string[], Record<string, string>][] = [
      [['--max-message-bytes', '0'], env],
      [[], { ...env, OUTBOX_BUFFER_EVENTS: '0' }],
      [['--retry-initial-ms', '0'], env],
      [['--status-interval-ms', '0'], env],
      [['--kafka-sasl-mechanism', 'plain'], env],
      [['--log-level', 'loud'], env],
      [[], { ...env, OUTBOX_ON_POISON: 'skip' }],
    ]
    for (const [argv, vars] of attempts) {
      let message = ''
      try {
        configOf(argv, vars)
      } catch (error) {
        message = (error as Error).message
      }
      expect(message).not.toBe('')
      expect(message).not.toMatch(/[a-z][A-Z]/) // camelCase: maxMessageBytes, bufferEvents, ...
    }
  })
})

describe('redaction', () => {
  test.each([
    ['postgresql://app:s3cr3t@db:5432/x', 'postgresql://app:***@db:5432/x'],
    ['connect to postgres://u:p%40ss@h/db failed', 'connect to postgres://u:***@h/db failed'],
    ['host=db password=s3cr3t user=app', 'host=db password=*** user=app'],
    ['postgresql://app@db/x', 'postgresql://app@db/x'],
    // Our own hint keeps its placeholder readable.
    [
      'use postgresql://<user>:<password>@<host>:5432/<database>',
      'use postgresql://<user>:<password>@<host>:5432/<database>',
    ],
    ['postgresql://app:<password>x@db/x', 'postgresql://app:***@db/x'],
    // A raw '@' in the password: the userinfo runs to the last '@' before the host.
    ['connect postgres://app:p@ss@db:5432/shop failed', 'connect postgres://app:***@db:5432/shop failed'],
    // A user name with an '@' (user@server, as some hosted PostgreSQL want it).
    ['postgres://app@srv:pw@db/x', 'postgres://app@srv:***@db/x'],
    // A SASL password in a client's options, printed as JSON or by util.inspect.
    ['{"username":"app","password":"pw"}', '{"username":"app","password":"***"}'],
    ["{ username: 'app', password: 'pw' }", "{ username: 'app', password: '***' }"],
  ])('%s', (input, output) => {
    expect(redact(input)).toBe(output)
  })
})

describe('records', () => {
  const row = {
    id: 'e1',
    aggregateType: 'order',
    aggregateId: '42',
    type: 'order.created',
    payload: '{"a": 1}',
    headers: { tenant: 'acme', id: 'spoof' },
    topic: null,
    createdAt: 1_700_000_000_123,
  }

  test('topic from the template, key, value bytes, headers (ours win), timestamp', () => {
    expect(toKafkaRecord(row, 'app.{aggregateType}')).toEqual({
      topic: 'app.order',
      key: '42',
      value: '{"a": 1}',
      headers: { tenant: 'acme', id: 'e1', type: 'order.created', aggregateType: 'order', aggregateId: '42' },
      timestamp: '1700000000123',
    })
    expect(toKafkaRecord({ ...row, topic: 'explicit' }, 'app.{aggregateType}').topic).toBe('explicit')
  })

  test('poison: invalid topic or over the size limit; the dead letter keeps the id and says why', () => {
    const bad = toKafkaRecord({ ...row, topic: 'no spaces allowed' }, '{aggregateType}')
    expect(poisonReason(bad, 1000)).toMatch(/invalid topic/)
    const dead = toDeadLetter(bad, 'invalid topic', '{topic}.dlq', 1000)
    expect(dead).toMatchObject({
      topic: 'no_spaces_allowed.dlq',
      value: '{"a": 1}',
      headers: { id: 'e1', error: 'invalid topic', originalTopic: 'no spaces allowed' },
    })
    const big = toKafkaRecord({ ...row, payload: 'x'.repeat(2000) }, '{aggregateType}')
    expect(poisonReason(big, 1000)).toMatch(/too large/)
    expect(toDeadLetter(big, 'too large', '{topic}.dlq', 1000).value).toBeNull()
  })
})

describe('Kafka error classification (by error type, through the cause chain)', () => {
  test.each([
    [{ type: 'MESSAGE_TOO_LARGE' }, 'refused'],
    [{ name: 'KafkaJSNumberOfRetriesExceeded', cause: { type: 'INVALID_TOPIC_EXCEPTION' } }, 'refused'],
    // A record older (or newer) than the topic accepts: sent again stamped now, not dead-lettered.
    [{ name: 'KafkaJSNonRetriableError', cause: { type: 'INVALID_TIMESTAMP' } }, 'timestamp'],
    // A topic one may not write is a topic problem (wait, then dead-letter), not a crash loop.
    [{ originalError: { type: 'TOPIC_AUTHORIZATION_FAILED' } }, 'topic'],
    [{ type: 'UNKNOWN_TOPIC_OR_PARTITION' }, 'topic'],
    [{ type: 'CLUSTER_AUTHORIZATION_FAILED' }, 'fatal'],
    [{ type: 'NOT_LEADER_FOR_PARTITION' }, 'retriable'],
    [new Error('Connection error: connect ECONNREFUSED'), 'retriable'],
  ])('%j is %s', (error, kind) => {
    expect(classifyPublishError(error).kind).toBe(kind)
  })
})
