import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, test } from 'vitest'
import { Delivery } from '../../worker/delivery/delivery.js'
import type { DeliveryItem } from '../../worker/delivery/event-delivery.js'
import type { Publisher } from '../../worker/delivery/publisher.js'
import { type KafkaRecord, recordBytes } from '../../worker/delivery/records.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { createMetrics } from '../../worker/operations/metrics.js'
import { LsnTracker } from '../../worker/stream/lsn-tracker.js'

const config: WorkerConfig = { ...DEFAULTS, databaseUrl: 'postgresql://x@h/db', kafkaBrokers: ['k:9092'] }

function item(topic: string, key: string, bytes: number): DeliveryItem {
  const tracker = new LsnTracker(0n)
  tracker.begin(0)
  const record: KafkaRecord = { topic, key, value: 'x'.repeat(bytes), headers: { id: key }, timestamp: '0' }
  return { record, bytes: recordBytes(record), transaction: tracker.addRecord() }
}

/** A publisher that records each request and lets the test decide when it settles. */
function fakePublisher() {
  const requests: KafkaRecord[][] = []
  let release: (() => void) | undefined
  let hold = false
  const publisher: Publisher = {
    connect: async () => {},
    disconnect: async () => {},
    unavailableTopics: async () => [],
    send: async (records) => {
      requests.push(records)
      if (hold) await new Promise<void>((r) => (release = r))
    },
  }
  return {
    publisher,
    requests,
    holdSends: () => {
      hold = true
    },
    releaseSend: () => release?.(),
  }
}

