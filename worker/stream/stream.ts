import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication'
import { quoteIdent } from '../../src/sql.js'
import type { WorkerConfig } from '../operations/config.js'
import type { Metrics } from '../operations/metrics.js'
import { OutboxDecoder, type UndecodableRow } from './decoder.js'
import { formatLsn, type Lsn, maxLsn, parseLsn } from './lsn.js'
import { LsnTracker, type TrackedTransaction } from './lsn-tracker.js'
import type { OutboxRecord } from './outbox-record.js'
import { replicationBackendPid, replicationSocket, sendCopyData } from './replication-internals.js'
import { standbyStatusUpdate } from './status-update.js'

export interface StreamHooks {
  /** START_REPLICATION succeeded: this connection holds the slot. */
  started(): void
  record(record: OutboxRecord, transaction: TrackedTransaction): void
  undecodable(row: UndecodableRow, transaction: TrackedTransaction): void
  /** The outbox table was renamed or moved (a relation message said so). */
  tableLeft(reason: string): void
  /** The outbox table came back under a new relation id (re-created). */
  tableReplaced(): void
  /** PostgreSQL was told it may forget the WAL up to this LSN (text). */
  confirmed(lsn: string): void
  /** `deliveredBefore` moved forward (a delivery, or a keepalive while idle). */
  delivered(): void
  /** The connection ended (or was found dead); nothing more is read, tracked or confirmed. */
  ended(error: unknown): void
}

/**
 * The reading half of a session: one replication connection, its decoding, the confirm rule and
 * the status updates. A new stream (and a new LogicalReplicationService) is made for every
 * connection: a reused service would restart from the last LSN it *received* instead of the
 * slot's confirmed position, skipping everything received but not yet acknowledged.
 *
 * Data and keepalive messages are handled synchronously in socket order (no library flow
 * control: it queues data but not keepalives, so a keepalive could be applied ahead of
 * unprocessed commits). Once the stream has ended, the messages still in the socket's last chunk
 * are ignored: none of them may be tracked or confirmed by a session that is finishing.
 */
export class ReplicationStream {
  private readonly service: LogicalReplicationService
  private readonly tracker: LsnTracker
  private readonly decoder: OutboxDecoder
  private serverLsn: Lsn
  /** The last data message's LSN, as sent: parsed only when the lag is reported (not per message). */
  private lastDataLsn: string | undefined
  private confirmed: Lsn
  private closed = false
  private paused = false
  private lastReceived = Date.now()
  /** A change (not a keepalive) arrived since the last status tick (liveness). */
  private receivedData = false
  /** When, as far as the catalog shows, the server last heard from this connection (checkAlive). */
  private lastVerified = 0
  /** Why confirming is held (the table left the publication), if it is. */
  private heldBecause: string | undefined
  private readonly timers: NodeJS.Timeout[] = []
  streaming = false

  constructor(
    private readonly config: WorkerConfig,
    startLsn: Lsn,
    /** No message from the server for this long means the connection is dead (half-open). */
    private readonly receiveTimeoutMs: number,
    private readonly metrics: Metrics,
    private readonly hooks: StreamHooks,
  ) {
    this.service = new LogicalReplicationService(
      // A half-open connection must not hang the connect either; keepalives help the kernel notice.
      {
        connectionString: config.databaseUrl,
        connectionTimeoutMillis: 10_000,
        keepAlive: true,
        // The latest this worker may still send while holding the slot: a paused stream's deadline
        // is counted from the last update the server heard, a status interval later (slotHolder).
        options: serverTcpSettings(receiveTimeoutMs + config.statusIntervalMs),
      },
      // Never let the library confirm anything: it would confirm what was received, not delivered.
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    )
    this.tracker = new LsnTracker(startLsn)
    this.serverLsn = startLsn
    this.confirmed = startLsn
    this.decoder = new OutboxDecoder(config.table, {
      begin: (commitTime) => this.tracker.begin(commitTime),
      record: (record) => this.hooks.record(record, this.tracker.addRecord()),
      undecodable: (row) => this.hooks.undecodable(row, this.tracker.addRecord()),
      commit: (endLsn) => this.tracker.commit(parseLsn(endLsn)),
      tableLeft: (reason) => this.hooks.tableLeft(reason),
      tableReplaced: () => this.hooks.tableReplaced(),
    })
  }

  /** Every event committed before this time (ms) has been delivered; 0 = not known yet. */
  get deliveredBefore(): number {
    return this.tracker.deliveredBefore
  }

  /** Commit time (ms) of the oldest event received and not yet acknowledged, if any. */
  get oldestPendingCommitTime(): number | undefined {
    return this.tracker.oldestPendingCommitTime
  }

  /** The position up to which everything is delivered (or had nothing for the outbox). */
  get safeLsn(): Lsn {
    return this.tracker.safeLsn
  }

