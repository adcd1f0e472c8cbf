import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { initApp } from '../../worker/operations/init.js'

const model = readFileSync('prisma/outbox/model.prisma', 'utf8')
const migration = readFileSync('prisma/outbox/migration.sql', 'utf8')
const appSchema = 'datasource db {\n  provider = "postgresql"\n}\n\nmodel User {\n  id Int @id\n}\n'
let app: string

beforeEach(() => {
  app = mkdtempSync(join(tmpdir(), 'outbox-init-'))
})
afterEach(() => rmSync(app, { recursive: true, force: true }))

describe('outbox-worker init', () => {
  test('adds the model and the migration, then a second run changes nothing and says so', () => {
    mkdirSync(join(app, 'prisma'))
    writeFileSync(join(app, 'prisma/schema.prisma'), appSchema)
    const first = initApp({ cwd: app, now: new Date('2026-11-22T10:11:12Z') })
    expect(first.written).toEqual(['prisma/schema.prisma', 'prisma/migrations/20261122101112_outbox/migration.sql'])
    const schema = readFileSync(join(app, 'prisma/schema.prisma'), 'utf8')
    expect(schema.startsWith(appSchema.trimEnd())).toBe(true)
    expect(schema).toContain(model.trim())
    expect(readFileSync(join(app, 'prisma/migrations/20261122101112_outbox/migration.sql'), 'utf8')).toBe(migration)

    const second = initApp({ cwd: app, now: new Date('2026-11-23T00:00:00Z') })
    expect(second.written).toEqual([])
    expect(second.messages.join('\n')).toMatch(/nothing to do/)
    expect(readFileSync(join(app, 'prisma/schema.prisma'), 'utf8')).toBe(schema)
    expect(readdirSync(join(app, 'prisma/migrations'))).toEqual(['20261122101112_outbox'])
  })

  test('--inbox adds the Inbox model and the inbox migration next to the outbox ones, once', () => {
    mkdirSync(join(app, 'prisma'))
    writeFileSync(join(app, 'prisma/schema.prisma'), appSchema)
    initApp({ cwd: app, now: new Date('2026-11-22T10:11:12Z') })
    const inbox = initApp({ cwd: app, now: new Date('2026-11-22T10:11:13Z'), inbox: true })
    expect(inbox.written).toEqual(['prisma/schema.prisma', 'prisma/migrations/20261122101113_inbox/migration.sql'])
    const schema = readFileSync(join(app, 'prisma/schema.prisma'), 'utf8')
    expect(schema).toContain(model.trim())
    expect(schema).toContain(readFileSync('prisma/outbox/inbox-model.prisma', 'utf8').trim())
    expect(readFileSync(join(app, 'prisma/migrations/20261122101113_inbox/migration.sql'), 'utf8')).toBe(
      readFileSync('prisma/outbox/inbox-migration.sql', 'utf8'),
    )
    const again = initApp({ cwd: app, now: new Date('2026-11-23T00:00:00Z'), inbox: true })
    expect(again.written).toEqual([])
    expect(again.messages.join('\n')).toMatch(/Inbox model and migration are already in place/)
  })

  test('with a prisma/schema folder, writes outbox.prisma next to the other files', () => {
    mkdirSync(join(app, 'prisma/schema'), { recursive: true })
    writeFileSync(join(app, 'prisma/schema/main.prisma'), appSchema)
    const result = initApp({ cwd: app, now: new Date('2026-11-22T10:11:12Z') })
    expect(result.written).toEqual([
      'prisma/schema/outbox.prisma',
      'prisma/schema/migrations/20261122101112_outbox/migration.sql',
    ])
    expect(readFileSync(join(app, 'prisma/schema/outbox.prisma'), 'utf8')).toBe(model)
    expect(readFileSync(join(app, 'prisma/schema/main.prisma'), 'utf8')).toBe(appSchema)
    expect(initApp({ cwd: app }).written).toEqual([])
  })

  test('refuses an existing, different Outbox model and writes nothing', () => {
    mkdirSync(join(app, 'prisma'))
    const own = `${appSchema}\nmodel Outbox {\n  id Int @id\n}\n`
    writeFileSync(join(app, 'prisma/schema.prisma'), own)
    expect(() => initApp({ cwd: app })).toThrow(/already has a different model Outbox/)
    expect(readFileSync(join(app, 'prisma/schema.prisma'), 'utf8')).toBe(own)
    expect(readdirSync(join(app, 'prisma'))).toEqual(['schema.prisma'])
  })

  test('a missing schema is a clear error', () => {
    expect(() => initApp({ cwd: app })).toThrow(/no Prisma schema at prisma\/schema: pass --schema/)
  })

  test('honours --schema and --migrations', () => {
    writeFileSync(join(app, 'db.prisma'), appSchema)
    const result = initApp({ cwd: app, schema: 'db.prisma', migrations: 'sql', now: new Date('2026-11-22T10:11:12Z') })
    expect(result.written).toEqual(['db.prisma', 'sql/20261122101112_outbox/migration.sql'])
  })
})

