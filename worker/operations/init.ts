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

/** What `init` adds: the outbox (default), or with `--inbox` the inbox of createInbox consumers. */
interface Part {
  model: 'Outbox' | 'Inbox'
  modelFile: 'model.prisma' | 'inbox-model.prisma'
  migrationFile: 'migration.sql' | 'inbox-migration.sql'
  /** The schema file written in a prisma/schema/ folder, and the migration folder's suffix. */
  name: 'outbox' | 'inbox'
}
const OUTBOX: Part = { model: 'Outbox', modelFile: 'model.prisma', migrationFile: 'migration.sql', name: 'outbox' }
const INBOX: Part = {
  model: 'Inbox',
  modelFile: 'inbox-model.prisma',
  migrationFile: 'inbox-migration.sql',
  name: 'inbox',
}
const modelStart = (part: Part) => new RegExp(`^model\\s+${part.model}\\s*\\{`, 'm')

/**
 * `outbox-worker init`: adds the Outbox model (with `inbox`, the Inbox model and its migration) to the app's Prisma schema (a single file, or a new
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
  inbox?: boolean
}): InitResult {
  const part = options.inbox ? INBOX : OUTBOX
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
  const model = readAsset(part.modelFile)
  addModel(part, schemaPath, isFolder, schemaFiles, model, cwd, result)
  addMigration(part, migrationsDir, readAsset(part.migrationFile), options.now ?? new Date(), cwd, result)
  if (result.written.length === 0)
    result.messages.push(`nothing to do: the ${part.model} model and migration are already in place`)
  else
    result.messages.push(
      'next: npx prisma migrate deploy (or migrate dev), or apply the migration by hand (psql "$DATABASE_URL" -f <the migration.sql above>); then npx prisma generate',
    )
  return result
}

function addModel(
  part: Part,
  schemaPath: string,
  isFolder: boolean,
  files: string[],
  model: string,
  cwd: string,
  result: InitResult,
): void {
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const match = modelStart(part).exec(text)
    if (!match) continue
    const existing = modelBlock(text, match.index)
    if (normalize(existing) === normalize(modelBlock(model, modelStart(part).exec(model)?.index ?? 0))) {
      result.messages.push(`model ${part.model} already in ${relative(cwd, file)}`)
      return
    }
    throw new OutboxConfigError(
      `${relative(cwd, file)} already has a different model ${part.model}: rename or remove it, or make it match prisma-outbox's model (prisma/outbox/${part.modelFile} in the package)`,
    )
  }
  if (isFolder) {
    const target = join(schemaPath, `${part.name}.prisma`)
    if (existsSync(target))
      throw new OutboxConfigError(
        `${relative(cwd, target)} exists and has no ${part.model} model: move it aside and run init again`,
      )
    writeFileSync(target, model)
    result.written.push(relative(cwd, target))
  } else {
    const text = readFileSync(schemaPath, 'utf8')
    writeFileSync(schemaPath, `${text.replace(/\s*$/, '\n\n')}${model}`)
    result.written.push(relative(cwd, schemaPath))
  }
  result.messages.push(`added model ${part.model} to ${result.written[result.written.length - 1]}`)
}

function addMigration(part: Part, dir: string, sql: string, now: Date, cwd: string, result: InitResult): void {
  if (existsSync(dir)) {
    for (const entry of readdirSync(dir)) {
      const file = join(dir, entry, 'migration.sql')
      if (existsSync(file) && normalize(readFileSync(file, 'utf8')) === normalize(sql)) {
        result.messages.push(`${part.name} migration already in ${relative(cwd, file)}`)
        return
      }
    }
  }
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14)
  const target = join(dir, `${stamp}_${part.name}`, 'migration.sql')
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
