import { describe, expect, test } from 'vitest'
import { topicNameProblem } from '../../src/index.js'
import { asTopicName } from '../../src/topic.js'

describe('Kafka topic names', () => {
  test.each(['orders', 'orders.v1', 'a_b-c.D9', 'x'.repeat(249)])('accepts %s', (topic) => {
    expect(topicNameProblem(topic)).toBeUndefined()
  })
  test.each([
    ['', 'is empty'],
    ['.', 'reserves'],
    ['..', 'reserves'],
    ['orders v1', 'characters'],
    ['orders/v1', 'characters'],
    ['ordérs', 'characters'],
    ['x'.repeat(250), '249'],
  ])('rejects %j', (topic, reason) => {
    expect(topicNameProblem(topic)).toContain(reason)
  })
})

describe('a topic name made valid (the dead-letter topic from --dlq-topic-template)', () => {
  test.each([
    ['orders.dlq', 'orders.dlq'],
    ['dlq/orders v1', 'dlq_orders_v1'],
    ['x'.repeat(300), 'x'.repeat(249)],
    ['', 'outbox.dlq'],
    ['..', 'outbox.dlq'],
  ])('%j becomes %j', (name, topic) => {
    expect(asTopicName(name, 'outbox.dlq')).toBe(topic)
    expect(topicNameProblem(topic)).toBeUndefined()
  })
})
