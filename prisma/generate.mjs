// Generates the example app's Prisma client (prisma/generated). Prisma 7's client needs no query
// engine, but `prisma generate` still tries to download the schema engine unless
// PRISMA_SCHEMA_ENGINE_BINARY names a file; where that download host is unreachable (CI here),
// any existing file will do, so default it to the node binary. An explicit setting wins.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const prismaCli = createRequire(import.meta.url).resolve('prisma/build/index.js')
const env = { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath }
const result = spawnSync(process.execPath, [prismaCli, 'generate', '--schema', 'prisma/schema.prisma'], {
  env,
  stdio: 'inherit',
})
process.exit(result.status ?? 1)
