/**
 * The worker's options as people read them: the rows of `--help` and the table in docs/worker.md,
 * both rendered from OPTIONS and DEFAULTS so neither can drift from the code. `npm run
 * docs:options` rewrites the table between its markers; test/unit/docs.test.ts fails when the
 * committed one differs.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DEFAULTS, OPTIONS, type OptionSpec, parseDuration } from './config.js'

export const TABLE_START = '<!-- options:start: generated from worker/operations/config.ts by npm run docs:options -->'
export const TABLE_END = '<!-- options:end -->'

/** Defaults that depend on other options, said in words. */
const SPECIAL_DEFAULTS: Partial<Record<OptionSpec['key'], string>> = {
  databaseUrl: '(required)',
  kafkaBrokers: '(required)',
  kafkaClient: 'platformatic (kafkajs with --delivery exactly-once)',
  transactionalId: 'prisma-outbox.<system identifier>.<database>.<slot>',
  checkpointTopic: '<transactional id>.checkpoint',
  retentionMs: 'off',
}

/** `60000` as the option is written: `60s`, `2m`, `7d` (the largest unit that makes at least 2). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= 2 * size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}

/** The default of one option as the user would type it; '' when it has none. */
export function defaultText(option: OptionSpec): string {
  const special = SPECIAL_DEFAULTS[option.key]
  if (special !== undefined) return special
  const value = (DEFAULTS as Record<string, unknown>)[option.key]
  if (value === undefined) return ''
  if (option.parse === parseDuration && typeof value === 'number') return formatDuration(value)
  return String(value)
}

/** How the option is given: its flag, or its variables only (secrets: a flag shows in `ps`). */
function variables(option: OptionSpec): string {
  return option.envOnly ? `${option.env} or ${option.env}_FILE` : option.env
}

/** The option rows of `--help`. */
export function helpRows(): string[] {
  return OPTIONS.map((o) => {
    const def = defaultText(o)
    const shown = def === '' ? '' : ` (default: ${def})`
    const flag = o.envOnly ? '(environment only)' : `--${o.flag}`
    return `  ${flag.padEnd(28)} ${variables(o).padEnd(28)} ${o.description}${shown}`
  })
}

const cell = (text: string) => text.replace(/\|/g, '\\|')
const code = (text: string) => (text === '' ? '' : `\`${text}\``)

/** The Markdown table of docs/worker.md, markers included. */
export function optionsTable(): string {
  const rows = OPTIONS.map((o) => {
    const flag = o.envOnly ? '(environment only)' : code(`--${o.flag}`)
    const env = o.envOnly ? `${code(o.env)} or ${code(`${o.env}_FILE`)}` : code(o.env)
    const def = defaultText(o)
    const shownDefault = def.startsWith('(') ? def : code(def)
    return `| ${flag} | ${env} | ${cell(shownDefault)} | ${cell(o.description)} |`
  })
  return [TABLE_START, '| flag | variable | default | |', '|---|---|---|---|', ...rows, TABLE_END].join('\n')
}

/** `markdown` with the table between the markers replaced by the generated one. */
export function withOptionsTable(markdown: string): string {
  const start = markdown.indexOf(TABLE_START)
  const end = markdown.indexOf(TABLE_END)
  if (start === -1 || end === -1 || end < start)
    throw new Error(`the options table markers are missing: add ${TABLE_START} and ${TABLE_END}`)
  return markdown.slice(0, start) + optionsTable() + markdown.slice(end + TABLE_END.length)
}

export const OPTIONS_PAGE = 'docs/worker.md'

// `npm run docs:options`: rewrite the table in docs/worker.md.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const page = join(process.cwd(), OPTIONS_PAGE)
  writeFileSync(page, withOptionsTable(readFileSync(page, 'utf8')))
  process.stdout.write(`rewrote the options table in ${OPTIONS_PAGE}\n`)
}
