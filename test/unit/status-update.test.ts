import { expect, test } from 'vitest'
import { standbyStatusUpdate } from '../../worker/stream/status-update.js'

test("a standby status update confirms the LSN as written, flushed and applied, stamped with this clock's time in µs since 2000", () => {
  const sentAt = Date.UTC(2026, 11, 6, 3, 45, 12, 345)
  const message = standbyStatusUpdate(0x1_6b37_4d48n, sentAt, true)
  expect(message).toHaveLength(34)
  expect(message.toString('latin1', 0, 1)).toBe('r')
  for (const offset of [1, 9, 17]) expect(message.readBigUInt64BE(offset)).toBe(0x1_6b37_4d48n)
  const microsSince2000 = message.readBigInt64BE(25)
  expect(Number(microsSince2000 / 1000n) + Date.UTC(2000, 0, 1)).toBe(sentAt)
  expect(microsSince2000 % 1000n).toBe(0n)
  expect(message.readUInt8(33)).toBe(1)
  expect(standbyStatusUpdate(1n, sentAt, false).readUInt8(33)).toBe(0)
})
