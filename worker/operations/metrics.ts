import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/**
 * Node's process metrics (CPU, memory, event-loop lag, GC), collected once per process into a
 * registry of their own and served next to each worker's: they describe the process, not a
 * worker. Collected into each worker's registry, every worker would add a GC observer and an
 * event-loop monitor that are never released (an app or a test suite that creates workers again
 * and again would pile them up), and worker.metrics.registry would hold series that are not the
 * worker's.
 */
let processRegistry: Registry | undefined
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/**
 * The run loop's sign of progress, for liveness (see docs/probes.md): beaten by each step of the
 * loop, each status update of a streaming session and each Kafka send attempt (so a worker
 * retrying an outage is alive). Kept with the metrics because the initial snapshot's publishing
 * is handed only those.
 */
export class Heartbeat {
  at = Date.now()
  constructor(private readonly gauge: Gauge) {
    gauge.set(this.at / 1000)
  }
  beat(): void {
    this.at = Date.now()
    this.gauge.set(this.at / 1000)
  }
}

/** The worker's Prometheus metrics, in a registry of its own (several workers can share a process). */
export function createMetrics() {
  const registry = new Registry()
  const registers = [registry]
  const metrics = {
    registry,
    eventsPublished: new Counter({
      name: 'outbox_events_published_total',
      help: 'Events acknowledged by Kafka (their topic, or the dead-letter topic for poison events)',
      registers,
    }),
    eventsDeadLettered: new Counter({
      name: 'outbox_events_dead_lettered_total',
      help: 'Poison events sent to a dead-letter topic',
      registers,
    }),
    publishErrors: new Counter({
      name: 'outbox_publish_errors_total',
      help: 'Failed Kafka sends, by kind (retriable, poison, fatal)',
      labelNames: ['kind'],
      registers,
    }),
    streamErrors: new Counter({
      name: 'outbox_stream_errors_total',
      help: 'Replication stream failures that led to a reconnect',
      registers,
    }),
    batchSize: new Histogram({
      name: 'outbox_batch_size',
      help: 'Records per Kafka request',
      buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    }),
    commitToAck: new Histogram({
      name: 'outbox_commit_to_ack_seconds',
      help: 'From the transaction commit in PostgreSQL to the Kafka acknowledgement',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    slotLagBytes: new Gauge({
      name: 'outbox_slot_lag_bytes',
      help: 'WAL bytes between the newest position the server reported and the confirmed position',
      registers,
    }),
    confirmedLsn: new Gauge({
      name: 'outbox_confirmed_lsn',
      help: 'The LSN last confirmed to PostgreSQL, as a number',
      registers,
    }),
    bufferedEvents: new Gauge({
      name: 'outbox_buffered_events',
      help: 'Events received and not yet acknowledged by Kafka',
      registers,
    }),
    streaming: new Gauge({
      name: 'outbox_streaming',
      help: '1 while this worker holds the slot and streams, 0 otherwise (standby, reconnecting)',
      registers,
    }),
    pendingTransactions: new Gauge({
      name: 'outbox_pending_transactions',
      help: 'Transactions with events received and not yet fully acknowledged (others take no memory)',
      registers,
    }),
    topicUnavailable: new Gauge({
      name: 'outbox_topic_unavailable',
      help: '1 for each topic that does not exist or may not be written; its events wait, then are dead-lettered',
      labelNames: ['topic'],
      registers,
    }),
    tablePublished: new Gauge({
      name: 'outbox_table_published',
      help: '1 while the outbox table is in the publication; 0 when it left it (confirming is held)',
      registers,
    }),
    tableReplaced: new Counter({
      name: 'outbox_table_replaced_total',
      help: 'Times the outbox table was found re-created or re-added to the publication: events in between need republishing',
      registers,
    }),
    kafkaConnected: new Gauge({
      name: 'outbox_kafka_connected',
      help: 'While this worker streams: 1 when its last Kafka send (or its start-up check) succeeded, 0 after a failure until the next success; 0 when not streaming (no producer)',
      registers,
    }),
    oldestUnackedEventAge: new Gauge({
      name: 'outbox_oldest_unacked_event_age_seconds',
      help: 'Seconds since the commit of the oldest event received and not yet acknowledged by Kafka; 0 when none',
      registers,
    }),
    heartbeatTimestamp: new Gauge({
      name: 'outbox_heartbeat_timestamp_seconds',
      help: "Unix time of the run loop's last sign of progress (liveness: /healthz is 503 once it is older than --liveness-timeout)",
      registers,
    }),
  }
  return {
    ...metrics,
    heartbeat: new Heartbeat(metrics.heartbeatTimestamp),
    /**
     * The gauges that describe one session, back to what is true when none runs: before a new
     * session (which must not show the last one's values) and on a standby, which also forgets
     * the topics found unavailable (exactly-once keeps them across its restarting sessions, and
     * at-least-once clears its own when its session ends). Slot lag and the confirmed LSN are
     * not reset: the run loop sets them from each check of the slot.
     */
    resetSessionGauges({ standby }: { standby: boolean }): void {
      for (const gauge of [
        metrics.streaming,
        metrics.bufferedEvents,
        metrics.pendingTransactions,
        metrics.oldestUnackedEventAge,
        metrics.kafkaConnected,
      ])
        gauge.set(0)
      if (standby) {
        metrics.topicUnavailable.reset()
        metrics.tablePublished.set(1)
      }
    },
  }
}

export type Metrics = ReturnType<typeof createMetrics>
