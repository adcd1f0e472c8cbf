/** What the worker does with each state of its slot, and how `republish --since` reads its value. */
import { describe, expect, test } from 'vitest'
import { parseSince } from '../../worker/slot/republish.js'
import { type SlotState, slotAction } from '../../worker/slot/slot-state.js'

const slot = 'prisma_outbox'
const at = (state: SlotState, options: Partial<Parameters<typeof slotAction>[1]> = {}) =>
  slotAction(state, { slot, known: false, mayCreate: true, onSlotLost: 'stop', ...options })

describe('slotAction', () => {
  test('a missing slot is created on the first start, and only once Kafka answered (mayCreate)', () => {
    expect(at({ kind: 'missing' })).toBe('create')
    expect(at({ kind: 'missing' }, { mayCreate: false })).toBe('later')
  })

  test('a slot missing after this process saw it was lost: exit 3, or re-created with recreate', () => {
    expect(() => at({ kind: 'missing' }, { known: true })).toThrow(/was dropped while this worker used it/)
    expect(at({ kind: 'missing' }, { known: true, onSlotLost: 'recreate' })).toBe('recreate')
  })

  test('an invalidated slot: exit 3 with the reason, or re-created with recreate', () => {
    const lost: SlotState = { kind: 'invalidated', reason: 'wal_removed: x' }
    expect(() => at(lost)).toThrow(/"prisma_outbox" was invalidated \(wal_removed: x\).*--on-slot-lost recreate/)
    expect(at(lost, { onSlotLost: 'recreate' })).toBe('recreate')
  })

  test("another database's slot is an error naming --slot, whatever --on-slot-lost says", () => {
    const other: SlotState = { kind: 'other-database', database: 'app', ours: 'App2', active: true }
    expect(() => at(other, { onSlotLost: 'recreate' })).toThrow(
      /is in use by a worker of database "app", not "App2".*--slot \(OUTBOX_SLOT\), e\.g\. --slot prisma_outbox_app2/,
    )
  })
})

describe('parseSince', () => {
  test('an event id, a time with its zone, a date', () => {
    expect(parseSince('0192F0E0-0000-7000-8000-000000000000')).toEqual({
      fromId: '0192f0e0-0000-7000-8000-000000000000',
    })
    expect(parseSince('2026-11-20T10:00:00+01:00')).toEqual({ since: new Date('2026-11-20T09:00:00Z') })
    expect(parseSince('2026-11-20')).toEqual({ since: new Date('2026-11-20T00:00:00Z') })
  })

  test('missing, zoneless or garbage: an error naming --since with an example', () => {
    expect(() => parseSince(undefined)).toThrow(/republish needs --since <time\|id>/)
    expect(() => parseSince('2026-11-20T10:00')).toThrow(/neither an event id .* nor a time with its zone/)
    expect(() => parseSince('yesterday')).toThrow(/--since "yesterday"/)
  })
})
