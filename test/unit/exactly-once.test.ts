import { afterEach, describe, expect, test, vi } from 'vitest'

// A kafkajs stand-in for the kafkajs publisher's tests below; every other test here uses a fake
// TransactionalPublisher and never reaches kafkajs.
const consumerConnect = vi.hoisted(() => ({ delayMs: 0 }))
/** Producers made (each initializes the id), and transactions begun; the first one is the init. */
const producers = vi.hoisted(() => ({ made: 0, transactions: 0 }))
vi.mock('kafkajs', async (importOriginal) => {
  class Kafka {
    admin() {
      return {
        connect: async () => {},
        disconnect: async () => {},
        listTopics: async () => [],
        createTopics: async () => true,
        fetchTopicOffsets: async () => [{ partition: 0, offset: '5', high: '5', low: '0' }],
      }
    }
    consumer() {
      return {
        events: { END_BATCH_PROCESS: 'consumer.end_batch_process' },
        on: () => () => {},
        // A broker that accepted the connection but answers slowly (kafkajs: 30 s request
        // timeout, retried): connecting takes longer than READ_STALL_MS.
        connect: () => new Promise<void>((resolve) => setTimeout(resolve, consumerConnect.delayMs)),
        subscribe: async () => {},
        run: async () => {},
        disconnect: async () => {},
      }
    }
    producer() {
      producers.made++
      return {
        connect: async () => {},
        disconnect: async () => {},
        // The init's transaction aborts; every later one fails to send, and then to abort.
        transaction: async () => {
          const init = producers.transactions++ === 0
          return {
            sendBatch: async () => Promise.reject(new Error('connection reset')),
            commit: async () => {},
            abort: async () => (init ? undefined : Promise.reject(new Error('connection reset'))),
          }
        },
      }
    }
  }
  return { ...(await importOriginal<typeof import('kafkajs')>()), Kafka }
})

// The high watermarks of the checkpoint read come from @platformatic/kafka's admin.
vi.mock('@platformatic/kafka', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@platformatic/kafka')>()),
  Admin: class {
    listOffsets = async () => [{ name: 't', partitions: [{ partitionIndex: 0, offset: 5n }] }]
    close = async () => {}
  },
}))

import type { DeliveryItem } from '../../worker/delivery/event-delivery.js'
import {
  alreadyInKafka,
  type Checkpoint,
  checkpointRecord,
  defaultTransactionalId,
  parseCheckpoint,
} from '../../worker/delivery/exactly-once/checkpoint.js'
import { checkCheckpoint } from '../../worker/delivery/exactly-once/checkpoint-check.js'
import { resolveTransactionalId } from '../../worker/delivery/exactly-once/default-id.js'
import { createKafkajsTransactionalPublisher } from '../../worker/delivery/exactly-once/kafkajs-transactional.js'
import type { ServerIdentity } from '../../worker/delivery/exactly-once/server-identity.js'
import { transactionalId } from '../../worker/delivery/exactly-once/settings.js'
import { TransactionalDelivery } from '../../worker/delivery/exactly-once/transactional-delivery.js'
import {
  classifyTransactionError,
  type TransactionalPublisher,
  transactionalIdDenied,
} from '../../worker/delivery/exactly-once/transactional-publisher.js'
import { type KafkaRecord, recordBytes } from '../../worker/delivery/records.js'
import { DEFAULTS, resolveConfig, type WorkerConfig } from '../../worker/operations/config.js'
import { OutboxSetupError } from '../../worker/operations/errors.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { createMetrics } from '../../worker/operations/metrics.js'
import { ReplicationSession } from '../../worker/session.js'
import { type Lsn, parseLsn } from '../../worker/stream/lsn.js'
import { LsnTracker } from '../../worker/stream/lsn-tracker.js'
import { createWorker } from '../../worker/worker.js'

/** As sessions get it: the default transactional id resolved at start (default-id.ts). */
const config: WorkerConfig = {
  ...DEFAULTS,
  delivery: 'exactly-once',
  databaseUrl: 'postgresql://x@h/shop',
  kafkaBrokers: ['k:9092'],
  transactionalId: 'prisma-outbox.7301.shop.prisma_outbox',
}