describe('delivery', () => {
  test('a batch never holds more than --max-message-bytes for one topic (Kafka limits each partition batch)', async () => {
    const fake = fakePublisher()
    const acknowledged: DeliveryItem[] = []
    const delivery = new Delivery(config, fake.publisher, createMetrics(), silentLogger, {
      acknowledged: (items) => acknowledged.push(...items),
      deadLettered: () => {},
    })
    // Queued before the loop runs: one full batch's worth of 1.1 KB events and a few small ones.
    for (let i = 0; i < 10; i++) delivery.enqueue(item('small', `s${i}`, 10))
    for (let i = 0; i < 1000; i++) delivery.enqueue(item('big', `b${i}`, 1100))
    const running = delivery.run()
    while (acknowledged.length < 1010) await new Promise((r) => setTimeout(r, 5))
    await delivery.close()
    await running
    expect(fake.requests.length).toBeGreaterThan(1)
    for (const request of fake.requests) {
      const perTopic = new Map<string, number>()
      for (const r of request) perTopic.set(r.topic, (perTopic.get(r.topic) ?? 0) + recordBytes(r))
      for (const bytes of perTopic.values()) expect(bytes).toBeLessThanOrEqual(config.maxMessageBytes)
    }
    // Each record sent once, in order.
    expect(fake.requests.flat().map((r) => r.key)).toEqual(acknowledged.map((i) => i.record.key))
  })

  test('close() returns only once the send in flight has settled (the next session must not overtake it)', async () => {
    const fake = fakePublisher()
    fake.holdSends()
    const delivery = new Delivery(config, fake.publisher, createMetrics(), silentLogger, {
      acknowledged: () => {},
      deadLettered: () => {},
    })
    const running = delivery.run().catch(() => {})
    delivery.enqueue(item('t', 'k', 10))
    while (fake.requests.length === 0) await new Promise((r) => setTimeout(r, 5))
    let closed = false
    const closing = delivery.close().then(() => {
      closed = true
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(closed).toBe(false)
    fake.releaseSend()
    await closing
    expect(closed).toBe(true)
    await running
  })
})

describe('delivery when a topic cannot be written, and after close', () => {
  const quick: WorkerConfig = { ...config, retryInitialMs: 1, retryMaxMs: 5 }

  test('a topic the worker may see but not write is named, then dead-lettered after the wait', async () => {
    let attempts = 0
    const publisher: Publisher = {
      connect: async () => {},
      disconnect: async () => {},
      // Metadata lists it: DESCRIBE is granted, WRITE is not.
      unavailableTopics: async () => [],
      send: async (records) => {
        if (records.some((r) => r.topic === 'orders')) {
          attempts++
          throw Object.assign(new Error('Not authorized to access topics'), { type: 'TOPIC_AUTHORIZATION_FAILED' })
        }
      },
    }
    const dead: string[] = []
    let blockedWhileWaiting: string[] = []
    const delivery = new Delivery({ ...quick, missingTopicTimeoutMs: 300 }, publisher, createMetrics(), silentLogger, {
      acknowledged: () => {},
      deadLettered: (info) => dead.push(info.id),
    })
    const running = delivery.run()
    delivery.enqueue(item('orders', 'a1', 10))
    await sleep(150)
    blockedWhileWaiting = delivery.blockedTopics
    while (dead.length === 0) await sleep(10)
    expect(blockedWhileWaiting).toEqual(['orders'])
    expect(dead).toEqual(['a1'])
    expect(attempts).toBeGreaterThan(1)
    await delivery.close()
    await running
  })

  test('nothing is sent after close(), even by work that was waiting on Kafka when it was called', async () => {
    let closed = false
    let answerCheck: ((missing: string[]) => void) | undefined
    const lateSends: string[][] = []
    const publisher: Publisher = {
      connect: async () => {},
      disconnect: async () => {},
      // The check of a failing send is answered only after close() returned.
      unavailableTopics: () => new Promise((resolve) => (answerCheck = resolve)),
      send: async (records) => {
        if (closed) lateSends.push(records.map((r) => r.key))
        throw new Error('broker unreachable')
      },
    }
    const delivery = new Delivery(quick, publisher, createMetrics(), silentLogger, {
      acknowledged: () => {},
      deadLettered: () => {},
    })
    const running = delivery.run().catch(() => {})
    delivery.enqueue(item('t', 'k1', 10))
    while (!answerCheck) await sleep(2)
    await delivery.close()
    closed = true
    answerCheck([])
    await sleep(200)
    expect(lateSends).toEqual([])
    await running
  })
})

describe('a publisher that fails in ways no outage does', () => {
  const quick: WorkerConfig = { ...config, retryInitialMs: 1, retryMaxMs: 5 }
  const run = async (send: Publisher['send']) => {
    const acknowledged: string[] = []
    const publisher: Publisher = {
      connect: async () => {},
      disconnect: async () => {},
      unavailableTopics: async () => [],
      send,
    }
    const delivery = new Delivery(quick, publisher, createMetrics(), silentLogger, {
      acknowledged: (items) => acknowledged.push(...items.map((i) => i.record.key)),
      deadLettered: () => {},
    })
    const running = delivery.run().then(
      () => 'resolved',
      (error: unknown) => `rejected: ${String(error)}`,
    )
    delivery.enqueue(item('t', 'k1', 10))
    const outcome = await Promise.race([running, sleep(300).then(() => 'still retrying')])
    await delivery.close()
    return { outcome, acknowledged }
  }

  test('a TypeError (a bug in the publisher) stops the delivery, acknowledging nothing, instead of being retried forever', async () => {
    expect(
      await run(async () => {
        throw new TypeError("Cannot read properties of undefined (reading 'send')")
      }),
    ).toEqual({ outcome: expect.stringMatching(/^rejected: TypeError/), acknowledged: [] })
  })

  test('a send that throws before returning a promise is retried like any failed send, then acknowledged', async () => {
    let calls = 0
    const send = ((records: KafkaRecord[]) => {
      calls++
      if (calls === 1) throw new Error('connection reset')
      return Promise.resolve(records.length > 0 ? undefined : undefined)
    }) as Publisher['send']
    expect(await run(send)).toEqual({ outcome: 'still retrying', acknowledged: ['k1'] })
  })
})

describe('a record whose timestamp its topic refuses (INVALID_TIMESTAMP)', () => {
  const quick: WorkerConfig = { ...config, retryInitialMs: 1, retryMaxMs: 5 }

  test('is sent again in order, stamped at each attempt, its own time (not a row header of that name) kept', async () => {
    const sent: KafkaRecord[][] = []
    const sentAt: number[] = []
    const publisher: Publisher = {
      connect: async () => {},
      disconnect: async () => {},
      unavailableTopics: async () => [],
      send: async (records) => {
        sent.push(records)
        sentAt.push(Date.now())
        if (sent.length === 1) throw Object.assign(new Error('Timestamp out of range'), { type: 'INVALID_TIMESTAMP' })
        // The restamped batch meets an outage first: a retry must not reuse a stamp grown stale.
        if (sent.length <= 3) {
          await new Promise((r) => setTimeout(r, 20))
          throw Object.assign(new Error('Not enough in-sync replicas'), { type: 'NOT_ENOUGH_REPLICAS' })
        }
      },
    }
    const acknowledged: DeliveryItem[] = []
    const delivery = new Delivery(quick, publisher, createMetrics(), silentLogger, {
      acknowledged: (items) => acknowledged.push(...items),
      deadLettered: () => {},
    })
    const first = item('t', 'a', 10)
    first.record.headers.originalTimestamp = '999' // a row's own header of that name
    delivery.enqueue(first)
    delivery.enqueue(item('t', 'b', 10))
    const running = delivery.run()
    while (acknowledged.length < 2) await new Promise((r) => setTimeout(r, 5))
    await delivery.close()
    await running
    expect(sent).toHaveLength(4)
    for (const [attempt, records] of sent.slice(1).entries()) {
      expect(records.map((r) => r.key)).toEqual(['a', 'b'])
      for (const r of records) {
        expect(r.headers.originalTimestamp).toBe('0')
        // Stamped for this attempt: at most a moment before it was sent.
        expect(Number(r.timestamp)).toBeGreaterThanOrEqual((sentAt[attempt + 1] as number) - 15)
      }
    }
    expect(acknowledged.map((i) => i.record.key)).toEqual(['a', 'b'])
  })
})

describe('a batch Kafka refuses (MESSAGE_TOO_LARGE)', () => {
  test('is halved until each refused record is alone: those are dead-lettered, the rest reach Kafka in stream order', async () => {
    const refused = new Set(['a2', 'b3'])
    const sent: KafkaRecord[] = []
    const attempts: string[][] = []
    const publisher: Publisher = {
      connect: async () => {},
      disconnect: async () => {},
      unavailableTopics: async () => [],
      send: async (records) => {
        attempts.push(records.map((r) => r.key as string))
        if (records.some((r) => refused.has(r.key as string) && !r.topic.endsWith('.dlq')))
          throw Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' })
        sent.push(...records)
      },
    }
    const acknowledged: DeliveryItem[] = []
    const deadLettered: string[] = []
    const delivery = new Delivery(config, publisher, createMetrics(), silentLogger, {
      acknowledged: (items) => acknowledged.push(...items),
      deadLettered: ({ id }) => deadLettered.push(id),
    })
    const keys = ['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'a3', 'b3']
    for (const key of keys) delivery.enqueue(item(key.startsWith('a') ? 'ta' : 'tb', key, 10))
    const running = delivery.run()
    while (acknowledged.length < keys.length) await sleep(5)
    await delivery.close()
    await running
    expect(deadLettered).toEqual(['a2', 'b3'])
    // Depth first, the first half before the second: every record reaches Kafka in stream order.
    expect(sent.filter((r) => !r.topic.endsWith('.dlq')).map((r) => r.key)).toEqual(keys.filter((k) => !refused.has(k)))
    expect(attempts.slice(0, 4)).toEqual([keys, keys.slice(0, 4), keys.slice(4), keys.slice(4, 6)])
  })

  test('the dead-letter topic refusing the dead letter too stops the worker, naming the event, both refusals and the topic', async () => {
    const publisher: Publisher = {
      connect: async () => {},
      disconnect: async () => {},
      unavailableTopics: async () => [],
      send: async (records) => {
        if (records.some((r) => r.headers.id === 'b'))
          throw Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' })
      },
    }
    const acknowledged: string[] = []
    const delivery = new Delivery(config, publisher, createMetrics(), silentLogger, {
      acknowledged: (items) => acknowledged.push(...items.map((i) => i.record.headers.id as string)),
      deadLettered: () => {},
    })
    for (const key of ['a', 'b', 'c']) delivery.enqueue(item('orders', key, 10))
    await expect(delivery.run()).rejects.toThrow(
      'Kafka refused it: MESSAGE_TOO_LARGE; the dead-letter topic orders.dlq refused it too (MESSAGE_TOO_LARGE)',
    )
    // Nothing from the poison event on is acknowledged: the slot is never confirmed past it.
    expect(acknowledged).toEqual([])
    await delivery.close()
  })
})
