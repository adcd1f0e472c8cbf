import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/** The inbox's Prometheus metrics, in a registry of their own (serve it next to the app's). */
export function createInboxMetrics() {
  const registry = new Registry()
  const registers = [registry]
  return {
    registry,
    lag: new Gauge({
      name: 'inbox_lag_records',
      help: 'Records in the partition after the last one handled (high watermark − next offset)',
      labelNames: ['topic', 'partition'],
      registers,
    }),
    handled: new Counter({
      name: 'inbox_records_handled_total',
      help: 'Records whose handler committed with their inbox row',
      registers,
    }),
    duplicates: new Counter({
      name: 'inbox_records_skipped_duplicate_total',
      help: 'Records skipped because the inbox already had their event id',
      registers,
    }),
    ignored: new Counter({
      name: 'inbox_records_ignored_total',
      help: 'Records of a type with no handler, acknowledged without effect',
      registers,
    }),
    retried: new Counter({
      name: 'inbox_handler_retries_total',
      help: 'Handler attempts that threw and were tried again',
      registers,
    }),
    parked: new Counter({
      name: 'inbox_records_parked_total',
      help: 'Records parked in the inbox table, by reason (failed, waiting, poison)',
      labelNames: ['reason'],
      registers,
    }),
    databaseWaits: new Counter({
      name: 'inbox_database_unavailable_total',
      help: 'Attempts that met an unreachable database (retried without limit, never parked)',
      registers,
    }),
    consumerRestarts: new Counter({
      name: 'inbox_consumer_restarts_total',
      help: 'Kafka consumers replaced after they stopped on an error',
      registers,
    }),
    handlerSeconds: new Histogram({
      name: 'inbox_handler_duration_seconds',
      help: "A record's transaction: inbox row and handler, until commit",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  }
}

export type InboxMetrics = ReturnType<typeof createInboxMetrics>