/** The PostgreSQL the tests' worker streams; checkpoints of `ours` are of this history. */
const server: ServerIdentity = { system: '7301', timeline: 1, walPosition: parseLsn('FF/0') }
const identify = async () => server
const ours = (lsn: Lsn | undefined): Checkpoint | undefined =>
  lsn === undefined ? undefined : { lsn, slot: DEFAULTS.slot, system: server.system, timeline: server.timeline }

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
  test('keyed by the transactional id, in a topic of its own', () => {
    expect(transactionalId({ ...config, transactionalId: 'mine' })).toBe('mine')
    expect(() => transactionalId({ ...config, transactionalId: undefined })).toThrow(/resolved when the worker starts/)
    const record = checkpointRecord(config, parseLsn('A/1B'), server)
    expect(record.topic).toBe('prisma-outbox.7301.shop.prisma_outbox.checkpoint')
    expect(checkpointRecord({ ...config, checkpointTopic: 'cp' }, 1n, server).topic).toBe('cp')
    expect(record.key).toBe('prisma-outbox.7301.shop.prisma_outbox')
    expect(parseCheckpoint(record.value as string, record.topic)).toEqual({
      lsn: parseLsn('A/1B'),
      slot: 'prisma_outbox',
      system: server.system,
      timeline: server.timeline,
    })
  })
  test("the default transactional id is the slot's: the system, its database and the slot, not how DATABASE_URL spells them", () => {
    const shop = { system: '7301', database: 'shop' }
    expect(defaultTransactionalId(shop, 'prisma_outbox')).toBe('prisma-outbox.7301.shop.prisma_outbox')
    expect(defaultTransactionalId(shop, 'other_slot')).not.toBe(defaultTransactionalId(shop, 'prisma_outbox'))
    expect(defaultTransactionalId({ ...shop, system: '7302' }, 'prisma_outbox')).not.toBe(
      defaultTransactionalId(shop, 'prisma_outbox'),
    )
  })
  test('upgrading: a checkpoint of the former default (from DATABASE_URL) stops the start, naming both ids and the choice', async () => {
    const unresolved = { ...config, transactionalId: undefined }
    const shop = { system: '7301', database: 'shop' }
    const topics = new Set(['prisma-outbox.shop.prisma_outbox.checkpoint'])
    const exists = { topicExists: async (topic: string) => topics.has(topic), latest: async () => undefined }
    const error = await resolveTransactionalId(unresolved, shop, exists).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OutboxSetupError)
    expect((error as Error).message).toContain(
      'set --transactional-id (OUTBOX_TRANSACTIONAL_ID) to "prisma-outbox.shop.prisma_outbox" to keep it',
    )
    expect((error as Error).message).toContain(
      'or to "prisma-outbox.7301.shop.prisma_outbox" to start an empty checkpoint',
    )
    // Once the new id has its checkpoint topic, the former one is history.
    topics.add('prisma-outbox.7301.shop.prisma_outbox.checkpoint')
    expect(await resolveTransactionalId(unresolved, shop, exists)).toBe('prisma-outbox.7301.shop.prisma_outbox')
    // A database name no topic may carry: the fix, at start.
    await expect(resolveTransactionalId(unresolved, { ...shop, database: 'my shop' }, exists)).rejects.toThrow(
      /the default checkpoint topic "prisma-outbox\.7301\.my shop\.prisma_outbox\.checkpoint" .* set --checkpoint-topic/,
    )
  })
  test('upgrading with --checkpoint-topic: a checkpoint keyed by the former default in that topic stops the start too', async () => {
    // The topic is the operator's, so it exists either way: what tells is whose key it holds.
    const unresolved = { ...config, transactionalId: undefined, checkpointTopic: 'my.cp' }
    const shop = { system: '7301', database: 'shop' }
    const former = 'prisma-outbox.shop.prisma_outbox'
    const current = 'prisma-outbox.7301.shop.prisma_outbox'
    const keys = new Map([[former, '{"lsn":"0/1"}']])
    const asked: string[] = []
    const kafka = {
      topicExists: async (topic: string) => topic === 'my.cp',
      latest: async (topic: string, key: string) => {
        asked.push(`${topic}/${key}`)
        return keys.get(key)
      },
    }
    const error = await resolveTransactionalId(unresolved, shop, kafka).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OutboxSetupError)
    expect((error as OutboxSetupError).code).toBe('OUTBOX_TRANSACTIONAL_ID_CHANGED')
    expect((error as Error).message).toContain(
      `set --transactional-id (OUTBOX_TRANSACTIONAL_ID) to "${former}" to keep it`,
    )
    expect((error as Error).message).toContain(`or to "${current}" to start an empty checkpoint`)
    expect((error as Error).message).toContain('topic "my.cp"')
    expect(asked).toContain(`my.cp/${former}`)
    // Once the new id has its own checkpoint there, the former one is history.
    keys.set(current, '{"lsn":"0/2"}')
    expect(await resolveTransactionalId(unresolved, shop, kafka)).toBe(current)
    // A fresh install: the topic holds nobody's checkpoint.
    keys.clear()
    expect(await resolveTransactionalId(unresolved, shop, kafka)).toBe(current)
    // Not created yet: nothing to read (reading a missing topic would fail).
    asked.length = 0
    expect(await resolveTransactionalId(unresolved, shop, { ...kafka, topicExists: async () => false })).toBe(current)
    expect(asked).toEqual([])
  })
  test('a record that is not a checkpoint is an error naming the topic and the fix', () => {
    expect(() => parseCheckpoint('hello', 'cp')).toThrow(/checkpoint topic "cp".*--checkpoint-topic/)
  })
})

