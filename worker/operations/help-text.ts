/**
 * The text of `--help` that is rendered from OPTIONS, DEFAULTS and EXIT (options-doc.ts renders the
 * docs' tables from the same). Kept apart from options-doc.ts, which loads the metrics registry
 * (prom-client), so that `--help` loads nothing it does not print.
 */
import {
  DEFAULTS,
  EXACTLY_ONCE_BATCH_SIZE,
  EXACTLY_ONCE_BUFFER_BYTES,
  EXACTLY_ONCE_BUFFER_EVENTS,
  OPTIONS,
  type OptionSpec,
  parseDuration,
} from './config.js'
import { EXIT } from './errors.js'

/** Defaults that depend on other options, said in words. */
const SPECIAL_DEFAULTS: Partial<Record<OptionSpec['key'], string>> = {
  databaseUrl: '(required)',
  kafkaBrokers: '(required)',
  batchSize: `${DEFAULTS.batchSize} (${EXACTLY_ONCE_BATCH_SIZE} with --delivery exactly-once)`,
  bufferEvents: `${DEFAULTS.bufferEvents} (${EXACTLY_ONCE_BUFFER_EVENTS} with --delivery exactly-once)`,
  bufferBytes: `${DEFAULTS.bufferBytes} (${EXACTLY_ONCE_BUFFER_BYTES} with --delivery exactly-once)`,
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

/** What each exit code means: a few words for --help, a sentence for the docs. */
export const EXIT_MEANINGS: Record<keyof typeof EXIT, { short: string; long: string }> = {
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
