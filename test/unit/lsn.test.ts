import { describe, expect, test } from 'vitest'
import { formatLsn, parseLsn } from '../../worker/stream/lsn.js'
import { LsnTracker, type TrackedTransaction } from '../../worker/stream/lsn-tracker.js'

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
  /** One transaction with `records` records, committed at `endLsn`; returns its handle. */
  function transaction(tracker: LsnTracker, records: number, endLsn: bigint, commitTime = 0) {
    tracker.begin(commitTime)
    let handle: TrackedTransaction | undefined
    for (let i = 0; i < records; i++) handle = tracker.addRecord()
    tracker.commit(endLsn)
    return handle as TrackedTransaction
  }

  test('a later transaction acknowledged first does not move the safe LSN past an earlier one', () => {
    const tracker = new LsnTracker(100n)
    const t1 = transaction(tracker, 1, 200n)
    const t2 = transaction(tracker, 1, 300n)
    tracker.acknowledge(t2)
    expect(tracker.safeLsn).toBe(100n)
    tracker.acknowledge(t1)
    expect(tracker.safeLsn).toBe(300n)
  })

  test('a transaction is not safe before its commit arrives, even if all its records are acknowledged', () => {
    const tracker = new LsnTracker(0n)
    tracker.begin(0)
    const t = tracker.addRecord()
    tracker.addRecord()
    tracker.acknowledge(t, 2)
    expect(tracker.safeLsn).toBe(0n)
    tracker.commit(500n)
    expect(tracker.safeLsn).toBe(500n)
  })

  test('transactions without outbox rows advance the watermark once everything before them is done', () => {
    const tracker = new LsnTracker(0n)
    const t1 = transaction(tracker, 1, 100n, 10)
    transaction(tracker, 0, 150n, 20)
    expect(tracker.safeLsn).toBe(0n)
    tracker.acknowledge(t1)
    expect(tracker.safeLsn).toBe(150n)
    expect(tracker.deliveredBefore).toBe(20)
  })

  test('unrelated transactions take no memory: one buffered event and 50,000 others keep one entry', () => {
    const tracker = new LsnTracker(0n)
    const t = transaction(tracker, 1, 10n)
    for (let i = 0; i < 50_000; i++) transaction(tracker, 0, BigInt(100 + i))
    expect(tracker.pending).toBe(1)
    expect(tracker.safeLsn).toBe(0n)
    tracker.acknowledge(t)
    expect(tracker.safeLsn).toBe(BigInt(100 + 49_999))
  })

  test('a keepalive advances the position only when nothing is pending and no transaction is open, never backwards', () => {
    const tracker = new LsnTracker(1000n)
    tracker.keepalive(900n)
    expect(tracker.safeLsn).toBe(1000n)
    // A keepalive inside a transaction may carry a walEnd past that transaction's commit: its
    // records (if any come) are not delivered yet, so it must not confirm.
    tracker.begin(7)
    tracker.keepalive(5000n)
    expect(tracker.safeLsn).toBe(1000n)
    const t = tracker.addRecord()
    tracker.commit(1200n)
    tracker.keepalive(5000n)
    expect(tracker.safeLsn).toBe(1000n)
    tracker.acknowledge(t)
    expect(tracker.safeLsn).toBe(1200n)
    tracker.keepalive(5000n)
    expect(tracker.safeLsn).toBe(5000n)
    // Delivered-before is a commit time; a keepalive's position says nothing about time.
    expect(tracker.deliveredBefore).toBe(7)
  })

  test('acknowledging more than was sent is a bug, not silently ignored', () => {
    const tracker = new LsnTracker(0n)
    const t = transaction(tracker, 1, 10n)
    tracker.acknowledge(t)
    expect(() => tracker.acknowledge(t)).toThrow()
  })
})
