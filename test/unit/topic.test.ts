import { describe, expect, test } from 'vitest'
import { topicNameProblem } from '../../src/index.js'

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