  /**
   * The server's WAL position, read from the catalog: while reading is paused no message brings
   * it, and the lag must keep growing with the WAL that is written meanwhile.
   */
  serverPosition(lsn: Lsn): void {
    if (this.closed) return
    this.serverLsn = maxLsn(this.serverLsn, lsn)
  }

  start(): void {
    const { service } = this
    service.on('data', (lsn: string, message: Pgoutput.Message) => this.onData(lsn, message))
    // The library's keepalive timestamp is 7 days early (it adds 946080000000 ms, not the
    // 946684800000 between the epochs): the time of receipt stands in for the server's.
    service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) =>
      this.onKeepalive(lsn, shouldRespond),
    )
    service.on('error', (error: unknown) => this.end(error))
    service.on('start', () => {
      this.streaming = true
      this.lastReceived = Date.now()
      this.hooks.started()
    })
    // pgoutput folds unquoted names to lower case, as SQL does: quote the publication's name.
    // messages: message mode's events (pg_logical_emit_message) arrive in the same stream (14+).
    const plugin = new PgoutputPlugin({
      protoVersion: 1,
      publicationNames: [quoteIdent(this.config.publication)],
      messages: true,
    })
    service.subscribe(plugin, this.config.slot).then(
      () => this.end(new Error('the server ended the replication stream')),
      (error: unknown) => this.end(error),
    )
    // Status updates with reply requested: they keep the connection alive while reading is
    // paused, and the server's reply (a keepalive) lets an idle slot advance and proves the
    // connection is alive.
    this.timers.push(
      setInterval(() => {
        // The session's sign of progress for liveness, whether Kafka or PostgreSQL answer (an
        // outage is not a wedge): while nothing waits for Kafka, or while new changes arrive.
        // With events waiting and nothing arriving, progress must come from the delivery (each
        // send attempt, which a client timeout ends): a send that never settles is a wedge.
        if (!this.closed && (this.tracker.pending === 0 || this.receivedData)) this.metrics.heartbeat.beat()
        this.receivedData = false
        this.sendStatus(true)
      }, this.config.statusIntervalMs),
    )
    // Often: the session must end close to the deadline, not up to a fraction of it later (sends
    // are also refused past it: alive()).
    this.timers.push(
      setInterval(() => this.checkAlive(), Math.max(50, Math.min(1000, Math.floor(this.receiveTimeoutMs / 20)))),
    )
  }

  /** Stops handling messages at once, then closes the connection. */
  async close(): Promise<void> {
    this.closed = true
    this.streaming = false
    for (const timer of this.timers) clearInterval(timer)
    // The socket first: on a half-open connection the client's orderly end would wait forever.
    this.socket()?.destroy()
    await Promise.race([this.service.destroy().catch(() => {}), new Promise((r) => setTimeout(r, 2000))])
  }

  pause(): void {
    this.paused = true
    this.socket()?.pause()
  }

  resume(): void {
    this.paused = false
    this.lastReceived = Date.now()
    this.socket()?.resume()
  }

  acknowledge(transaction: TrackedTransaction, count = 1): void {
    if (this.closed) return
    this.tracker.acknowledge(transaction, count)
  }

  /** Confirms what became safe, if anything did. */
  confirm(): void {
    if (this.tracker.safeLsn > this.confirmed) this.sendStatus(false)
    this.reportDelivered()
  }

  /** Stops confirming anything new (reason is logged by the caller); `undefined` resumes. */
  holdConfirming(reason: string | undefined): void {
    this.heldBecause = reason
    if (!reason) this.confirm()
  }

  get held(): boolean {
    return this.heldBecause !== undefined
  }

  /** Sends a final status update (on a graceful stop). */
  finalStatus(): void {
    this.sendStatus(false)
  }

  /**
   * The catalog's word on who holds the slot. Another backend means this connection is dead
   * (the server freed the slot): end, whether or not the socket has noticed. Our own backend
   * holding it proves only that the slot was not yet freed; what the server counts its
   * wal_sender_timeout from is the last status update it received from us, so that is the sign of
   * life a paused stream is judged by: sent at `replySentAtMs` by this process's clock (the time
   * it wrote into the update), so no clock of the server's is compared with ours. It was received
   * later still, so a deadline counted from the send is the safe side. The receive timeout leaves
   * a status interval between the last message received and the last update the server heard
   * (receiveTimeout in slot/preparation.ts); a time the server heard from us needs none, so it
   * counts as a message received a status interval later. A time ahead of now (a clock stepped
   * back) proves nothing and is ignored.
   */
  slotHolder(pid: number | null, replySentAtMs: number | null): void {
    if (this.closed || !this.streaming) return
    const own = this.backendPid()
    if (own === undefined) return
    if (pid === own) {
      if (replySentAtMs !== null && replySentAtMs <= Date.now())
        this.lastVerified = Math.max(this.lastVerified, replySentAtMs + this.config.statusIntervalMs)
    } else
      this.end(
        new Error(`the slot is now held by ${pid === null ? 'no one' : `backend ${pid}`}: this connection is dead`),
      )
  }

  /**
   * Whether the connection may still be taken to hold the slot: false (and the stream ends) once
   * the receive deadline has passed. Asked before every send to Kafka: a send started later could
   * arrive after the server has handed the slot to another worker.
   */
  alive(): boolean {
    this.checkAlive()
    return !this.closed
  }

  private end(error: unknown): void {
    if (this.closed) return
    this.closed = true
    this.hooks.ended(error)
  }

  private onData(lsn: string, message: Pgoutput.Message): void {
    if (this.closed) return
    this.lastReceived = Date.now()
    this.receivedData = true
    try {
      this.lastDataLsn = lsn
      this.decoder.handle(message)
    } catch (error) {
      this.end(error)
    }
  }

  private onKeepalive(lsn: string, shouldRespond: boolean): void {
    if (this.closed) return
    this.lastReceived = Date.now()
    try {
      const walEnd = parseLsn(lsn)
      this.serverLsn = maxLsn(this.serverLsn, walEnd)
      this.tracker.keepalive(walEnd)
      if (shouldRespond || this.tracker.safeLsn > this.confirmed) this.sendStatus(false)
    } catch (error) {
      this.end(error)
    }
  }

  private reportedDelivered = 0

  private reportDelivered(): void {
    if (this.held || this.tracker.deliveredBefore <= this.reportedDelivered) return
    this.reportedDelivered = this.tracker.deliveredBefore
    this.hooks.delivered()
  }

  /**
   * A half-open connection (a network partition, a dead load balancer) sends nothing and errors
   * never. The server answers every status update that asks for a reply, so silence for longer
   * than the receive timeout means the connection is dead: end it, before the server's
   * wal_sender_timeout frees the slot for another worker while this one still publishes (see
   * receiveTimeout in slot/preparation.ts for how far before).
   * While reading is paused, silence is ours, not the server's: then the catalog must keep
   * showing this connection as the slot's holder (slotHolder), or the session ends all the same.
   */
  private checkAlive(): void {
    if (this.closed) return
    const lastSign = this.paused ? Math.max(this.lastReceived, this.lastVerified) : this.lastReceived
    const silentMs = Date.now() - lastSign
    if (silentMs > this.receiveTimeoutMs) {
      const why = this.paused
        ? `reading paused and the slot not seen held by this connection for ${silentMs} ms`
        : `no message from PostgreSQL for ${silentMs} ms`
      this.end(new Error(`${why}: the replication connection is presumed dead`))
    }
  }

  /**
   * Tells PostgreSQL the slot may forget WAL up to the safe LSN (status-update.ts). While
   * confirming is held, the last confirmed position is repeated (the server still needs to hear
   * from us).
   */
  private sendStatus(requestReply: boolean): void {
    if (this.closed || !this.streaming) return
    const safe = this.heldBecause ? this.confirmed : this.tracker.safeLsn
    if (this.lastDataLsn !== undefined) {
      this.serverLsn = maxLsn(this.serverLsn, parseLsn(this.lastDataLsn))
      this.lastDataLsn = undefined
    }
    this.metrics.slotLagBytes.set(Number(this.serverLsn > safe ? this.serverLsn - safe : 0n))
    this.metrics.pendingTransactions.set(this.tracker.pending)
    if (safe <= 0n) return
    sendCopyData(this.service, standbyStatusUpdate(safe, Date.now(), requestReply))
    if (safe > this.confirmed) {
      this.confirmed = safe
      this.metrics.confirmedLsn.set(Number(safe))
      this.hooks.confirmed(formatLsn(safe))
    }
  }

  private socket() {
    return replicationSocket(this.service)
  }

  private backendPid(): number | undefined {
    return replicationBackendPid(this.service)
  }
}

/**
 * The server's TCP settings for this connection. Set by a DBA to notice dead clients sooner
 * (tcp_keepalives_*, tcp_user_timeout), they would let the server end a half-open connection,
 * and free the slot for a standby, before this worker's deadline, while it still publishes: two
 * workers at once. So on this connection keepalives can fire only after `deadlineMs` (by about
 * 15 s), and tcp_user_timeout never: Linux counts a zero receive window against it, which a
 * paused stream holds for as long as the pause lasts (a Kafka outage, a backlog). With 69 s, a
 * healthy worker paused over a large backlog lost its connection, and the slot, 69 s into the
 * pause. A dead worker's slot is freed by wal_sender_timeout, or with it off by keepalives (idle
 * connection) or TCP's retransmission limit (data in flight, minutes).
 */
export function serverTcpSettings(deadlineMs: number): string {
  const idleSeconds = Math.ceil(deadlineMs / 1000)
  return [
    `tcp_keepalives_idle=${idleSeconds}`,
    'tcp_keepalives_interval=5',
    'tcp_keepalives_count=3',
    'tcp_user_timeout=0',
  ]
    .map((setting) => `-c ${setting}`)
    .join(' ')
}
