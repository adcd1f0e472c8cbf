/**
 * `outbox-worker tail <topic>` prints what arrives on a topic: the way to see a first event
 * without writing a consumer.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { afterEach, expect, inject, test } from 'vitest'
import { workerCli } from '../helpers/cli.js'
import { uniqueName } from '../helpers/database.js'
import { ensureTopics, testKafka } from '../helpers/kafka.js'

const running: ChildProcess[] = []
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
})

function tail(args: string[], brokers = inject('kafkaBrokers').join(',')) {
  const child = spawn(process.execPath, [workerCli, 'tail', ...args], {
    env: { PATH: process.env.PATH, KAFKA_BROKERS: brokers },
  })
  running.push(child)
  const out = { stdout: '', stderr: '' }
  child.stdout.on('data', (chunk) => (out.stdout += chunk))
  child.stderr.on('data', (chunk) => (out.stderr += chunk))
  const until = async (test: () => boolean, what: string) => {
    const deadline = Date.now() + 60_000
    while (!test()) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${what}: ${JSON.stringify(out)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, out, until, exited }
}

async function produce(topic: string, value: string) {
  const producer = testKafka(inject('kafkaBrokers')).producer()
  await producer.connect()
  await producer.send({
    topic,
    messages: [
      {
        key: 'order-1',
        value,
        headers: { id: 'e-1', type: 'order.created', aggregateType: 'order', aggregateId: 'order-1', tenant: 'acme' },
      },
    ],
  })
  await producer.disconnect()
}

test('--from-beginning --json prints each record as one JSON line; Ctrl-C exits 0', async () => {
  const topic = uniqueName('tail')
  await ensureTopics(inject('kafkaBrokers'), [topic])
  await produce(topic, '{"id": 1, "total": "12.50"}')
  const run = tail([topic, '--from-beginning', '--json'])
  await run.until(() => run.out.stdout.includes('\n'), 'record')
  const record = JSON.parse(run.out.stdout.split('\n')[0] as string)
  expect(record).toMatchObject({
    topic,
    key: 'order-1',
    headers: { id: 'e-1', type: 'order.created', tenant: 'acme' },
    value: { id: 1, total: '12.50' },
  })
  run.child.kill('SIGINT')
  expect(await run.exited).toBe(0)
})

test('a topic that does not exist yet: it says it waits, then prints the first record readably', async () => {
  const topic = uniqueName('tail')
  const run = tail([topic, '--from-beginning'])
  await run.until(() => run.out.stderr.includes('waiting for topic'), 'waiting note')
  expect(run.out.stderr).toContain(`outbox-worker: waiting for topic ${topic} on `)
  await ensureTopics(inject('kafkaBrokers'), [topic])
  await produce(topic, '{"id": 1}')
  await run.until(() => run.out.stdout.includes('{"id": 1}'), 'record')
  expect(run.out.stdout).toMatch(
    new RegExp(
      `^${topic}/\\d+@0  \\S+  key=order-1  type=order.created  id=e-1  headers=\\{"tenant":"acme"\\}\\n  \\{"id": 1\\}\\n`,
    ),
  )
  run.child.kill('SIGINT')
  expect(await run.exited).toBe(0)
})

test('Kafka unreachable: exit 3 naming the brokers and the fix', async () => {
  const run = tail(['orders'], '127.0.0.1:1')
  expect(await run.exited).toBe(3)
  expect(run.out.stderr).toMatch(
    /^outbox-worker: cannot reach Kafka at 127\.0\.0\.1:1 \(.*\): check KAFKA_BROKERS and that the brokers are up\n$/,
  )
})
