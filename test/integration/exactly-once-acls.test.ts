/**
 * Exactly-once against a Kafka that enforces ACLs: a worker's principal holding the ACLs
 * docs/exactly-once.md lists, and no more, initializes its transactional id, creates and reads
 * its checkpoint topic and commits transactions, with each client.
 */
import { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { checkpointRecord } from '../../worker/delivery/exactly-once/checkpoint.js'
import { createKafkajsTransactionalPublisher } from '../../worker/delivery/exactly-once/kafkajs-transactional.js'
import { createPlatformaticTransactionalPublisher } from '../../worker/delivery/exactly-once/platformatic-transactional.js'
import { DEFAULTS, type WorkerConfig } from '../../worker/operations/config.js'
import { silentLogger } from '../../worker/operations/logger.js'
import { parseLsn } from '../../worker/stream/lsn.js'
import { uniqueName } from '../helpers/database.js'
import { collectTopics, testKafka } from '../helpers/kafka.js'
import { KAFKA_CLIENTS } from '../helpers/kafka-clients.js'
import { type PausableKafka, startLocalKafka } from '../services/local-kafka.js'

let kafka: PausableKafka

beforeAll(async () => {
  kafka = await startLocalKafka({ saslUsers: { worker: 'worker-secret' } })
}, 120_000)
afterAll(async () => {
  await kafka?.dispose()
})

/** What docs/exactly-once.md tells operators to grant, for one transactional id and one event topic. */
function documentedAcls(id: string, eventTopic: string) {
  const allow = (
    resourceType: AclResourceTypes,
    resourceName: string,
    operation: AclOperationTypes,
    prefixed = false,
  ) => ({
    resourceType,
    resourceName,
    resourcePatternType: prefixed ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
    principal: 'User:worker',
    host: '*',
    operation,
    permissionType: AclPermissionTypes.ALLOW,
  })
  const checkpoint = `${id}.checkpoint`
  return [
    allow(AclResourceTypes.TRANSACTIONAL_ID, id, AclOperationTypes.WRITE),
    allow(AclResourceTypes.TRANSACTIONAL_ID, id, AclOperationTypes.DESCRIBE),
    allow(AclResourceTypes.TOPIC, checkpoint, AclOperationTypes.READ),
    allow(AclResourceTypes.TOPIC, checkpoint, AclOperationTypes.WRITE),
    allow(AclResourceTypes.TOPIC, checkpoint, AclOperationTypes.DESCRIBE),
    allow(AclResourceTypes.TOPIC, checkpoint, AclOperationTypes.CREATE),
    allow(AclResourceTypes.GROUP, `${id}.checkpoint-read.`, AclOperationTypes.READ, true),
    allow(AclResourceTypes.TOPIC, eventTopic, AclOperationTypes.WRITE),
  ]
}

describe.each(KAFKA_CLIENTS)('with %s', (client) => {
  test('a principal with the documented ACLs commits transactions and reads its checkpoint back', async () => {
    const id = uniqueName('txid')
    const topic = uniqueName('acl')
    const admin = testKafka(kafka.directBrokers).admin()
    await admin.connect()
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
      await admin.createAcls({ acl: documentedAcls(id, topic) })
    } finally {
      await admin.disconnect()
    }
    const config: WorkerConfig = {
      ...DEFAULTS,
      databaseUrl: 'postgresql://unused',
      kafkaBrokers: kafka.brokers,
      kafkaClient: client,
      delivery: 'exactly-once',
      transactionalId: id,
      slot: 'acl_slot',
      kafkaSaslMechanism: 'plain',
      kafkaSaslUsername: 'worker',
      kafkaSaslPassword: 'worker-secret',
    }
    const create = client === 'kafkajs' ? createKafkajsTransactionalPublisher : createPlatformaticTransactionalPublisher
    const publisher = create(config, silentLogger)
    const identity = { system: '7000000000000000001', timeline: 1, walPosition: parseLsn('1/0') }
    const records = (n: number) =>
      Array.from({ length: 6 }, (_, i) => ({
        topic,
        key: `k${i}`,
        value: JSON.stringify({ n, i }),
        headers: { id: `${n}-${i}` },
        timestamp: String(Date.now()),
      }))
    try {
      await publisher.connect()
      expect(await publisher.readCheckpoint()).toBeUndefined()
      await publisher.commitTransaction([records(1)], checkpointRecord(config, parseLsn('0/100'), identity))
      await publisher.commitTransaction([records(2)], checkpointRecord(config, parseLsn('0/200'), identity))
      expect((await publisher.readCheckpoint())?.lsn).toBe(parseLsn('0/200'))
    } finally {
      await publisher.disconnect()
    }
    const consumer = await collectTopics(kafka.directBrokers, [topic])
    try {
      await consumer.waitFor(12)
      expect(consumer.messages.map((m) => m.headers.id).sort()).toEqual(
        [...records(1), ...records(2)].map((r) => r.headers.id).sort(),
      )
    } finally {
      await consumer.stop()
    }
  }, 120_000)
})
