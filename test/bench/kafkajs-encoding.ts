/**
 * `npx tsx test/bench/kafkajs-encoding.ts`: what kafkajs alone costs per record of the relay's
 * shape (key, ~200-byte JSON value, the four headers the worker sets), no network: the default
 * partitioner, grouping per partition and the Produce request's encoding, as sendBatch does them
 * before writing to the socket. CPU time (user + system) per record, for several batch sizes.
 * It reaches into kafkajs's source files (stable: kafkajs has had no release since 2023) to show
 * the floor under the worker's own CPU per event.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
type Message = { key: string; value: string; headers: Record<string, string>; timestamp: string }
const Produce = require('kafkajs/src/protocol/requests/produce/v3/request.js')
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition.js')
const Long = require('kafkajs/src/utils/long.js')
const { Partitioners } = require('kafkajs')

const partitioner = Partitioners.DefaultPartitioner()
/** Four partitions, like the test broker's auto-created topics. */
const partitionMetadata = [0, 1, 2, 3].map((partitionId) => ({ partitionId, leader: 1 }))
const RECORDS = 200_000

function messages(count: number, first: number): Message[] {
  const out: Message[] = []
  for (let seq = first; seq < first + count; seq++) {
    const aggregateId = String(seq % 1000)
    out.push({
      key: aggregateId,
      value: JSON.stringify({ seq, customer: `c${aggregateId}`, pad: 'x'.repeat(150) }),
      headers: {
        id: `0b6f3c1e-1d2a-4c5b-9e8f-${String(seq).padStart(12, '0')}`,
        type: 'order.created',
        aggregateType: 'order',
        aggregateId,
      },
      timestamp: String(1_795_400_000_000 + Math.floor(seq / 10)),
    })
  }
  return out
}

/** CPU µs per record to partition and encode `RECORDS` records in batches of `size`. */
async function cpuPerRecord(size: number, records = RECORDS): Promise<number> {
  const batches = Array.from({ length: Math.round(records / size) }, (_, b) => messages(size, b * size))
  const before = process.cpuUsage()
  for (const batch of batches) {
    const perPartition = groupMessagesPerPartition({ topic: 'bench', partitionMetadata, messages: batch, partitioner })
    const partitions = Object.entries(perPartition).map(([partition, list]) => ({
      partition: Number(partition),
      firstSequence: 0,
      messages: list,
    }))
    const request = Produce({
      acks: -1,
      timeout: 30_000,
      producerId: Long.fromInt(1),
      producerEpoch: 0,
      topicData: [{ topic: 'bench', partitions }],
    })
    await request.encode()
  }
  const used = process.cpuUsage(before)
  return (used.user + used.system) / (batches.length * size)
}

await cpuPerRecord(1000, 50_000) // warm-up: the JIT, not the measurement
for (const size of [250, 1000, 4000]) {
  process.stdout.write(`kafkajs, batches of ${size}: ${(await cpuPerRecord(size)).toFixed(1)} µs CPU per record\n`)
}
