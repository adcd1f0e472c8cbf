/**
 * `outbox-worker tail <topic>`: prints what arrives on a topic, so the first event can be seen
 * without writing a consumer. It reads with a consumer group of its own, named at random and
 * never committed, so it moves no one else's offsets.
 */
import { randomUUID } from 'node:crypto'
import { Kafka } from 'kafkajs'
import { kafkaClientConfig } from '../delivery/kafkajs-publisher.js'
import type { WorkerConfig } from './config.js'
import { OutboxSetupError } from './errors.js'
import { silentLogger } from './logger.js'

export interface TailOptions {
  topic: string
  fromBeginning: boolean
  json: boolean
  /** Where records go (stdout) and notes about waiting (stderr). */
  write: (line: string) => void
  note: (line: string) => void
  signal: AbortSignal
}

interface Printed {
  topic: string
  partition: number
  offset: string
  timestamp: string
  key: string | null
  headers: Record<string, string>
  /** The value's text (an outbox event's payload is JSON text). */
  value: string | null
}

/** One record as a line of JSON (--json), or as two readable lines. */
export function formatRecord(record: Printed, json: boolean): string {
  if (json) return JSON.stringify({ ...record, value: parsed(record.value) })
  // Key, type and id are shown already, aggregateType is usually the topic: the rest are the event's own.
  const { id, type, aggregateType: _type, aggregateId: _id, ...rest } = record.headers
  const extra = Object.keys(rest).length > 0 ? `  headers=${JSON.stringify(rest)}` : ''
  const value = record.value ?? '(no value)'
  return `${record.topic}/${record.partition}@${record.offset}  ${record.timestamp}  key=${record.key ?? ''}  type=${type ?? ''}  id=${id ?? ''}${extra}\n  ${value}`
}

/** The value as JSON when it is JSON (every outbox event's is), else its text. */
function parsed(text: string | null): unknown {
  if (text === null) return null
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Runs until `signal` aborts. Waits for the topic to exist: it appears with its first event. */
export async function tail(config: WorkerConfig, options: TailOptions): Promise<void> {
  const kafka = new Kafka({ ...kafkaClientConfig(config, silentLogger), clientId: `${config.kafkaClientId}-tail` })
  const admin = kafka.admin()
  await admin.connect().catch((error: Error) => {
    throw new OutboxSetupError(
      `cannot reach Kafka at ${config.kafkaBrokers.join(',')} (${error.message}): check KAFKA_BROKERS and that the brokers are up`,
      { code: 'OUTBOX_UNREACHABLE', cause: error },
    )
  })
  try {
    let told = false
    while (!options.signal.aborted && !(await admin.listTopics()).includes(options.topic)) {
      if (!told)
        options.note(
          `waiting for topic ${options.topic} on ${config.kafkaBrokers.join(',')} (it appears with its first event)`,
        )
      told = true
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  } finally {
    await admin.disconnect()
  }
  if (options.signal.aborted) return
  const consumer = kafka.consumer({ groupId: `outbox-worker-tail-${randomUUID()}` })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic: options.topic, fromBeginning: options.fromBeginning })
    options.note(
      `reading ${options.topic} ${options.fromBeginning ? 'from the beginning' : 'from now on (--from-beginning for earlier records)'}; Ctrl-C stops`,
    )
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {}
        for (const [name, value] of Object.entries(message.headers ?? {}))
          if (value !== undefined) headers[name] = String(Array.isArray(value) ? value.join(',') : value)
        const record: Printed = {
          topic,
          partition,
          offset: message.offset,
          timestamp: new Date(Number(message.timestamp)).toISOString(),
          key: message.key?.toString('utf8') ?? null,
          headers,
          value: message.value?.toString('utf8') ?? null,
        }
        options.write(`${formatRecord(record, options.json)}\n`)
      },
    })
    await new Promise<void>((resolve) => {
      if (options.signal.aborted) resolve()
      options.signal.addEventListener('abort', () => resolve(), { once: true })
    })
  } finally {
    await consumer.disconnect()
  }
}
