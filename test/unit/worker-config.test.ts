import { describe, expect, test } from 'vitest'
import { DEFAULTS, parseDuration, resolveConfig } from '../../worker/config.js'
import { OutboxConfigError } from '../../worker/errors.js'
import { classifyPublishError } from '../../worker/publisher.js'
import { poisonReason, toDeadLetter, toKafkaRecord } from '../../worker/records.js'
import { redact } from '../../worker/redact.js'

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
  test.each([
    [{ slot: 'Bad-Slot' }, /OUTBOX_SLOT/],
    [{ table: 'a.b.c' }, /OUTBOX_TABLE/],
    [{ kafkaBrokers: 'k1' }, /host:port/],
    [{ dlqTopicTemplate: '{aggregateType}.dlq' }, /OUTBOX_DLQ_TOPIC/],
    [{ topicTemplate: 'orders v1' }, /valid Kafka topic/],
    [{ kafkaSaslMechanism: 'plain' as const }, /KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/],
    [{ healthPort: 70000 }, /HEALTH_PORT/],
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

describe('redaction', () => {
  test.each([
    ['postgresql://app:s3cr3t@db:5432/x', 'postgresql://app:***@db:5432/x'],
    ['connect to postgres://u:p%40ss@h/db failed', 'connect to postgres://u:***@h/db failed'],
    ['host=db password=s3cr3t user=app', 'host=db password=*** user=app'],
    ['postgresql://app@db/x', 'postgresql://app@db/x'],
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
