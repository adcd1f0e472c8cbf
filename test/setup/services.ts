import type { TestProject } from 'vitest/node'
import { type Services, startServices } from '../services/index.js'

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string
    kafkaBrokers: string[]
  }
}

let services: Services | undefined

/** Starts (or finds) PostgreSQL and Kafka once for the integration project, and stops them after. */
export async function setup(project: TestProject): Promise<void> {
  const started = Date.now()
  services = await startServices((line) => console.log(line))
  console.log(
    `services ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
      `PostgreSQL ${services.postgresVersion} (wal_level=logical), Apache Kafka ${services.kafkaVersion} (${services.source})`,
  )
  project.provide('databaseUrl', services.databaseUrl)
  project.provide('kafkaBrokers', services.kafkaBrokers)
}

export async function teardown(): Promise<void> {
  await services?.dispose()
}
