import { describe, expect, test } from 'vitest'
import { formatLsn, parseLsn } from '../../worker/lsn.js'
import { LsnTracker } from '../../worker/lsn-tracker.js'

describe('LSNs', () => {
  test('compare as 64-bit numbers whatever the padding', () => {
    expect(parseLsn('0/1A2B')).toBe(parseLsn('00000000/00001A2B'))
    // As strings "0/9" > "0/10"; as numbers it is the other way round.
    expect(parseLsn('0/9') < parseLsn('0/10')).toBe(true)
    expect(parseLsn('1/0') > parseLsn('0/FFFFFFFF')).toBe(true)
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n)
  })
  test('round-trip through text', () => {
    for (const text of ['0/0', '0/16B3748', 'FFFFFFFF/FFFFFFFF']) expect(formatLsn(parseLsn(text))).toBe(text)
  })
  test('reject what is not an LSN', () => {
    expect(() => parseLsn('16B3748')).toThrow(/not an LSN/)
    expect(() => parseLsn('0/123456789')).toThrow(/not an LSN/)
  })
})

describe('the confirm rule: a contiguous low-watermark', () => {
  test('a later transaction acknowledged first does not move the safe LSN past an earlier one', () => {
    const tracker = new LsnTracker(100n)
    const t1 = tracker.begin(0)
    tracker.addRecord(t1)
    tracker.commit(t1, 200n)
    const t2 = tracker.begin(0)
    tracker.addRecord(t2)
    tracker.commit(t2, 300n)
    tracker.acknowledge(t2)
    expect(tracker.safeLsn).toBe(100n)
    tracker.acknowledge(t1)
    expect(tracker.safeLsn).toBe(300n)
  })

  test('a transaction is not safe before its commit arrives, even if all its records are acknowledged', () => {
    const tracker = new LsnTracker(0n)
    const t = tracker.begin(0)
    tracker.addRecord(t)
    tracker.addRecord(t)
    tracker.acknowledge(t, 2)
    expect(tracker.safeLsn).toBe(0n)
    tracker.commit(t, 500n)
    expect(tracker.safeLsn).toBe(500n)
  })

  test('transactions without outbox rows advance the watermark once everything before them is done', () => {
    const tracker = new LsnTracker(0n)
    const t1 = tracker.begin(0)
    tracker.addRecord(t1)
    tracker.commit(t1, 100n)
    tracker.commit(tracker.begin(0), 150n)
    expect(tracker.safeLsn).toBe(0n)
    tracker.acknowledge(t1)
    expect(tracker.safeLsn).toBe(150n)
  })

  test('a keepalive advances only when nothing is pending, and never backwards', () => {
    const tracker = new LsnTracker(1000n)
    tracker.keepalive(900n)
    expect(tracker.safeLsn).toBe(1000n)
    const open = tracker.begin(0)
    tracker.keepalive(5000n)
    expect(tracker.safeLsn).toBe(1000n)
    tracker.commit(open, 1200n)
    expect(tracker.safeLsn).toBe(1200n)
    tracker.keepalive(5000n)
    expect(tracker.safeLsn).toBe(5000n)
  })

  test('acknowledging more than was sent is a bug, not silently ignored', () => {
    const tracker = new LsnTracker(0n)
    const t = tracker.begin(0)
    expect(() => tracker.acknowledge(t)).toThrow()
  })
})
