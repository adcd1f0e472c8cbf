import type { ReceivedMessage } from '../helpers/kafka.js'

/**
 * The Kafka record an event must become, from what its writer emitted (the committed row, or in
 * message mode the message). `value` is the payload as PostgreSQL's jsonb prints it, byte for
 * byte; `normalize` fills it in from `payloadJson`. A poison event names its dead-letter topic.
 */
export interface ExpectedRecord {
  topic: string
  key: string
  payloadJson: string
  value?: string
  /** The row's own headers; the worker's (id, type, aggregateType, aggregateId) are added here. */
  headers: Record<string, string>
  type: string
  aggregateType: string
  /** Set for a poison event: the exact dead-letter topic it must reach. */
  deadLetterTopic?: string
  /** A row the worker cannot decode (its columns' text is dead-lettered, not its payload). */
  undecodable?: boolean
}

/**
 * What the writers know for certain: the events whose transaction committed, the ones rolled back
 * on purpose, and the ones whose commit outcome is unknown (the connection broke during COMMIT,
 * e.g. in a PostgreSQL restart). Per aggregate, `version` is the order the database serialized
 * the transactions in (each one increments the aggregate's row under its row lock). `expected`
 * holds, for every event written (whatever became of its transaction), the record it must be.
 */
export class History {
  readonly committed = new Map<string, { aggregate: string; version: number; expectedTopic: 'main' | 'dlq' }>()
  readonly rolledBack = new Set<string>()
  readonly indeterminate = new Set<string>()
  readonly expected = new Map<string, ExpectedRecord>()

  commit(id: string, aggregate: string, version: number, expectedTopic: 'main' | 'dlq' = 'main'): void {
    this.committed.set(id, { aggregate, version, expectedTopic })
  }

  /** Records what event `id` must look like in Kafka. */
  expect(id: string, record: ExpectedRecord): void {
    this.expected.set(id, record)
  }

  /** Fills in each expected value: the payload as jsonb prints it, asked of PostgreSQL itself. */
  async normalize(query: (sql: string, params: unknown[]) => Promise<{ v: string }[]>): Promise<void> {
    const open = [...this.expected.values()].filter((e) => e.value === undefined && !e.undecodable)
    for (let i = 0; i < open.length; i += 5000) {
      const chunk = open.slice(i, i + 5000)
      const rows = await query(
        'SELECT t.j::jsonb::text AS v FROM unnest($1::text[]) WITH ORDINALITY AS t(j, n) ORDER BY t.n',
        [chunk.map((e) => e.payloadJson)],
      )
      chunk.forEach((e, k) => {
        e.value = rows[k]?.v
      })
    }
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
  /**
   * Records that differ from the event they carry (topic, key, value or headers), or that carry
   * no id or an id no writer emitted: each described, the first 10 kept.
   */
  mismatched: number
  mismatches: string[]
  lostIds: string[]
}

/** The worker's headers on a dead letter, besides the event's own. */
const DEAD_LETTER_HEADERS = new Set(['error', 'originalTopic', 'originalTimestamp', 'truncated'])

/** How record `m` differs from what event `e` must become; undefined when it does not. */
export function recordMismatch(m: ReceivedMessage, e: ExpectedRecord): string | undefined {
  const id = m.headers.id
  const own = { ...e.headers, id, type: e.type, aggregateType: e.aggregateType, aggregateId: e.key }
  const where = `${id} on ${m.topic}`
  if (e.deadLetterTopic === undefined) {
    if (m.topic !== e.topic) return `${where}: topic, expected ${e.topic}`
    if (m.key !== e.key) return `${where}: key ${m.key}, expected ${e.key}`
    if (m.value !== e.value) return `${where}: value ${m.value}, expected ${e.value}`
    // The event's time moves to originalTimestamp when a topic refuses it: the only header added.
    const { originalTimestamp: _, ...headers } = m.headers
    if (!sameHeaders(headers, own))
      return `${where}: headers ${JSON.stringify(m.headers)}, expected ${JSON.stringify(own)}`
    return undefined
  }
  if (m.topic !== e.deadLetterTopic) return `${where}: topic, expected the dead-letter topic ${e.deadLetterTopic}`
  const truncated = (m.headers.truncated ?? '').split(',')
  if (!truncated.includes('key') && m.key !== e.key) return `${where}: key ${m.key}, expected ${e.key}`
  if (m.headers.originalTopic !== e.topic)
    return `${where}: originalTopic ${m.headers.originalTopic}, expected ${e.topic}`
  if (!m.headers.error) return `${where}: a dead letter without its error`
  for (const name of ['id', 'type', 'aggregateType', 'aggregateId'] as const)
    if (!truncated.includes('key') && m.headers[name] !== own[name])
      return `${where}: header ${name} ${m.headers[name]}`
  if (e.undecodable) return undefined
  if (!truncated.includes('value') && m.value !== e.value) return `${where}: value ${m.value}, expected ${e.value}`
  if (!truncated.includes('headers')) {
    const headers = Object.fromEntries(Object.entries(m.headers).filter(([name]) => !DEAD_LETTER_HEADERS.has(name)))
    if (!sameHeaders(headers, own))
      return `${where}: headers ${JSON.stringify(m.headers)}, expected ${JSON.stringify(own)}`
  }
  return undefined
}

function sameHeaders(a: Record<string, string | undefined>, b: Record<string, string | undefined>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  return [...keys].every((k) => a[k] === b[k])
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
  const mismatches: string[] = []
  for (const m of messages) {
    const id = m.headers.id
    if (id === undefined) {
      mismatches.push(`a record without an id header on ${m.topic} (offset ${m.offset})`)
      continue
    }
    const expectedRecord = history.expected.get(id)
    const mismatch = expectedRecord ? recordMismatch(m, expectedRecord) : `${id} on ${m.topic}: an id no writer emitted`
    if (mismatch) mismatches.push(mismatch)
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
    mismatched: mismatches.length,
    mismatches: mismatches.slice(0, 10),
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
