/**
 * Review of --delivery exactly-once: unit-level proofs. Each test asserts the behaviour the
 * design promises; a failing test is a finding (see the review report).
 */
import { afterEach, describe, expect, test, vi } from 'vitest'

// A kafkajs stand-in for the checkpoint read only (test "unhandled rejection" below); every
// other test here uses a fake TransactionalPublisher and never reaches kafkajs.
const consumerConnect = vi.hoisted(() => ({ delayMs: 0 }))
vi.mock('kafkajs', () => {
  class Kafka {
    admin() {
      return {
        connect: async () => {},
        disconnect: async () => {},
        listTopics: async () => ['prisma-outbox.checkpoints'],
        fetchTopicOffsets: async () => [{ partition: 0, offset: '5', high: '5', low: '0' }],
      }
    }
    consumer() {
      return {
        events: { END_BATCH_PROCESS: 'consumer.end_batch_process' },
        on: () => () => {},
        // A broker that accepted the connection but answers slowly (kafkajs: 30 s request
        // timeout, retried): connecting takes longer than READ_TIMEOUT_MS.
        connect: () => new Promise<void>((resolve) => setTimeout(resolve, consumerConnect.delayMs)),
        subscribe: async () => {},
        run: async () => {},
        disconnect: async () => {},
      }
    }
    producer() {
      throw new Error('not used here')
    }
  }
  return { Kafka, logLevel: { NOTHING: 0, ERROR: 1, WARN: 2, INFO: 4, DEBUG: 5 } }
})

import type { DeliveryItem } from '../../worker/delivery/delivery.js'
import { parseCheckpoint } from '../../worker/delivery/exactly-once/checkpoint.js'
import { createKafkajsTransactionalPublisher } from '../../worker/delivery/exactly-once/kafkajs-transactional.js'
import { TransactionalDelivery } from '../../worker/delivery/exactly-once/transactional-delivery.js'
import type { TransactionalPublisher } from '../../worker/delivery/exactly-once/transactional-publisher.js'
import { type KafkaRecord, recordBytes } from '../../worker/delivery/records.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { createMetrics } from '../../worker/operations/metrics.js'
import { ReplicationSession } from '../../worker/session.js'
import type { Lsn } from '../../worker/stream/lsn.js'
import { LsnTracker } from '../../worker/stream/lsn-tracker.js'

const config: WorkerConfig = {
  ...DEFAULTS,
  delivery: 'exactly-once',
  databaseUrl: 'postgresql://x@127.0.0.1:1/shop',
  kafkaBrokers: ['127.0.0.1:1'],
}

function record(value: string): KafkaRecord {
  return { topic: 'orders', key: 'k', value, headers: { id: value }, timestamp: '0' }
}

function fakePublisher(checkpoint: Lsn | undefined, connectError?: unknown) {
  const committed: { values: (string | null)[]; checkpoint: Lsn }[] = []
  const publisher: TransactionalPublisher = {
    connect: async () => {
      if (connectError) throw connectError
    },
    readCheckpoint: async () => checkpoint,
    async commitTransaction(chunks, cp) {
      // A Kafka transaction takes a while (AddPartitionsToTxn, produce, EndTxn and markers).
      await new Promise((r) => setTimeout(r, 20))
      committed.push({ values: chunks.flat().map((r) => r.value), checkpoint: parseCheckpoint(cp.value as string, 't') })
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
    const cfg: WorkerConfig = { ...config, bufferEvents }
    const session = new ReplicationSession(
      cfg,
      0n,
      60_000,
      { connect: async () => {}, send: async () => {}, unavailableTopics: async () => [], disconnect: async () => {} },
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
    }
    const fake = fakePublisher(undefined)
    inside.delivery = new TransactionalDelivery(cfg, fake.publisher, createMetrics(), silentLogger, {
      acknowledged: (items) => inside.acknowledged(items),
      deadLettered: () => {},
      ended: () => {},
    })
    const tracker = new LsnTracker(0n)
    let n = 0
    const wal = {
      begin: () => tracker.begin(0),
      insert: () => {
        const r = record(String(n++))
        inside.enqueue({ record: r, bytes: recordBytes(r), transaction: tracker.addRecord() })
      },
      commit: (lsn: bigint) => tracker.commit(lsn),
    }
    return { inside, socket, wal, committed: fake.committed }
  }

  test('a small committed transaction ahead of a large one: reading pauses, and never resumes (the large one can never commit)', async () => {
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
    // ...but T3's COMMIT is still unread, and reading is never resumed: stuck for good.
    const stuck = { paused: socket.paused, resumes: socket.resumes, waitingForCommit: inside.delivery.waitingForCommit }
    await inside.delivery.close()
    await running
    // What the design needs: a paused stream must resume when the head of the queue is a
    // transaction still waiting for its COMMIT, else the COMMIT is never read.
    expect(stuck).toEqual({ paused: false, resumes: 1, waitingForCommit: true })
  })
})

describe('fencing classification', () => {
  test('TRANSACTIONAL_ID_AUTHORIZATION_FAILED (a missing ACL, a setup error) is taken for "fenced": the session ends at once, not fatal, and is retried forever', async () => {
    const fake = fakePublisher(undefined, { type: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', name: 'KafkaJSProtocolError' })
    const ended: unknown[] = []
    const delivery = new TransactionalDelivery({ ...config, retryMaxMs: 5000 }, fake.publisher, createMetrics(), silentLogger, {
      acknowledged: () => {},
      deadLettered: () => {},
      ended: (e) => ended.push(e),
    })
    const tracker = new LsnTracker(0n)
    tracker.begin(0)
    const r = record('a')
    delivery.enqueue({ record: r, bytes: recordBytes(r), transaction: tracker.addRecord() })
    tracker.commit(100n)
    const started = Date.now()
    const outcome = await delivery.run().then(
      () => 'resolved (session ends, worker reconnects)',
      () => 'rejected (fatal: worker exits with a setup error)',
    )
    const elapsed = Date.now() - started
    await delivery.close()
    // Observed: resolved within a few ms, no back-off (fenced skips the retryMaxMs wait), and
    // runLoop resets its failure count on every "streaming", so the reconnect delay stays
    // at retryInitialMs: a hot loop of replication connections, producer inits and group joins.
    expect({ outcome, ended: ended.length, fast: elapsed < 1000 }).toEqual({
      outcome: 'rejected (fatal: worker exits with a setup error)',
      ended: 0,
      fast: true,
    })
  })
})

describe('reading the checkpoint (kafkajs-transactional.ts readLatest)', () => {
  test('a consumer connect slower than READ_TIMEOUT_MS: the read fails as an error of the session, not as an unhandled rejection', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    consumerConnect.delayMs = 61_000
    const unhandled: unknown[] = []
    const saved = process.listeners('unhandledRejection')
    process.removeAllListeners('unhandledRejection')
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const publisher = createKafkajsTransactionalPublisher(config, silentLogger)
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
    // Observed: the 60 s timer rejects `caughtUp` while nothing awaits it (connect/subscribe/run
    // come first): Node's default (--unhandled-rejections=throw) ends the worker process.
    expect(unhandled.map(String)).toEqual([])
  })
})
