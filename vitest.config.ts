import { defineConfig } from 'vitest/config'

// Two projects: `unit` needs no service; `integration` (and the fault suite) get real
// PostgreSQL and Kafka from test/setup/services.ts. `npm test` runs both.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          typecheck: { enabled: true, include: ['test/unit/**/*.test-d.ts'] },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/faults/**/*.test.ts'],
          globalSetup: ['test/setup/services.ts'],
          // Files share one PostgreSQL and one Kafka on a 2-core machine: run them one at a time,
          // each test isolated by its own database, slot, publication and topics.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
