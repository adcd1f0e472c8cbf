import { expect, test } from 'vitest'
import { replyAgeNow } from '../../worker/slot/publication-watch.js'

test("a slot holder's reply age counts the whole wait for the catalog's answer: a late answer never looks fresher", () => {
  // Asked at 1,000; the answer (age 2 s by the server's clock) arrived 14 s later.
  expect(replyAgeNow(2_000, 1_000, 15_000)).toBe(16_000)
  expect(replyAgeNow(2_000, 1_000, 1_000)).toBe(2_000)
  // No holder's reply known; a clock step backwards adds nothing.
  expect(replyAgeNow(null, 1_000, 15_000)).toBeNull()
  expect(replyAgeNow(-5, 1_000, 900)).toBe(0)
})
