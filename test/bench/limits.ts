import { execFileSync, spawn } from 'node:child_process'
import { kafkaJarsDir } from '../services/local-kafka.js'

/**
 * The decode limit: PostgreSQL's own pg_recvlogical draining the same WAL through the same
 * publication into /dev/null, up to `endLsn`. Returns seconds.
 */
export async function pgRecvlogicalSeconds(url: string, slot: string, endLsn: string): Promise<number> {
  const started = performance.now()
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      'pg_recvlogical',
      [
        '-d',
        url,
        '--slot',
        slot,
        '--start',
        '--no-loop',
        `--endpos=${endLsn}`,
        '-o',
        'proto_version=1',
        '-o',
        'publication_names=prisma_outbox',
        '-o',
        'messages=true',
        '-f',
        '/dev/null',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_recvlogical exited ${code}: ${stderr}`))))
  })
  return (performance.now() - started) / 1000
}

/**
 * The produce limit: Kafka's own ProducerPerformance (from the same jars as the broker) sending
 * `count` records of `size` bytes with acks=all and idempotence, as fast as it can.
 * Returns records per second as it reports them.
 */
export function producerPerformance(brokers: string[], topic: string, count: number, size: number): number {
  const output = execFileSync(
    'java',
    [
      '-Xmx512m',
      '-cp',
      `${kafkaJarsDir()}/*`,
      'org.apache.kafka.tools.ProducerPerformance',
      '--topic',
      topic,
      '--num-records',
      String(count),
      '--record-size',
      String(size),
      '--throughput',
      '-1',
      '--producer-props',
      `bootstrap.servers=${brokers.join(',')}`,
      'acks=all',
      'enable.idempotence=true',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  )
  const lines = output.trim().split('\n')
  const summary = lines[lines.length - 1] ?? ''
  const match = /([\d.]+) records\/sec/.exec(summary)
  if (!match) throw new Error(`could not read ProducerPerformance's summary: ${summary}`)
  return Number(match[1])
}
