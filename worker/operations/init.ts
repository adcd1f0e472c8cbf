import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { readAsset } from './assets.js'
import { OutboxConfigError } from './errors.js'
import { readPrismaConfig } from './prisma-config.js'

export interface InitResult {
  /** What was written, as paths relative to cwd; empty when everything was already there. */
  written: string[]
  messages: string[]
}

const MODEL_START = /^model\s+Outbox\s*\{/m

/**
 * `outbox-worker init`: adds the Outbox model to the app's Prisma schema (a single file, or a new
 * outbox.prisma in a prisma/schema/ folder) and the outbox migration to its migrations folder.
 * Idempotent, and never overwrites a file of the user's.
 */
export function initApp(options: {
  schema?: string
  migrations?: string
  /** The Prisma config file; by default found where Prisma's CLI finds it. */
  config?: string
  cwd?: string
  now?: Date
}): InitResult {
  const cwd = options.cwd ?? process.cwd()
  // Flags win; then Prisma 7's config file (prisma.config.ts); then Prisma's default places.
  const config =
    options.schema === undefined || options.migrations === undefined ? readPrismaConfig(cwd, options.config) : undefined
  const schemaPath =
    options.schema !== undefined
      ? resolve(cwd, options.schema)
      : (config?.schema ??
        resolve(cwd, existsSync(join(cwd, 'prisma/schema.prisma')) ? 'prisma/schema.prisma' : 'prisma/schema'))
  if (!existsSync(schemaPath)) {
    const from = options.schema === undefined && config?.schema ? ` (the schema in ${config.file})` : ''
    throw new OutboxConfigError(
      `no Prisma schema at ${relative(cwd, schemaPath) || schemaPath}${from}: pass --schema <file or folder> (run prisma init first if the app has none)`,
    )
  }
  const isFolder = statSync(schemaPath).isDirectory()
  const schemaFiles = isFolder
    ? readdirSync(schemaPath, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.prisma'))
        .map((f) => join(schemaPath, f))
    : [schemaPath]
  const datasourceFile =
    schemaFiles.find((f) => /^datasource\s+\w+\s*\{/m.test(readFileSync(f, 'utf8'))) ?? schemaFiles[0] ?? schemaPath
  const migrationsDir =
    options.migrations !== undefined
      ? resolve(cwd, options.migrations)
      : (config?.migrations ?? join(isFolder ? dirname(datasourceFile) : dirname(schemaPath), 'migrations'))

  const result: InitResult = { written: [], messages: [] }
  if (config?.schema || config?.migrations) result.messages.push(`using the paths in ${config.file}`)
  const model = readAsset('model.prisma')
  addModel(schemaPath, isFolder, schemaFiles, model, cwd, result)
  addMigration(migrationsDir, readAsset('migration.sql'), options.now ?? new Date(), cwd, result)
  if (result.written.length === 0)
    result.messages.push('nothing to do: the Outbox model and migration are already in place')
  else
    result.messages.push(
      'next: npx prisma migrate deploy (or migrate dev), or apply the migration by hand (psql "$DATABASE_URL" -f <the migration.sql above>); then npx prisma generate',
    )
  return result
}

function addModel(
  schemaPath: string,
  isFolder: boolean,
  files: string[],
  model: string,
  cwd: string,
  result: InitResult,
): void {
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const match = MODEL_START.exec(text)
    if (!match) continue
    const existing = modelBlock(text, match.index)
    if (normalize(existing) === normalize(modelBlock(model, MODEL_START.exec(model)?.index ?? 0))) {
      result.messages.push(`model Outbox already in ${relative(cwd, file)}`)
      return
    }
    throw new OutboxConfigError(
      `${relative(cwd, file)} already has a different model Outbox: rename or remove it, or make it match prisma-outbox's model (prisma/outbox/model.prisma in the package)`,
    )
  }
  if (isFolder) {
    const target = join(schemaPath, 'outbox.prisma')
    if (existsSync(target))
      throw new OutboxConfigError(
        `${relative(cwd, target)} exists and has no Outbox model: move it aside and run init again`,
      )
    writeFileSync(target, model)
    result.written.push(relative(cwd, target))
  } else {
    const text = readFileSync(schemaPath, 'utf8')
    writeFileSync(schemaPath, `${text.replace(/\s*$/, '\n\n')}${model}`)
    result.written.push(relative(cwd, schemaPath))
  }
  result.messages.push(`added model Outbox to ${result.written[result.written.length - 1]}`)
}

function addMigration(dir: string, sql: string, now: Date, cwd: string, result: InitResult): void {
  if (existsSync(dir)) {
    for (const entry of readdirSync(dir)) {
      const file = join(dir, entry, 'migration.sql')
      if (existsSync(file) && normalize(readFileSync(file, 'utf8')) === normalize(sql)) {
        result.messages.push(`outbox migration already in ${relative(cwd, file)}`)
        return
      }
    }
  }
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14)
  const target = join(dir, `${stamp}_outbox`, 'migration.sql')
  if (existsSync(target))
    throw new OutboxConfigError(`${relative(cwd, target)} already exists: run init again in a second`)
  mkdirSync(dirname(target), { recursive: true })
  writeFileSync(target, sql)
  result.written.push(relative(cwd, target))
  result.messages.push(`added migration ${relative(cwd, target)}`)
}

/** The text of the block starting at `start`, through its closing brace. */
function modelBlock(text: string, start: number): string {
  const end = text.indexOf('\n}', start)
  return text.slice(start, end === -1 ? undefined : end + 2)
}

/** Compares schema text ignoring comments and whitespace differences. */
function normalize(text: string): string {
  return text
    .replace(/\/\/.*$/gm, '')
    .replace(/\s+/g, ' ')
    .trim()
}
