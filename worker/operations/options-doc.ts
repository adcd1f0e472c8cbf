/**
 * The worker's options as people read them: the table in docs/worker.md, rendered from OPTIONS and
 * DEFAULTS as the rows of `--help` are (help-text.ts), so neither can drift from the code; and the metrics
 * table of docs/operations.md, from the registry itself. `npm run docs:options` rewrites both
 * tables between their markers; test/unit/docs.test.ts fails when a committed one differs.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { OPTIONS } from './config.js'
import { EXIT } from './errors.js'
import { defaultText, EXIT_MEANINGS } from './help-text.js'
import { createMetrics } from './metrics.js'

export { defaultText, exitCodesLine, formatDuration, helpRows } from './help-text.js'

export const TABLE_START = '<!-- options:start: generated from worker/operations/config.ts by npm run docs:options -->'
export const TABLE_END = '<!-- options:end -->'

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
