import { defineConfig } from 'vitest/config'

// Files that change settings of the shared PostgreSQL cluster (max_slot_wal_keep_size,
// wal_sender_timeout): any slot or walsender of a file running beside them would feel it.
const clusterWide = ['test/integration/slot-states.test.ts', 'test/integration/network-faults.test.ts']

const services = {
  globalSetup: ['test/setup/services.ts'],
  testTimeout: 120_000,
  hookTimeout: 120_000,
}

// `npm test` runs every project. `unit` needs no service. `integration` gets real PostgreSQL and
// Kafka from test/setup/services.ts; each test has its own database, slot, publication and
// topics, so two of its files run at once (most of their time is spent waiting on the services,
// not on the 2 cores). Then the fault suite, two files at a time, each on services of its own
// (test/faults/environment.ts); then the files in `clusterWide`, one at a time, on services of
// their own. The fault suite does not run beside integration files: on a loaded machine its
// writers then committed too few events for a scenario to count (under 100; ~1,000 alone).
// Vitest runs projects of one groupOrder in one pool, so each of these three has its own.
export default defineConfig({
  test: {
    // Once per run, before any project: the package compiled as it ships, which spawned workers run.
    globalSetup: ['test/setup/build.ts'],
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
          include: ['test/integration/**/*.test.ts'],
          exclude: clusterWide,
          ...services,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
          sequence: { groupOrder: 2 },
        },
      },
      {
        test: {
          name: 'cluster-wide',
          include: clusterWide,
          ...services,
          fileParallelism: false,
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
})
