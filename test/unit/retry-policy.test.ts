import { expect, test } from 'vitest'
import { retryDelayMs } from '../../worker/retry-policy.js'

const bounds = { retryInitialMs: 200, retryMaxMs: 5_000 }

test('each attempt waits twice as long as the one before, up to the cap, with jitter between half and all of it', () => {
  const least = (attempt: number) => retryDelayMs(bounds, attempt, () => 0)
  const most = (attempt: number) => retryDelayMs(bounds, attempt, () => 1)
  expect([0, 1, 2, 3, 4, 5].map(most)).toEqual([200, 400, 800, 1600, 3200, 5000])
  expect([0, 1, 2, 3, 4, 5].map(least)).toEqual([100, 200, 400, 800, 1600, 2500])
})

test('a very long outage keeps the cap (no overflow to Infinity or NaN)', () => {
  expect(retryDelayMs(bounds, 10_000, () => 1)).toBe(5_000)
})
