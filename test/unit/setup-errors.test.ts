/**
 * An app that skipped `outbox-worker init` (or `prisma generate` after it) is told so at
 * `$extends`, with the commands, instead of `Cannot read properties of undefined (reading 'emit')`
 * on the first emit. The client here is really generated, from a schema without the Outbox model.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { PrismaPg } from '@prisma/adapter-pg'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { OutboxError, outbox } from '../../src/index.js'

// Under node_modules, so the generated code resolves @prisma/client's runtime.
const dir = join(import.meta.dirname, '../../node_modules/.cache/prisma-outbox-test-no-model')

beforeAll(() => {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, 'schema.prisma'),
    [
      'generator client {\n  provider = "prisma-client"\n  output   = "./generated"\n}',
      'datasource db {\n  provider = "postgresql"\n}',
      'model Order {\n  id Int @id\n}',
    ].join('\n\n'),
  )
  const prismaCli = createRequire(import.meta.url).resolve('prisma/build/index.js')
  const generated = spawnSync(process.execPath, [prismaCli, 'generate', '--schema', join(dir, 'schema.prisma')], {
    // As prisma/generate.mjs: generate needs no schema engine, but looks for one.
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath },
    encoding: 'utf8',
  })
  if (generated.status !== 0) throw new Error(`prisma generate failed:\n${generated.stdout}${generated.stderr}`)
}, 120_000)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test('outbox() on a client without the Outbox model fails at $extends, naming init and generate', async () => {
  const { PrismaClient } = await import(join(dir, 'generated/client.ts'))
  const client = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://unused@127.0.0.1:1/x' }) })
  const attempt = () => client.$extends(outbox())
  expect(attempt).toThrow(OutboxError)
  expect(attempt).toThrow(
    'prisma-outbox: this PrismaClient has no Outbox model, so there is no prisma.outbox to add emit to: run npx outbox-worker init (adds the model and its migration), then npx prisma generate',
  )
})
