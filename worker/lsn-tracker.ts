import type { Lsn } from './lsn.js'

/**
 * One transaction as the stream delivers it. Its records may be published before its commit
 * message arrives (pgoutput v1 only sends transactions that already committed), but it counts as
 * done only once the commit has arrived and every record has been acknowledged by Kafka.
 */
export interface TrackedTransaction {
  /** End LSN of the commit record; known when the commit message arrives. */
  endLsn: Lsn | undefined
  /** Commit time (ms since epoch), for the commit-to-ack latency metric. */
  commitTime: number
  /** Records received and not yet acknowledged. */
  outstanding: number
}

/**
 * The confirm rule (SPEC §4.4). Transactions are kept in stream order; the safe LSN is the end LSN
 * of the last transaction in the longest fully-acknowledged prefix: a contiguous low-watermark,
 * never simply the newest acknowledgement, since batches for later transactions can succeed while
 * an earlier one is still being retried.
 */
export class LsnTracker {
  private readonly transactions: TrackedTransaction[] = []
  private safe: Lsn

  constructor(start: Lsn = 0n) {
    this.safe = start
  }

  /** The LSN up to which PostgreSQL may forget the WAL. */
  get safeLsn(): Lsn {
    return this.safe
  }

  /** Transactions begun and not yet fully acknowledged. */
  get pending(): number {
    return this.transactions.length
  }

  begin(commitTime: number): TrackedTransaction {
    const transaction: TrackedTransaction = { endLsn: undefined, commitTime, outstanding: 0 }
    this.transactions.push(transaction)
    return transaction
  }

  addRecord(transaction: TrackedTransaction): void {
    transaction.outstanding++
  }

  commit(transaction: TrackedTransaction, endLsn: Lsn): void {
    transaction.endLsn = endLsn
    this.advance()
  }

  acknowledge(transaction: TrackedTransaction, count = 1): void {
    transaction.outstanding -= count
    if (transaction.outstanding < 0) throw new Error('acknowledged more records than the transaction has')
    this.advance()
  }

  /**
   * A keepalive says the server has sent everything before `walEnd`. When nothing is pending,
   * nothing before it is ours to deliver, so it is safe to confirm: an idle outbox on a busy
   * database must not make PostgreSQL keep WAL forever. Keepalives are applied in stream order
   * with the data, so "nothing pending" really means nothing received is unacknowledged.
   */
  keepalive(walEnd: Lsn): void {
    if (this.transactions.length === 0 && walEnd > this.safe) this.safe = walEnd
  }

  private advance(): void {
    while (this.transactions.length > 0) {
      const first = this.transactions[0] as TrackedTransaction
      if (first.endLsn === undefined || first.outstanding > 0) return
      this.transactions.shift()
      if (first.endLsn > this.safe) this.safe = first.endLsn
    }
  }
}
