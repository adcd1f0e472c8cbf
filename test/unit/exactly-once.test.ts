import { describe, expect, test } from 'vitest'
import type { DeliveryItem } from '../../worker/delivery/delivery.js'
import {
  alreadyInKafka,
  checkpointRecord,
  parseCheckpoint,
  transactionalId,
} from '../../worker/delivery/exactly-once/checkpoint.js'
import { TransactionalDelivery } from '../../worker/delivery/exactly-once/transactional-delivery.js'
import {
  classifyTransactionError,
  type TransactionalPublisher,
} from '../../worker/delivery/exactly-once/transactional-publisher.js'
import { type KafkaRecord, recordBytes } from '../../worker/delivery/records.js'
import { DEFAULTS, resolveConfig, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { createMetrics } from '../../worker/operations/metrics.js'
import { type Lsn, parseLsn } from '../../worker/stream/lsn.js'
import { LsnTracker } from '../../worker/stream/lsn-tracker.js'

const config: WorkerConfig = {
  ...DEFAULTS,
  delivery: 'exactly-once',
  databaseUrl: 'postgresql://x@h/shop',
  kafkaBrokers: ['k:9092'],
}

describe('the skip rule: a transaction is in Kafka when its commit end LSN is at or before the checkpoint', () => {
  const checkpoint = parseLsn('1/2000')
  test('equal: skipped', () => expect(alreadyInKafka(parseLsn('1/2000'), checkpoint)).toBe(true))
  test('just before: skipped', () => expect(alreadyInKafka(parseLsn('1/1FFF'), checkpoint)).toBe(true))
  test('just after: sent', () => expect(alreadyInKafka(parseLsn('1/2001'), checkpoint)).toBe(false))
  test('across the 32-bit boundary, compared as 64-bit numbers', () => {
    expect(alreadyInKafka(parseLsn('0/FFFFFFFF'), parseLsn('1/0'))).toBe(true)
    expect(alreadyInKafka(parseLsn('1/0'), parseLsn('0/FFFFFFFF'))).toBe(false)
  })
  test('no checkpoint: nothing is skipped', () => expect(alreadyInKafka(0n, undefined)).toBe(false))
})

describe('the checkpoint record', () => {
  test('keyed by the transactional id, derived from the database and slot unless given', () => {
    expect(transactionalId(config)).toBe('prisma-outbox.shop.prisma_outbox')
    expect(transactionalId({ ...config, transactionalId: 'mine' })).toBe('mine')
    const record = checkpointRecord(config, parseLsn('A/1B'))
    expect(record.topic).toBe('prisma-outbox.checkpoints')
    expect(record.key).toBe('prisma-outbox.shop.prisma_outbox')
    expect(parseCheckpoint(record.value as string, record.topic)).toBe(parseLsn('A/1B'))
  })
  test('a record that is not a checkpoint is an error naming the topic and the fix', () => {
    expect(() => parseCheckpoint('hello', 'cp')).toThrow(/checkpoint topic "cp".*--checkpoint-topic/)
  })
})

describe('options', () => {
  const base = { databaseUrl: 'postgresql://x@h/db', kafkaBrokers: 'k:9092' }
  test('--delivery takes at-least-once (the default) or exactly-once', () => {
    expect(resolveConfig(base).delivery).toBe('at-least-once')
    expect(() => resolveConfig({ ...base, delivery: 'twice' as never })).toThrow(
      /delivery must be one of at-least-once, exactly-once; got "twice"/,
    )
  })
  test('an invalid checkpoint topic is refused in exactly-once', () => {
    expect(() => resolveConfig({ ...base, delivery: 'exactly-once', checkpointTopic: 'a b' })).toThrow(
      /checkpointTopic "a b" is not a valid Kafka topic name/,
    )
  })
  test('exactly-once uses kafkajs unless a client is chosen; choosing another is refused, naming the fix', () => {
    expect(resolveConfig(base).kafkaClient).toBe('platformatic')
    expect(resolveConfig({ ...base, delivery: 'exactly-once' }).kafkaClient).toBe('kafkajs')
    expect(() => resolveConfig({ ...base, delivery: 'exactly-once', kafkaClient: 'platformatic' })).toThrow(
      /exactly-once needs the kafkajs client for now, but kafkaClient is platformatic: leave it unset or set it to kafkajs/,
    )
  })
})

test('fenced, in the error types and codes Kafka uses', () => {
  expect(classifyTransactionError({ type: 'INVALID_PRODUCER_EPOCH' }).kind).toBe('fenced')
  expect(classifyTransactionError({ name: 'x', originalError: { code: 90 } }).kind).toBe('fenced')
  expect(classifyTransactionError({ type: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED' }).kind).toBe('fenced')
  expect(classifyTransactionError({ type: 'MESSAGE_TOO_LARGE' }).kind).toBe('refused')
  expect(classifyTransactionError(new Error('socket hang up')).kind).toBe('retriable')
})

/** Transactions of `sizes` records each, committed at end LSNs 100, 200, ... */
function transactions(sizes: number[], topic = 'orders'): DeliveryItem[] {
  const tracker = new LsnTracker(0n)
  const items: DeliveryItem[] = []
  sizes.forEach((size, t) => {
    tracker.begin(0)
    for (let i = 0; i < size; i++) {
      const record: KafkaRecord = { topic, key: 'k', value: `${t}.${i}`, headers: { id: `${t}.${i}` }, timestamp: '0' }
      items.push({ record, bytes: recordBytes(record), transaction: tracker.addRecord() })
    }
    tracker.commit(BigInt((t + 1) * 100))
  })
  return items
}

function fakePublisher(checkpoint: Lsn | undefined, refuse: (r: KafkaRecord) => boolean = () => false) {
  const committed: { values: (string | null)[]; checkpoint: Lsn }[] = []
  let fail: unknown
  const publisher: TransactionalPublisher = {
    connect: async () => {},
    readCheckpoint: async () => checkpoint,
    async commitTransaction(chunks, record) {
      if (fail) throw fail
      if (chunks.flat().some(refuse)) throw { type: 'MESSAGE_TOO_LARGE' }
      committed.push({
        values: chunks.flat().map((r) => r.value),
        checkpoint: parseCheckpoint(record.value as string, 't'),
      })
    },
    async probe(records) {
      if (records.some(refuse)) throw { type: 'MESSAGE_TOO_LARGE' }
    },
    disconnect: async () => {},
  }
  return { publisher, committed, failWith: (error: unknown) => (fail = error) }
}

async function deliverAll(
  items: DeliveryItem[],
  publisher: TransactionalPublisher,
  overrides: Partial<WorkerConfig> = {},
) {
  const acknowledged: DeliveryItem[] = []
  const ended: unknown[] = []
  const deadLettered: string[] = []
  const delivery = new TransactionalDelivery({ ...config, ...overrides }, publisher, createMetrics(), silentLogger, {
    acknowledged: (batch) => acknowledged.push(...batch),
    deadLettered: (info) => deadLettered.push(info.id),
    ended: (error) => ended.push(error),
  })
  for (const item of items) delivery.enqueue(item)
  const running = delivery.run()
  for (let i = 0; i < 200 && acknowledged.length < items.length && ended.length === 0; i++)
    await new Promise((r) => setTimeout(r, 5))
  await delivery.close()
  await running
  return { acknowledged, ended, deadLettered }
}

describe('transactional delivery', () => {
  test('Kafka transactions hold whole PostgreSQL transactions, each with the checkpoint of its last', async () => {
    const fake = fakePublisher(undefined)
    const items = transactions([3, 3, 3])
    const { acknowledged } = await deliverAll(items, fake.publisher, { batchSize: 4 })
    expect(acknowledged).toHaveLength(9)
    expect(fake.committed.map((c) => [c.values.length, c.checkpoint])).toEqual([
      [3, 100n],
      [3, 200n],
      [3, 300n],
    ])
  })

  test('a transaction larger than --batch-size goes whole, alone', async () => {
    const fake = fakePublisher(undefined)
    await deliverAll(transactions([2, 7, 1]), fake.publisher, { batchSize: 4 })
    expect(fake.committed.map((c) => c.values.length)).toEqual([2, 7, 1])
  })

  test('transactions at or before the checkpoint are acknowledged without sending', async () => {
    const fake = fakePublisher(200n)
    const { acknowledged } = await deliverAll(transactions([2, 2, 2]), fake.publisher)
    expect(acknowledged).toHaveLength(6)
    expect(fake.committed).toEqual([{ values: ['2.0', '2.1'], checkpoint: 300n }])
  })

  test('a transaction whose COMMIT has not arrived is not sent', async () => {
    const fake = fakePublisher(undefined)
    const items = transactions([2])
    const open = new LsnTracker(0n)
    open.begin(0)
    const record: KafkaRecord = { topic: 'orders', key: 'k', value: 'open', headers: { id: 'open' }, timestamp: '0' }
    items.push({ record, bytes: recordBytes(record), transaction: open.addRecord() })
    const { acknowledged } = await deliverAll(items, fake.publisher)
    expect(acknowledged).toHaveLength(2)
    expect(fake.committed.flatMap((c) => c.values)).toEqual(['0.0', '0.1'])
  })

  test('a record Kafka refuses is found by aborted probes and dead-lettered in the same transaction', async () => {
    const fake = fakePublisher(undefined, (r) => r.value === '0.2' && r.topic === 'orders')
    const { acknowledged, deadLettered } = await deliverAll(transactions([5]), fake.publisher)
    expect(acknowledged).toHaveLength(5)
    expect(deadLettered).toEqual(['0.2'])
    expect(fake.committed).toHaveLength(1)
    expect(fake.committed[0]?.values).toEqual(['0.0', '0.1', '0.2', '0.3', '0.4'])
  })

  test('fenced: nothing is acknowledged and the session is ended', async () => {
    const fake = fakePublisher(undefined)
    fake.failWith({ type: 'INVALID_PRODUCER_EPOCH' })
    const { acknowledged, ended } = await deliverAll(transactions([2]), fake.publisher)
    expect(acknowledged).toEqual([])
    expect(ended).toHaveLength(1)
  })
})
