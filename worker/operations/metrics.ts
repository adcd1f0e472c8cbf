import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/** The worker's Prometheus metrics, in a registry of its own (several workers can share a process). */
export function createMetrics() {
  const registry = new Registry()
  const registers = [registry]
  return {
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
      help: '1 when the last Kafka send succeeded, 0 after a failure until the next success',
      registers,
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>
