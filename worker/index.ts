export type { Publisher } from './delivery/publisher.js'
export type { KafkaRecord } from './delivery/records.js'
export { DEFAULTS, OPTIONS, resolveConfig, type WorkerConfig, type WorkerOptions } from './operations/config.js'
export { EXIT, OutboxConfigError, OutboxPoisonEventError, OutboxSetupError } from './operations/errors.js'
export { initApp } from './operations/init.js'
export type { Logger } from './operations/logger.js'
export { formatStatus, readStatus, type StatusReport } from './slot/status.js'
export { formatLsn, type Lsn, parseLsn } from './stream/lsn.js'
export {
  type CreateWorkerOptions,
  createWorker,
  type OutboxWorker,
  type WorkerState,
  type WorkerStatus,
} from './worker.js'
