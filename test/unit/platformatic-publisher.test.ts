/**
 * @platformatic/kafka's errors, built as the library builds them, classified as the relay must
 * classify kafkajs's: poison splitting, missing topics and fatal configuration depend on it.
 * (Where it places keys: key-hash.test.ts.)
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AuthenticationError,
  MultipleErrors,
  NetworkError,
  ResponseError,
  TimeoutError,
  UserError,
} from '@platformatic/kafka'
import { describe, expect, test } from 'vitest'
import {
  platformaticClientOptions,
  platformaticMessage,
  producerOptions,
} from '../../worker/delivery/platformatic-publisher.js'
import { classifyPublishError } from '../../worker/delivery/publisher.js'
import { resolveConfig } from '../../worker/operations/config.js'

/** The error a Produce (API 0) response carries for one partition with this Kafka error code. */
const produceError = (code: number) =>
  new ResponseError(0, 9, { '/responses/0/partitions/0': [code, 'from the broker'] }, {})
/** What the library's retry loop hands back after `attempts` failures of the same kind. */
const afterRetries = (error: Error, attempts = 4) =>
  new MultipleErrors(
    `produce failed ${attempts} times.`,
    Array.from({ length: attempts }, () => error),
  )
/** A connection whose SASL step failed, as the library's Connection reports it. */
const saslFailure = (api: number, code: number) =>
  new NetworkError('Connection to localhost:9092 failed.', {
    cause: new AuthenticationError('SASL authentication failed.', {
      cause: new ResponseError(api, 2, { '': [code, 'Authentication failed'] }, {}),
    }),
  })

describe('classifyPublishError on @platformatic/kafka errors', () => {
  test.each([
    ['MESSAGE_TOO_LARGE in a produce response', produceError(10), 'refused', 'MESSAGE_TOO_LARGE'],
    ['RECORD_LIST_TOO_LARGE in a produce response', produceError(18), 'refused', 'RECORD_LIST_TOO_LARGE'],
    ['INVALID_RECORD in a produce response', produceError(87), 'refused', 'INVALID_RECORD'],
    ['INVALID_TIMESTAMP in a produce response', produceError(32), 'timestamp', 'INVALID_TIMESTAMP'],
    ['INVALID_TOPIC_EXCEPTION after retries', afterRetries(produceError(17)), 'refused', 'INVALID_TOPIC_EXCEPTION'],
    ['UNKNOWN_TOPIC_OR_PARTITION after retries', afterRetries(produceError(3)), 'topic', 'UNKNOWN_TOPIC_OR_PARTITION'],
    ['TOPIC_AUTHORIZATION_FAILED', produceError(29), 'topic', 'TOPIC_AUTHORIZATION_FAILED'],
    [
      'CLUSTER_AUTHORIZATION_FAILED (InitProducerId)',
      afterRetries(produceError(31), 1),
      'fatal',
      'CLUSTER_AUTHORIZATION_FAILED',
    ],
    ['a wrong SASL password', saslFailure(36, 58), 'fatal', 'SASL_AUTHENTICATION_FAILED'],
    ['a SASL mechanism the broker does not offer', saslFailure(17, 33), 'fatal', 'UNSUPPORTED_SASL_MECHANISM'],
  ])('%s is %s', (_, error, kind, type) => {
    expect(classifyPublishError(error)).toEqual({ kind, type })
  })

  test.each([
    ['a reset connection', new NetworkError('Connection closed')],
    ['a request timeout', new TimeoutError('Request timed out')],
    ['a leader change after retries', afterRetries(produceError(6))],
    ['NOT_ENOUGH_REPLICAS', produceError(19)],
    // The library reports a topic missing from metadata without its Kafka code; the relay then
    // asks metadata itself which topics exist (topic-availability.ts), as for any retriable error.
    ['"Unknown topic" from the metadata step', new UserError('Unknown topic orders.')],
  ])('%s is retriable', (_, error) => {
    expect(classifyPublishError(error).kind).toBe('retriable')
  })
})

describe('records as the library gets them', () => {
  const options = () =>
    producerOptions(
      platformaticClientOptions(resolveConfig({ databaseUrl: 'postgresql://u:p@db/app', kafkaBrokers: 'k:9092' })),
    )

  test('header names serialize to their UTF-8 bytes, the short ones made once and not in a shared pool', () => {
    const headerKey = options().serializers?.headerKey
    if (!headerKey) throw new Error('no header name serializer')
    const names = [
      'id',
      'aggregateType',
      '',
      'naïve-Ä-東京-🚚',
      'lone-\ud800-surrogate',
      'x'.repeat(64),
      'y'.repeat(65),
    ]
    for (const name of names) expect(headerKey(name), name).toEqual(Buffer.from(name, 'utf8'))
    const short = headerKey('aggregateType') as Buffer
    // The same bytes for every record, in memory of their own: a kept slice of Node's 8 KiB pool
    // would keep the whole pool alive.
    expect(headerKey('aggregateType')).toBe(short)
    expect(short.byteOffset).toBe(0)
    expect(short.buffer.byteLength).toBe(short.length)
    // A long name (an odd raw-SQL row) is not kept.
    expect(headerKey('y'.repeat(65))).not.toBe(headerKey('y'.repeat(65)))
    expect(headerKey(undefined)).toBeUndefined()
  })

  test("a record's headers go as a Map of its own headers, in their order", () => {
    const record = {
      topic: 't',
      key: 'k',
      value: '{}',
      headers: { tenant: 'a', '1': 'one', id: 'e1', type: 'order.created' },
      timestamp: '1700000000000',
    }
    const message = platformaticMessage(record)
    expect([...(message.headers as Map<string, string>)]).toEqual(Object.entries(record.headers))
    expect(message.timestamp).toBe(1_700_000_000_000n)
  })
})

describe('connection options', () => {
  const config = (over: Record<string, unknown>) =>
    resolveConfig({ databaseUrl: 'postgresql://u:p@db/app', kafkaBrokers: 'kafka-1:9093', ...over })

  test('client id, SASL in Kafka spelling, TLS with the CA file and host names checked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-ca-'))
    writeFileSync(join(dir, 'ca.pem'), 'CA PEM')
    const options = platformaticClientOptions(
      config({
        kafkaClientId: 'billing',
        kafkaSsl: true,
        kafkaSslCaFile: join(dir, 'ca.pem'),
        kafkaSaslMechanism: 'SCRAM-SHA-512',
        kafkaSaslUsername: 'relay',
        kafkaSaslPassword: 'pw',
      }),
    )
    expect(options).toMatchObject({
      clientId: 'billing',
      bootstrapBrokers: ['kafka-1:9093'],
      tls: { ca: ['CA PEM'] },
      tlsServerName: true,
      sasl: { mechanism: 'SCRAM-SHA-512', username: 'relay', password: 'pw' },
    })
    rmSync(dir, { recursive: true })
  })

  test('plain connections by default; brokers given by address get no server name', () => {
    expect(platformaticClientOptions(config({}))).not.toHaveProperty('tls')
    expect(platformaticClientOptions(config({}))).not.toHaveProperty('sasl')
    const byAddress = platformaticClientOptions(config({ kafkaBrokers: '10.0.0.5:9093', kafkaSsl: true }))
    expect(byAddress).toMatchObject({ tls: {} })
    expect(byAddress).not.toHaveProperty('tlsServerName')
  })
})
