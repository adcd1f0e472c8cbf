/** `npm run demo` must keep working for a newcomer: run it on the suite's services and check its verdict. */
import { expect, inject, test } from 'vitest'
import { runNode } from '../helpers/cli.js'

/** Runs a demo script as `npm run demo` does, on the suite's services, with `orders` orders. */
function runDemo(script: string, orders: number) {
  return runNode(
    ['--import', 'tsx', script],
    {
      DATABASE_URL: inject('databaseUrl'),
      KAFKA_BROKERS: inject('kafkaBrokers').join(','),
      DEMO_ORDERS: String(orders),
    },
    { timeoutMs: 110_000 },
  )
}

test('the demo commits, kills and restarts the worker, and ends with nothing lost (exit 0)', async () => {
  // Piped, as `npm run demo > demo.log` would be: no terminal, so no spinner and no colors.
  const { code, stdout, all: output } = await runDemo('test/demo/run.ts', 24)
  expect(output).toContain('kill -9 of the worker')
  expect(output).toMatch(/\[kafka\]\s+\S+\.order key=\d+ order\.created/)
  expect(output).toMatch(/committed\s+\d+ events, delivered \d+ \(lost 0\)/)
  expect(output).toMatch(/rolled back\s+\d+ events, delivered 0/)
  expect(code).toBe(0)
  // Latency is timed from the moment the COMMIT is sent: never negative.
  expect(output).not.toMatch(/ -\d+ ms/)

  // Readable in a file: no escape codes; each event's whole id, so two events never look alike.
  expect(output).not.toContain('\x1b')
  const shownIds = [...stdout.matchAll(/\[kafka\].* id=(\S+)/g)].map((m) => m[1])
  expect(shownIds.length).toBeGreaterThan(0)
  for (const id of shownIds) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  // The summary is the last thing printed: nothing from the worker or the app after it.
  const lines = stdout.trimEnd().split('\n')
  const after = lines.slice(lines.indexOf('Summary') + 1)
  expect(lines).toContain('Summary')
  expect(after.filter((line) => !line.startsWith('  '))).toEqual([])
  expect(after.at(-1)).toMatch(/^ {2}OK: /)
})

test('the billing demo (npm run demo:billing) bills every order once through a kill -9 of the consumer (exit 0)', async () => {
  const { code, all: output } = await runDemo('test/demo/billing.ts', 60)
  expect(output).toContain('kill -9 of the billing consumer')
  expect(output).toMatch(/invoices written\s+60 for 60 orders; events applied twice: 0/)
  expect(code, output).toBe(0)
})
