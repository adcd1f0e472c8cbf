import { describe, expect, test } from 'vitest'
import { TopicAvailability } from '../../worker/delivery/topic-availability.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import type { Logger } from '../../worker/operations/logger.js'
import { createMetrics, type Metrics } from '../../worker/operations/metrics.js'

const config: WorkerConfig = { ...DEFAULTS, databaseUrl: 'postgresql://x@h/db', kafkaBrokers: ['k:9092'] }

function recordingLogger(lines: string[]): Logger {
  const logger: Logger = {
    debug: () => {},
    info: (_, message) => lines.push(message),
    warn: (_, message) => lines.push(message),
    error: (_, message) => lines.push(message),
    child: () => logger,
  }
  return logger
}

async function gauged(metrics: Metrics): Promise<string[]> {
  const { values } = await metrics.topicUnavailable.get()
  return values.filter((v) => v.value === 1).map((v) => String(v.labels.topic))
}

describe('which topics cannot be written', () => {
  test('a log line promises what the running delivery does, whatever --delivery says (the snapshot sends at least once)', async () => {
    const lines: string[] = []
    const exactlyOnce = { ...config, delivery: 'exactly-once' as const }
    const missing = { unavailableTopics: async () => ['orders'] }
    await new TopicAvailability('at-least-once', exactlyOnce, missing, createMetrics(), recordingLogger(lines)).check([
      'orders',
    ])
    await new TopicAvailability('exactly-once', exactlyOnce, missing, createMetrics(), recordingLogger(lines)).check([
      'orders',
    ])
    expect(lines[0]).toMatch(
      /grant WRITE and DESCRIBE on it; until then its events wait, then go to the dead-letter topic/,
    )
    expect(lines[1]).toMatch(/grant WRITE and DESCRIBE on it; exactly-once delivery waits until it can/)
  })

  test('a gauge left by an earlier session is cleared once Kafka lists the topic', async () => {
    const metrics = createMetrics()
    let listed = false
    const publisher = { unavailableTopics: async () => (listed ? [] : ['a', 'b']) }
    await new TopicAvailability('exactly-once', config, publisher, metrics, recordingLogger([])).check(['a', 'b'])
    expect(await gauged(metrics)).toEqual(['a', 'b'])
    listed = true
    // The next session's delivery: it never named the topics itself.
    await new TopicAvailability('exactly-once', config, publisher, metrics, recordingLogger([])).check(['a', 'b'])
    expect(await gauged(metrics)).toEqual([])
  })

  test('an answer asked before Kafka acknowledged records for a topic does not mark it missing again', async () => {
    const metrics = createMetrics()
    let answer: (missing: string[]) => void = () => {}
    const publisher = { unavailableTopics: () => new Promise<string[]>((resolve) => (answer = resolve)) }
    const topics = new TopicAvailability('exactly-once', config, publisher, metrics, recordingLogger([]))
    const asking = topics.check(['a'])
    await new Promise((r) => setTimeout(r, 5))
    topics.written(['a'])
    answer(['a'])
    await asking
    expect(topics.blocked).toEqual([])
    expect(await gauged(metrics)).toEqual([])
  })
})
