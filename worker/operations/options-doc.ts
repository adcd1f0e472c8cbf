/**
 * The worker's options as people read them: the rows of `--help` and the table in docs/worker.md,
 * both rendered from OPTIONS and DEFAULTS so neither can drift from the code; and the metrics
 * table of docs/operations.md, from the registry itself. `npm run docs:options` rewrites both
 * tables between their markers; test/unit/docs.test.ts fails when a committed one differs.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DEFAULTS, EXACTLY_ONCE_BUFFER_EVENTS, OPTIONS, type OptionSpec, parseDuration } from './config.js'
import { EXIT } from './errors.js'
import { createMetrics } from './metrics.js'

export const TABLE_START = '<!-- options:start: generated from worker/operations/config.ts by npm run docs:options -->'
export const TABLE_END = '<!-- options:end -->'

/** Defaults that depend on other options, said in words. */
const SPECIAL_DEFAULTS: Partial<Record<OptionSpec['key'], string>> = {
  databaseUrl: '(required)',
  kafkaBrokers: '(required)',
  kafkaClient: 'platformatic (kafkajs with --delivery exactly-once)',
  bufferEvents: `${DEFAULTS.bufferEvents} (${EXACTLY_ONCE_BUFFER_EVENTS} with --delivery exactly-once)`,
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

/** The description, saying for a secret that a file may hold it (unless it says so already). */
function described(option: OptionSpec): string {
  const file = `${option.env}_FILE`
  return option.envOnly && !option.description.includes(file)
    ? `${option.description}; or ${file}, the path of a file holding it`
    : option.description
}

/** The option rows of `--help`. */
export function helpRows(): string[] {
  return OPTIONS.map((o) => {
    const def = defaultText(o)
    // "(required)" and the like are said by the description already.
    const shown = def === '' || def.startsWith('(') ? '' : ` (default: ${def})`
    const flag = o.envOnly ? '(environment only)' : `--${o.flag}`
    return `  ${flag.padEnd(28)} ${o.env.padEnd(28)} ${described(o)}${shown}`
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

export const METRICS_START =
  '<!-- metrics:start: generated from worker/operations/metrics.ts by npm run docs:options -->'
export const METRICS_END = '<!-- metrics:end -->'

/** The Markdown table of docs/operations.md: every metric of a worker, its type, labels and help. */
export function metricsTable(): string {
  const metrics = createMetrics().registry.getMetricsAsArray() as unknown as {
    name: string
    help: string
    labelNames?: string[]
    constructor: { name: string }
  }[]
  const rows = metrics.map((m) => {
    const labels = m.labelNames?.length ? `{${m.labelNames.join(',')}}` : ''
    return `| \`${m.name}${labels}\` | ${m.constructor.name.toLowerCase()} | ${cell(m.help)} |`
  })
  return [METRICS_START, '| metric | type | |', '|---|---|---|', ...rows, METRICS_END].join('\n')
}

export const EXITS_START =
  '<!-- exit-codes:start: generated from worker/operations/options-doc.ts by npm run docs:options -->'
export const EXITS_END = '<!-- exit-codes:end -->'

/** What each exit code means: a few words for --help, a sentence for the docs. */
const EXIT_MEANINGS: Record<keyof typeof EXIT, { short: string; long: string }> = {
  ok: { short: 'ok', long: 'stopped cleanly (SIGTERM, SIGINT)' },
  failure: { short: 'failure', long: 'failure' },
  config: {
    short: 'bad configuration',
    long: 'bad configuration: one line on stderr naming the problem and the fix, with the flag or variable as you wrote it; also a health port already in use (a second worker on the host: give it another `HEALTH_PORT`, or `0`)',
  },
  setup: {
    short: 'database or Kafka not set up / unreachable at start',
    long: 'database or Kafka not set up, or unreachable for `--startup-timeout-ms` at start; a login PostgreSQL refuses (wrong password, no `pg_hba.conf` entry) and a database that does not exist fail at once instead of being retried',
  },
  poison: { short: 'poison event with --on-poison stop', long: 'a poison event with `--on-poison stop`' },
}

/** The exit codes line of `--help`. */
export function exitCodesLine(): string {
  const codes = (Object.keys(EXIT) as (keyof typeof EXIT)[]).map((k) => `${EXIT[k]} ${EXIT_MEANINGS[k].short}`)
  return `Exit codes: ${codes.join(', ')}`
}

/** The exit codes table of docs/worker.md. */
export function exitCodesTable(): string {
  const rows = (Object.keys(EXIT) as (keyof typeof EXIT)[]).map(
    (k) => `| \`${EXIT[k]}\` | ${cell(EXIT_MEANINGS[k].long)} |`,
  )
  return [EXITS_START, '| code | meaning |', '|---|---|', ...rows, EXITS_END].join('\n')
}

/** `markdown` with the text between `start` and `end` replaced by `table` (markers included). */
function between(markdown: string, start: string, end: string, table: string): string {
  const from = markdown.indexOf(start)
  const to = markdown.indexOf(end)
  if (from === -1 || to === -1 || to < from) throw new Error(`the table markers are missing: add ${start} and ${end}`)
  return markdown.slice(0, from) + table + markdown.slice(to + end.length)
}

/** Each generated page, and how to render it from its committed text. */
export const GENERATED_PAGES: Record<string, (markdown: string) => string> = {
  'docs/worker.md': (markdown) =>
    between(between(markdown, TABLE_START, TABLE_END, optionsTable()), EXITS_START, EXITS_END, exitCodesTable()),
  'docs/operations.md': (markdown) => between(markdown, METRICS_START, METRICS_END, metricsTable()),
}

// `npm run docs:options`: rewrite the generated tables.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const [page, render] of Object.entries(GENERATED_PAGES)) {
    const file = join(process.cwd(), page)
    writeFileSync(file, render(readFileSync(file, 'utf8')))
    process.stdout.write(`rewrote the generated tables in ${page}\n`)
  }
}