describe('a checkpoint is used to skip only when it is of this database, slot and history', () => {
  const context = { slot: DEFAULTS.slot, topic: 'cp', transactionalId: 'tx' }
  const lsn = parseLsn('1/0')
  test('of this system, slot and timeline, within the WAL: used', () => {
    expect(checkCheckpoint(ours(lsn), server, context)).toEqual({ skipUpTo: lsn })
    expect(checkCheckpoint(undefined, server, context)).toEqual({ skipUpTo: undefined })
  })
  test('of another slot: the worker stops (exit 3), naming both fixes', () => {
    const other = { ...(ours(lsn) as Checkpoint), slot: 'another_slot' }
    expect(() => checkCheckpoint(other, server, context)).toThrow(
      /written for the slot "another_slot".*new --transactional-id.*remove the key "tx" from the checkpoint topic "cp"/,
    )
    expect(() => checkCheckpoint(other, server, context)).toThrow(OutboxSetupError)
  })
  test('of another PostgreSQL system: the worker stops', () => {
    const other = { ...(ours(lsn) as Checkpoint), system: '9999' }
    expect(() => checkCheckpoint(other, server, context)).toThrow(
      /PostgreSQL system 9999, this database is system 7301/,
    )
  })
  test('ahead of the server WAL (a restored backup, a promoted standby that lacks WAL): the worker stops', () => {
    expect(() => checkCheckpoint(ours(parseLsn('FF/1')), server, context)).toThrow(
      /at FF\/1, ahead of this server's WAL \(FF\/0\)/,
    )
  })
  test('of another timeline: not used to skip (at-least-once this time), with the reason', () => {
    const use = checkCheckpoint({ ...(ours(lsn) as Checkpoint), timeline: 2 }, server, context)
    expect(use).toEqual({
      skipUpTo: undefined,
      ignored: expect.stringMatching(/timeline 2, the server is on timeline 1/),
    })
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
  test('exactly-once uses the default client (platformatic) unless another is chosen', () => {
    expect(resolveConfig(base).kafkaClient).toBe('platformatic')
    expect(resolveConfig({ ...base, delivery: 'exactly-once' }).kafkaClient).toBe('platformatic')
    expect(resolveConfig({ ...base, delivery: 'exactly-once', kafkaClient: 'kafkajs' }).kafkaClient).toBe('kafkajs')
  })
})

test('fenced, in the error types and codes Kafka uses; a missing ACL is not fencing', () => {
  expect(classifyTransactionError({ type: 'INVALID_PRODUCER_EPOCH' }).kind).toBe('fenced')
  expect(classifyTransactionError({ name: 'x', originalError: { code: 90 } }).kind).toBe('fenced')
  expect(classifyTransactionError({ type: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED' }).kind).not.toBe('fenced')
  expect(classifyTransactionError({ type: 'MESSAGE_TOO_LARGE' }).kind).toBe('refused')
  expect(classifyTransactionError(new Error('socket hang up')).kind).toBe('retriable')
})

test('a createPublisher given with exactly-once delivery is refused at creation, not silently left unused', () => {
  const publisher = () => ({
    connect: async () => {},
    send: async () => {},
    unavailableTopics: async () => [],
    disconnect: async () => {},
  })
  const options = {
    databaseUrl: 'postgresql://x@127.0.0.1:1/db',
    kafkaBrokers: ['k:9092'],
    kafkaClient: 'kafkajs' as const,
  }
  expect(() => createWorker({ ...options, delivery: 'exactly-once', createPublisher: publisher })).toThrow(
    /createPublisher replaces the at-least-once publisher, but delivery is exactly-once.*remove createPublisher/,
  )
  expect(() => createWorker({ ...options, createPublisher: publisher })).not.toThrow()
})

test('fencing and a denied transactional id are found wherever the client nests them, errors[] included', () => {
  // @platformatic/kafka reports a multi-broker request's failures in errors[], under a generic error.
  const nested = (inner: object) => ({ message: 'send failed', errors: [new Error('other broker'), { cause: inner }] })
  expect(classifyTransactionError(nested({ type: 'PRODUCER_FENCED' })).kind).toBe('fenced')
  expect(transactionalIdDenied(nested({ code: 53 }))).toBe(true)
  expect(transactionalIdDenied(nested({ code: 47 }))).toBe(false)
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
    readCheckpoint: async () => ours(checkpoint),
    async commitTransaction(chunks, record) {
      if (fail) throw fail
      if (chunks.flat().some(refuse)) throw { type: 'MESSAGE_TOO_LARGE' }
      committed.push({
        values: chunks.flat().map((r) => r.value),
        checkpoint: parseCheckpoint(record.value as string, 't').lsn,
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
  const delivery = new TransactionalDelivery(
    { ...config, ...overrides },
    publisher,
    createMetrics(),
    silentLogger,
    {
      acknowledged: (batch) => acknowledged.push(...batch),
      deadLettered: (info) => deadLettered.push(info.id),
      ended: (error) => ended.push(error),
    },
    identify,
  )
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

  test('the dead-letter topic refusing the dead letter too stops the worker, with the same words as at-least-once', async () => {
    const fake = fakePublisher(undefined, (r) => r.headers.id === '0.2')
    const acknowledged: DeliveryItem[] = []
    const delivery = new TransactionalDelivery(
      config,
      fake.publisher,
      createMetrics(),
      silentLogger,
      { acknowledged: (batch) => acknowledged.push(...batch), deadLettered: () => {}, ended: () => {} },
      identify,
    )
    for (const item of transactions([5])) delivery.enqueue(item)
    await expect(delivery.run()).rejects.toThrow(
      'Kafka refused it: MESSAGE_TOO_LARGE; the dead-letter topic orders.dlq refused it too (MESSAGE_TOO_LARGE)',
    )
    expect(fake.committed).toEqual([])
    expect(acknowledged).toEqual([])
    await delivery.close()
  })

  test('fenced: nothing is acknowledged and the session is ended (the run loop pauses before the next)', async () => {
    const fake = fakePublisher(undefined)
    fake.failWith({ type: 'INVALID_PRODUCER_EPOCH' })
    const { acknowledged, ended } = await deliverAll(transactions([2]), fake.publisher)
    expect(acknowledged).toEqual([])
    expect(ended).toHaveLength(1)
  })
})

const sessionConfig: WorkerConfig = {
  ...DEFAULTS,
  delivery: 'exactly-once',
  databaseUrl: 'postgresql://x@127.0.0.1:1/shop',
  kafkaBrokers: ['127.0.0.1:1'],
  transactionalId: config.transactionalId,
}

function reviewRecord(value: string): KafkaRecord {
  return { topic: 'orders', key: 'k', value, headers: { id: value }, timestamp: '0' }
}

function slowPublisher(checkpoint: Lsn | undefined, connectError?: unknown) {
  const committed: { values: (string | null)[]; checkpoint: Lsn }[] = []
  const publisher: TransactionalPublisher = {
    connect: async () => {
      if (connectError) throw connectError
    },
    readCheckpoint: async () => ours(checkpoint),
    async commitTransaction(chunks, cp) {
      // A Kafka transaction takes a while (AddPartitionsToTxn, produce, EndTxn and markers).
      await new Promise((r) => setTimeout(r, 20))
      committed.push({
        values: chunks.flat().map((r) => r.value),
        checkpoint: parseCheckpoint(cp.value as string, 't').lsn,
      })
    },
    probe: async () => {},
    disconnect: async () => {},
  }
  return { publisher, committed }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('session flow control with exactly-once (worker/session.ts enqueue/acknowledged)', () => {
  /**
   * The stream's messages as pgoutput sends them, each record enqueued through the session as the
   * stream's record hook does (synchronously, in socket order).
   */
  function harness(bufferEvents: number) {
    const cfg: WorkerConfig = { ...sessionConfig, bufferEvents }
    const session = new ReplicationSession(
      cfg,
      0n,
      60_000,
      0n,
      () => ({
        connect: async () => {},
        send: async () => {},
        unavailableTopics: async () => [],
        disconnect: async () => {},
      }),
      createMetrics(),
      silentLogger,
      { streaming: () => {}, published: () => {}, confirmed: () => {}, deadLettered: () => {}, delivered: () => {} },
    )
    const inside = session as unknown as {
      stream: unknown
      delivery: TransactionalDelivery
      paused: boolean
      enqueue(item: DeliveryItem): void
      acknowledged(items: DeliveryItem[]): void
    }
    // The socket: pause/resume are what matter; a paused socket delivers no more messages.
    const socket = { paused: false, pauses: 0, resumes: 0 }
    inside.stream = {
      pause: () => {
        socket.paused = true
        socket.pauses++
      },
      resume: () => {
        socket.paused = false
        socket.resumes++
      },
      acknowledge: () => {},
      confirm: () => {},
      close: async () => {},
      finalStatus: () => {},
    }
    const fake = slowPublisher(undefined)
    inside.delivery = new TransactionalDelivery(
      cfg,
      fake.publisher,
      createMetrics(),
      silentLogger,
      {
        acknowledged: (items) => inside.acknowledged(items),
        deadLettered: () => {},
        ended: () => {},
      },
      identify,
    )
    const tracker = new LsnTracker(0n)
    let n = 0
    const wal = {
      begin: () => tracker.begin(0),
      insert: () => {
        const r = reviewRecord(String(n++))
        inside.enqueue({ record: r, bytes: recordBytes(r), transaction: tracker.addRecord() })
      },
      commit: (lsn: bigint) => tracker.commit(lsn),
    }
    return { session, inside, socket, wal, committed: fake.committed }
  }

  test('a small committed transaction ahead of a large one: reading pauses on the full buffer, then resumes so the large one can be read to its COMMIT', async () => {
    const { inside, socket, wal, committed } = harness(10)
    const running = inside.delivery.run()
    // One socket chunk: T1 (1 event, committed), T2 (1 event, committed), then the start of T3.
    wal.begin()
    wal.insert()
    wal.commit(100n)
    wal.begin()
    wal.insert()
    wal.commit(200n)
    wal.begin()
    for (let i = 0; i < 30 && !socket.paused; i++) wal.insert()
    // The chunk's remaining messages are still handled after pause() (same chunk): a few more rows.
    for (let i = 0; i < 20; i++) wal.insert()
    expect(socket.paused).toBe(true) // paused while T1 was at the head of the queue
    // Delivery sends T1 and T2 and acknowledges them...
    for (let i = 0; i < 100 && committed.length < 2; i++) await new Promise((r) => setTimeout(r, 10))
    expect(committed.flatMap((c) => c.values)).toEqual(['0', '1'])
    await new Promise((r) => setTimeout(r, 300))
    // T3's COMMIT is still unread: reading must have resumed (it was once stuck here for good).
    const stuck = { paused: socket.paused, resumes: socket.resumes, waitingForCommit: inside.delivery.waitingForCommit }
    await inside.delivery.close()
    await running
    // What the design needs: a paused stream must resume when the head of the queue is a
    // transaction still waiting for its COMMIT, else the COMMIT is never read.
    expect(stuck).toEqual({ paused: false, resumes: 1, waitingForCommit: true })
  })

  test('a graceful stop does not wait for the COMMIT of a transaction it will not read: it stops at once, sending nothing of it', async () => {
    const { session, inside, wal, committed } = harness(1000)
    const running = inside.delivery.run()
    wal.begin()
    wal.insert()
    wal.commit(100n)
    wal.begin()
    wal.insert()
    wal.insert()
    const started = Date.now()
    await session.drain(30_000)
    const elapsed = Date.now() - started
    await inside.delivery.close()
    await running
    expect(committed.flatMap((c) => c.values)).toEqual(['0'])
    expect(elapsed).toBeLessThan(10_000)
  })
})

describe('a missing ACL', () => {
  test('TRANSACTIONAL_ID_AUTHORIZATION_FAILED (a missing ACL) stops the worker with a setup error naming the ACLs, instead of reconnecting forever', async () => {
    const fake = slowPublisher(undefined, {
      type: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
      name: 'KafkaJSProtocolError',
    })
    const ended: unknown[] = []
    const delivery = new TransactionalDelivery(
      { ...sessionConfig, retryMaxMs: 5000 },
      fake.publisher,
      createMetrics(),
      silentLogger,
      {
        acknowledged: () => {},
        deadLettered: () => {},
        ended: (e) => ended.push(e),
      },
    )
    const tracker = new LsnTracker(0n)
    tracker.begin(0)
    const r = reviewRecord('a')
    delivery.enqueue({ record: r, bytes: recordBytes(r), transaction: tracker.addRecord() })
    tracker.commit(100n)
    const started = Date.now()
    const outcome = await delivery.run().then(
      () => 'resolved (session ends, worker reconnects)',
      () => 'rejected (fatal: worker exits with a setup error)',
    )
    const elapsed = Date.now() - started
    await delivery.close()
    // Once taken for fencing: resolved within a few ms, and the worker reconnected in a hot loop.
    expect({ outcome, ended: ended.length, fast: elapsed < 1000 }).toEqual({
      outcome: 'rejected (fatal: worker exits with a setup error)',
      ended: 0,
      fast: true,
    })
  })
})

test('after a failure drops the producer, the session ends: the transactional id is never initialized again mid-session (a zombie would fence the new holder)', async () => {
  const publisher = createKafkajsTransactionalPublisher(sessionConfig, silentLogger)
  await publisher.connect()
  expect(producers.made).toBe(1)
  const record = reviewRecord('a')
  await expect(publisher.commitTransaction([[record]], record)).rejects.toThrow(/connection reset/)
  await expect(publisher.commitTransaction([[record]], record)).rejects.toThrow(/dropped after a failure/)
  expect(producers.made).toBe(1)
  await publisher.disconnect()
})

describe('reading the checkpoint (kafkajs-transactional.ts readLatest)', () => {
  test('a consumer connect that stalls longer than READ_STALL_MS: the read fails as an error of the session, not as an unhandled rejection', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    consumerConnect.delayMs = 61_000
    const unhandled: unknown[] = []
    const saved = process.listeners('unhandledRejection')
    process.removeAllListeners('unhandledRejection')
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const publisher = createKafkajsTransactionalPublisher(sessionConfig, silentLogger)
      const reading = publisher.readCheckpoint().then(
        (lsn) => ({ lsn }),
        (error: unknown) => ({ error: String(error) }),
      )
      await vi.advanceTimersByTimeAsync(61_000)
      await reading
      await new Promise((r) => setImmediate(r))
      await new Promise((r) => setImmediate(r))
    } finally {
      process.off('unhandledRejection', onUnhandled)
      for (const listener of saved) process.on('unhandledRejection', listener as never)
    }
    // Once the timer rejected while nothing awaited it, and Node ended the worker process.
    expect(unhandled.map(String)).toEqual([])
  })
})