describe('outbox-worker init with a Prisma 7 config file', () => {
  const config = (body: string) =>
    [
      "import 'dotenv/config'",
      "import path from 'node:path'",
      "import { defineConfig, env } from 'prisma/config'",
      // Were init to run the file, this would throw: it only reads it.
      "throw new Error('prisma.config.ts was executed')",
      `export default defineConfig({\n${body}\n  datasource: { url: env('DATABASE_URL') },\n})\n`,
    ].join('\n')
  const now = new Date('2026-11-22T10:11:12Z')

  test("schema and migrations.path from prisma.config.ts (schema: 'db/schema.prisma')", () => {
    mkdirSync(join(app, 'db'))
    writeFileSync(join(app, 'db/schema.prisma'), appSchema)
    writeFileSync(
      join(app, 'prisma.config.ts'),
      config(
        "  // schema: 'prisma/schema.prisma',\n  schema: 'db/schema.prisma',\n  migrations: { path: 'db/migrations', seed: 'tsx db/seed.ts' },",
      ),
    )
    const result = initApp({ cwd: app, now })
    expect(result.written).toEqual(['db/schema.prisma', 'db/migrations/20261122101112_outbox/migration.sql'])
    expect(result.messages[0]).toBe('using the paths in prisma.config.ts')
    expect(readFileSync(join(app, 'db/schema.prisma'), 'utf8')).toContain(model.trim())
  })

  test('only schema set: the migrations go next to it, as Prisma puts them', () => {
    mkdirSync(join(app, 'db'))
    writeFileSync(join(app, 'db/schema.prisma'), appSchema)
    writeFileSync(join(app, 'prisma.config.ts'), config("  schema: path.join(__dirname, 'db', 'schema.prisma'),"))
    expect(initApp({ cwd: app, now }).written).toEqual([
      'db/schema.prisma',
      'db/migrations/20261122101112_outbox/migration.sql',
    ])
  })

  test('.config/prisma.ts: paths are relative to the file', () => {
    mkdirSync(join(app, '.config'))
    mkdirSync(join(app, 'db/schema'), { recursive: true })
    writeFileSync(join(app, 'db/schema/main.prisma'), appSchema)
    writeFileSync(join(app, '.config/prisma.ts'), config('  schema: "../db/schema",'))
    expect(initApp({ cwd: app, now }).written).toEqual([
      'db/schema/outbox.prisma',
      'db/schema/migrations/20261122101112_outbox/migration.sql',
    ])
  })

  test('flags win over the config file', () => {
    writeFileSync(join(app, 'other.prisma'), appSchema)
    writeFileSync(join(app, 'prisma.config.ts'), config("  schema: 'db/schema.prisma',"))
    expect(initApp({ cwd: app, now, schema: 'other.prisma', migrations: 'sql' }).written).toEqual([
      'other.prisma',
      'sql/20261122101112_outbox/migration.sql',
    ])
  })

  test('a schema path the file computes is not guessed: init asks for --schema', () => {
    writeFileSync(join(app, 'prisma.config.ts'), config('  schema: process.env.PRISMA_SCHEMA,'))
    expect(() => initApp({ cwd: app, now })).toThrow(
      'prisma.config.ts sets schema with an expression init cannot read without running the file: pass --schema <file or folder>',
    )
  })

  test('a schema the file names but that is missing says where the path came from', () => {
    writeFileSync(join(app, 'prisma.config.ts'), config("  schema: 'db/schema.prisma',"))
    expect(() => initApp({ cwd: app, now })).toThrow(
      'no Prisma schema at db/schema.prisma (the schema in prisma.config.ts): pass --schema <file or folder>',
    )
  })

  test('prisma7.config.ts, which prisma init of Prisma 7.10 writes, is found first, as Prisma finds it', () => {
    mkdirSync(join(app, 'db'))
    writeFileSync(join(app, 'db/schema.prisma'), appSchema)
    writeFileSync(
      join(app, 'prisma7.config.ts'),
      config("  schema: 'db/schema.prisma',\n  migrations: { path: 'db/sql' },"),
    )
    // Prisma reads prisma7.config.* before prisma.config.*: so does init.
    writeFileSync(join(app, 'prisma.config.ts'), config("  schema: 'elsewhere.prisma',"))
    const result = initApp({ cwd: app, now })
    expect(result.messages[0]).toBe('using the paths in prisma7.config.ts')
    expect(result.written).toEqual(['db/schema.prisma', 'db/sql/20261122101112_outbox/migration.sql'])
  })

  test('.config/prisma.config/index.ts, a folder form Prisma accepts', () => {
    mkdirSync(join(app, '.config/prisma.config'), { recursive: true })
    mkdirSync(join(app, 'db'))
    writeFileSync(join(app, 'db/schema.prisma'), appSchema)
    writeFileSync(join(app, '.config/prisma.config/index.ts'), config("  schema: '../../db/schema.prisma',"))
    expect(initApp({ cwd: app, now }).written[0]).toBe('db/schema.prisma')
  })

  test('--config names the file; a missing one is an error naming the flag', () => {
    mkdirSync(join(app, 'db'))
    writeFileSync(join(app, 'db/schema.prisma'), appSchema)
    writeFileSync(join(app, 'custom.config.ts'), config("  schema: 'db/schema.prisma',"))
    expect(initApp({ cwd: app, now, config: 'custom.config.ts' }).messages[0]).toBe(
      'using the paths in custom.config.ts',
    )
    expect(() => initApp({ cwd: app, now, config: 'nope.ts' })).toThrow(
      '--config nope.ts: no such file; give the path of your Prisma config file',
    )
  })
})
