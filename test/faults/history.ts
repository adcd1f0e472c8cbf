import type { ReceivedMessage } from '../helpers/kafka.js'

/**
 * What the writers know for certain: the events whose transaction committed, the ones rolled back
 * on purpose, and the ones whose commit outcome is unknown (the connection broke during COMMIT,
 * e.g. in a PostgreSQL restart). Per aggregate, `version` is the order the database serialized
 * the transactions in (each one increments the aggregate's row under its row lock).
 */
export class History {
  readonly committed = new Map<string, { aggregate: string; version: number; expectedTopic: 'main' | 'dlq' }>()
  readonly rolledBack = new Set<string>()
  readonly indeterminate = new Set<string>()

  commit(id: string, aggregate: string, version: number, expectedTopic: 'main' | 'dlq' = 'main'): void {
    this.committed.set(id, { aggregate, version, expectedTopic })
  }
}

export interface Verdict {
  committed: number
  rolledBack: number
  indeterminate: number
  delivered: number
  lost: number
  /** Rolled-back events that reached Kafka: must be 0 (atomicity). */
  phantoms: number
  duplicates: number
  /** Duplicates whose payload differs from the first delivery: must be 0. */
  inconsistentDuplicates: number
  /** First copies out of commit order per aggregate: what a consumer that drops duplicates sees. */
  outOfOrder: number
  /**
   * Copies of an event that arrive after a later event of its aggregate was delivered for the last
   * time (`E1 E2 E3 E1`): a consumer that applies every copy ends on stale state. Must be 0.
   */
  staleRedeliveries: number
  /** Events that reached the wrong kind of topic (a poison event on the main topic or vice versa). */
  misrouted: number
  lostIds: string[]
}

/** Compares what Kafka holds (main topics and dead-letter topics) with the writers' history. */
export function check(history: History, messages: ReceivedMessage[], isDlq: (topic: string) => boolean): Verdict {
  const first = new Map<string, ReceivedMessage>()
  let duplicates = 0
  let inconsistentDuplicates = 0
  let phantoms = 0
  let misrouted = 0
  let outOfOrder = 0
  const lastVersion = new Map<string, number>()
  for (const m of messages) {
    const id = m.headers.id
    if (id === undefined) continue
    const seen = first.get(id)
    if (seen) {
      duplicates++
      if (seen.value !== m.value || seen.key !== m.key) inconsistentDuplicates++
      continue
    }
    first.set(id, m)
    if (history.rolledBack.has(id)) phantoms++
    const expected = history.committed.get(id)
    if (!expected) continue
    if ((expected.expectedTopic === 'dlq') !== isDlq(m.topic)) misrouted++
    if (expected.expectedTopic === 'main') {
      // Messages arrive per partition in offset order; one aggregate is one key, one partition.
      if ((lastVersion.get(expected.aggregate) ?? 0) > expected.version) outOfOrder++
      lastVersion.set(expected.aggregate, expected.version)
    }
  }
  const lostIds = [...history.committed.keys()].filter((id) => !first.has(id))
  const staleRedeliveries = countStaleRedeliveries(history, messages)
  return {
    committed: history.committed.size,
    rolledBack: history.rolledBack.size,
    indeterminate: history.indeterminate.size,
    delivered: history.committed.size - lostIds.length,
    lost: lostIds.length,
    phantoms,
    duplicates,
    inconsistentDuplicates,
    outOfOrder,
    staleRedeliveries,
    misrouted,
    lostIds: lostIds.slice(0, 10),
  }
}

/**
 * Per aggregate, in the order Kafka holds its messages: once the last copy of an event has been
 * seen, no copy of an earlier event of that aggregate may follow.
 */
function countStaleRedeliveries(history: History, messages: ReceivedMessage[]): number {
  const lastIndex = new Map<string, number>()
  messages.forEach((m, index) => {
    if (m.headers.id !== undefined) lastIndex.set(m.headers.id, index)
  })
  const newestFinal = new Map<string, number>()
  let stale = 0
  messages.forEach((m, index) => {
    const id = m.headers.id
    const expected = id === undefined ? undefined : history.committed.get(id)
    if (!id || !expected || expected.expectedTopic !== 'main') return
    if ((newestFinal.get(expected.aggregate) ?? 0) > expected.version) stale++
    if (lastIndex.get(id) === index)
      newestFinal.set(expected.aggregate, Math.max(newestFinal.get(expected.aggregate) ?? 0, expected.version))
  })
  return stale
}
