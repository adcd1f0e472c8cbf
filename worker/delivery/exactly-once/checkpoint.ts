import type { WorkerConfig } from '../../operations/config.js'
import { formatLsn, type Lsn, parseLsn } from '../../stream/lsn.js'
import type { KafkaRecord } from '../records.js'
import type { ServerIdentity } from './server-identity.js'
import { checkpointTopic, transactionalId } from './settings.js'

/**
 * The exactly-once checkpoint: the end LSN of the commit record of the last PostgreSQL
 * transaction whose events are in a committed Kafka transaction. It is written in the same Kafka
 * transaction as those events, keyed by the transactional id, to a compacted topic: a
 * read_committed reader sees it exactly when it sees the events.
 *
 * The skip rule. pgoutput's COMMIT message carries the commit's end LSN (the position the slot is
 * confirmed to). PostgreSQL streams transactions in commit order, so their end LSNs strictly
 * increase, and Kafka transactions carry whole PostgreSQL transactions in that order, one
 * committed before the next begins. Hence every transaction whose end LSN is at or before the
 * checkpoint is in Kafka already, and every one after it is not: a transaction is skipped
 * exactly when `endLsn <= checkpoint`.
 */
export function alreadyInKafka(endLsn: Lsn, checkpoint: Lsn | undefined): boolean {
  return checkpoint !== undefined && endLsn <= checkpoint
}

/** What the checkpoint record's value holds (JSON, so a person can read it with any consumer). */
interface CheckpointValue {
  /** The end LSN, as PostgreSQL prints it. */
  lsn: string
  slot: string
  /** The PostgreSQL history the LSN belongs to (see ServerIdentity). */
  system: string
  timeline: number
  /** When it was written (ms since the epoch), for people reading the topic. */
  at: number
}

/** A checkpoint as read back; `system` and `timeline` are missing from ones written before they were added. */
export interface Checkpoint {
  lsn: Lsn
  slot: string | undefined
  system: string | undefined
  timeline: number | undefined
}

export function checkpointRecord(config: WorkerConfig, lsn: Lsn, identity: ServerIdentity): KafkaRecord {
  const value: CheckpointValue = {
    lsn: formatLsn(lsn),
    slot: config.slot,
    system: identity.system,
    timeline: identity.timeline,
    at: Date.now(),
  }
  return {
    topic: checkpointTopic(config),
    key: transactionalId(config),
    value: JSON.stringify(value),
    headers: {},
    timestamp: String(value.at),
  }
}

/** A checkpoint record's value; an error naming the topic when it is not one of ours. */
export function parseCheckpoint(value: string, topic: string): Checkpoint {
  try {
    const parsed = JSON.parse(value) as Partial<CheckpointValue>
    if (typeof parsed.lsn === 'string')
      return {
        lsn: parseLsn(parsed.lsn),
        slot: typeof parsed.slot === 'string' ? parsed.slot : undefined,
        system: typeof parsed.system === 'string' ? parsed.system : undefined,
        timeline: typeof parsed.timeline === 'number' ? parsed.timeline : undefined,
      }
  } catch {
    // reported below
  }
  throw new Error(
    `the checkpoint topic "${topic}" holds a record for this worker that is not a checkpoint (${JSON.stringify(value.slice(0, 100))}): is the topic used for something else? Give the worker its own with --checkpoint-topic`,
  )
}

/**
 * The default transactional id: the slot's own identity, so that every worker of the slot shares
 * it (Kafka lets one producer per transactional id commit: a worker taking over fences the one
 * before) however its DATABASE_URL reaches the database (host name or IP, port, parameters,
 * user, a database name left to default). The PostgreSQL system identifier (kept by a promoted
 * standby, so a failover keeps the id and its checkpoint), the slot's database, and the slot.
 */
export function defaultTransactionalId(server: { system: string; database: string }, slot: string): string {
  return `prisma-outbox.${server.system}.${server.database}.${slot}`
}

/**
 * The default of earlier versions, from DATABASE_URL's path (so two spellings of one database
 * could get two ids). Only to find a checkpoint written under it when upgrading.
 */
export function formerDefaultTransactionalId(config: WorkerConfig): string {
  let database = ''
  try {
    database = decodeURIComponent(new URL(config.databaseUrl).pathname.replace(/^\//, ''))
  } catch {
    // resolveConfig has checked the URL
  }
  return `prisma-outbox.${database || 'postgres'}.${config.slot}`
}
