import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { initApp } from '../../worker/init.js'

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
