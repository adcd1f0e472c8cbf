/** `npm run demo` must keep working for a newcomer: run it on the suite's services and check its verdict. */
import { spawn } from 'node:child_process'
import { expect, inject, test } from 'vitest'

test('the demo commits, kills and restarts the worker, and ends with nothing lost (exit 0)', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/demo/run.ts'], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: inject('databaseUrl'),
      KAFKA_BROKERS: inject('kafkaBrokers').join(','),
      DEMO_ORDERS: '24',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => {
    output += d
  })
  child.stderr.on('data', (d) => {
    output += d
  })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  expect(output).toContain('kill -9 of the worker')
  expect(output).toMatch(/\[kafka\]\s+\S+\.order key=\d+ order\.created/)
  expect(output).toMatch(/committed\s+\d+ events, delivered \d+ \(lost 0\)/)
  expect(output).toMatch(/rolled back\s+\d+ events, delivered 0/)
  expect(code).toBe(0)
})
