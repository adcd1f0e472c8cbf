import type { Lsn } from './lsn.js'

/**
 * One transaction with outbox records, as the stream delivers it. Its records may be published
 * before its commit message arrives (pgoutput v1 only sends transactions that already committed),
 * but it counts as done only once the commit has arrived and every record has been acknowledged.
 */
export interface TrackedTransaction {
  /** End LSN of the commit record; known when the commit message arrives. */
  endLsn: Lsn | undefined
  /** Commit time (ms since epoch), for the commit-to-ack latency metric and retention. */
  commitTime: number
  /** Records received and not yet acknowledged. */
  outstanding: number
  /**
   * The newest transaction without outbox records that committed after this one and before the
   * next tracked one: done as soon as this one is, so it needs no entry of its own.
   */
  trailing: { endLsn: Lsn; commitTime: number } | undefined
}

/**
 * The confirm rule. Transactions with records are kept in stream order; the safe LSN
 * is the end LSN of the last transaction in the longest fully-acknowledged prefix: a contiguous
 * low-watermark, never simply the newest acknowledgement, since batches for later transactions
 * can succeed while an earlier one is still being retried.
 *
 * Transactions without outbox records (PostgreSQL 14 sends BEGIN/COMMIT for every transaction;
 * 15+ for those touching other tables of the publication) get no entry: they fold into the
 * tracked transaction before them, so memory is bounded by the records buffered, not by the
 * database's other traffic.
 */
export class LsnTracker {
  private readonly transactions: TrackedTransaction[] = []
  private open: { commitTime: number; tracked: TrackedTransaction | undefined } | undefined
  private safe: Lsn
  private safeTime = 0

  constructor(start: Lsn = 0n) {
    this.safe = start
  }

  /** The LSN up to which PostgreSQL may forget the WAL. */
  get safeLsn(): Lsn {
    return this.safe
  }

  /**
   * Commit time (ms) of the newest transaction at or before the safe LSN: every event committed
   * before it has been delivered. 0 = unknown. Keepalives do not move it: a keepalive's position
   * can lag far behind the time it is sent, when the server is busy decoding.
   */
  get deliveredBefore(): number {
    return this.safeTime
  }

  /** Commit time (ms) of the oldest transaction with records not yet fully acknowledged. */
  get oldestPendingCommitTime(): number | undefined {
    return this.transactions[0]?.commitTime
  }

  /** Transactions with records that are not yet fully acknowledged. */
  get pending(): number {
    return this.transactions.length
  }

  begin(commitTime: number): void {
    if (this.open) throw new Error('BEGIN inside an open transaction')
    this.open = { commitTime, tracked: undefined }
  }

  /** Counts one record of the open transaction; returns the transaction to acknowledge it with. */
  addRecord(): TrackedTransaction {
    const open = this.open
    if (!open) throw new Error('a record outside a transaction')
    if (!open.tracked) {
      open.tracked = { endLsn: undefined, commitTime: open.commitTime, outstanding: 0, trailing: undefined }
      this.transactions.push(open.tracked)
    }
    open.tracked.outstanding++
    return open.tracked
  }

  commit(endLsn: Lsn): void {
    const open = this.open
    if (!open) throw new Error('COMMIT outside a transaction')
    this.open = undefined
    if (open.tracked) {
      open.tracked.endLsn = endLsn
    } else {
      const last = this.transactions[this.transactions.length - 1]
      if (last) last.trailing = { endLsn, commitTime: open.commitTime }
      else this.moveSafe(endLsn, open.commitTime)
    }
    this.advance()
  }

  acknowledge(transaction: TrackedTransaction, count = 1): void {
    transaction.outstanding -= count
    if (transaction.outstanding < 0) throw new Error('acknowledged more records than the transaction has')
    this.advance()
  }

  /**
   * A keepalive says the server has sent everything before `walEnd`. When nothing is pending and
   * no transaction is open, nothing before it is ours to deliver, so it is safe to confirm: an
   * idle outbox on a busy database must not make PostgreSQL keep WAL forever. A keepalive can
   * arrive in the middle of a transaction with a walEnd past its commit: hence the open check.
   */
  keepalive(walEnd: Lsn): void {
    if (this.transactions.length === 0 && !this.open) this.moveSafe(walEnd, 0)
  }

  private advance(): void {
    while (this.transactions.length > 0) {
      const first = this.transactions[0] as TrackedTransaction
      if (first.endLsn === undefined || first.outstanding > 0) return
      this.transactions.shift()
      this.moveSafe(first.endLsn, first.commitTime)
      if (first.trailing) this.moveSafe(first.trailing.endLsn, first.trailing.commitTime)
    }
  }

  private moveSafe(lsn: Lsn, time: number): void {
    if (lsn > this.safe) this.safe = lsn
    if (time > this.safeTime) this.safeTime = time
  }
}
