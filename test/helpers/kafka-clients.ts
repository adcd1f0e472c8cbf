import type { WorkerConfig } from '../../worker/operations/config.js'

/**
 * Every Kafka client the worker supports. The scenarios that exercise the client (delivery and
 * order, poison splitting, missing topics, outages, network faults, crashes) run once per client.
 */
export const KAFKA_CLIENTS: WorkerConfig['kafkaClient'][] = ['kafkajs', 'platformatic']
