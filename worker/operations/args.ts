/**
 * The command line in the user's words: flags as typed (`--health-port`), variables as set
 * (`HEALTH_PORT`), and our own messages for unknown or incomplete flags instead of Node's.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type ConfigInput, type Key, OPTIONS, resolveConfig, type WorkerConfig } from './config.js'
import { OutboxConfigError } from './errors.js'

export const COMMANDS = ['run', 'init', 'status', 'republish', 'tail', 'help'] as const
export type Command = (typeof COMMANDS)[number]
type Values = Record<string, string | boolean | undefined>

/** Flags of the subcommands and of the CLI itself, besides the worker's options. */
const EXTRA_FLAGS: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  json: { type: 'boolean' },
  schema: { type: 'string' },
  migrations: { type: 'string' },
  inbox: { type: 'boolean' },
  since: { type: 'string' },
  config: { type: 'string' },
  'env-file': { type: 'string' },
  'from-beginning': { type: 'boolean' },
}

/** Flags that mean something to some commands only: given to another, refused rather than ignored. */
const COMMAND_FLAGS: Record<string, Command[]> = {
  schema: ['init'],
  migrations: ['init'],
  inbox: ['init'],
  config: ['init'],
  since: ['republish'],
  'from-beginning': ['tail'],
  json: ['status', 'tail'],
}

const SEE_HELP = 'see outbox-worker --help'

export function parseCommandLine(argv: string[]): { command: Command; values: Values; topic?: string } {
  const flags = { ...EXTRA_FLAGS }
  for (const o of OPTIONS) if (!o.envOnly) flags[o.flag] = { type: o.isSwitch ? 'boolean' : 'string' }
  // Not strict: unknown and incomplete flags are reported below, in our words.
  const { tokens } = parseArgs({ args: argv, options: flags, allowPositionals: true, strict: false, tokens: true })
  const values: Values = {}
  const positionals: string[] = []
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value)
    if (token.kind !== 'option') continue
    const spec = flags[token.name]
    const secret = OPTIONS.find((o) => o.envOnly && o.flag === token.name)
    if (secret)
      throw new OutboxConfigError(
        `${token.rawName} is not accepted: a flag shows in ps to every user of the machine; set ${secret.env} in the environment, or ${secret.env}_FILE to the path of a file holding it`,
      )
    if (!spec)
      throw new OutboxConfigError(`unknown option ${token.rawName}${suggestion(token.rawName, flags)} (${SEE_HELP})`)
    if (spec.type === 'string') {
      // parseArgs takes the next argument as the value even when it is another flag.
      if (token.value === undefined || (!token.inlineValue && /^--?[A-Za-z]/.test(token.value))) {
        throw new OutboxConfigError(`${token.rawName} needs a value: ${token.rawName} <value> (${SEE_HELP})`)
      }
      values[token.name] = token.value
    } else {
      // A switch: `--kafka-ssl` alone is true; `--kafka-ssl=false` is read as written.
      values[token.name] = token.value === undefined ? true : token.value
    }
  }
  const command = (positionals[0] ?? 'run') as Command
  if (!COMMANDS.includes(command))
    throw new OutboxConfigError(
      `unknown command "${positionals[0]}": use run, init, status, republish or tail (${SEE_HELP})`,
    )
  for (const [flag, commands] of Object.entries(COMMAND_FLAGS)) {
    if (values[flag] !== undefined && !commands.includes(command) && command !== 'help' && !values.help)
      throw new OutboxConfigError(
        `--${flag} applies to ${commands.map((c) => `outbox-worker ${c}`).join(' and ')}, not to ${command} (${SEE_HELP})`,
      )
  }
  // `tail` takes the topic; no other command takes an argument.
  const extra = command === 'tail' ? 2 : 1
  if (positionals.length > extra)
    throw new OutboxConfigError(`unexpected argument "${positionals[extra]}" (${SEE_HELP})`)
  if (command === 'tail' && positionals[1] === undefined)
    throw new OutboxConfigError(`tail needs a topic: outbox-worker tail <topic> [--from-beginning] [--json]`)
  return command === 'tail' ? { command, values, topic: positionals[1] } : { command, values }
}

/** `--health_port`, `--healthport`, `--HEALTH_PORT`: the flag that was probably meant. */
function suggestion(rawName: string, flags: Record<string, unknown>): string {
  const squash = (name: string) => name.replace(/[^a-z0-9]/gi, '').toLowerCase()
  const near = Object.keys(flags).find((flag) => squash(flag) === squash(rawName))
  return near ? `: did you mean --${near}?` : ''
}

/**
 * Flags, then environment variables, each parsed by its option's own parser and named as the
 * user wrote it; then validated once.
 */
export function configFrom(values: Values, env: NodeJS.ProcessEnv, requireKafka: boolean): WorkerConfig {
  const options: Record<string, unknown> = {}
  const names: Partial<Record<Key, string>> = {}
  for (const o of OPTIONS) {
    const fromFlag = o.envOnly ? undefined : values[o.flag]
    const fromFile = o.envOnly && !env[o.env] && env[`${o.env}_FILE`] ? `${o.env}_FILE` : undefined
    const raw =
      fromFlag !== undefined ? fromFlag : fromFile ? readSecretFile(fromFile, env[fromFile] as string) : env[o.env]
    if (raw === undefined || raw === '') continue
    const name = fromFlag !== undefined ? `--${o.flag}` : (fromFile ?? o.env)
    names[o.key] = name
    options[o.key] = typeof raw === 'boolean' ? raw : o.parse(raw, name)
  }
  return resolveConfig(options as ConfigInput, { requireKafka, names })
}

/** A secret from a file (a mounted Docker or Kubernetes secret): its text, without the final newline. */
function readSecretFile(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (error) {
    throw new OutboxConfigError(
      `${variable}=${path} cannot be read (${(error as NodeJS.ErrnoException).code}): check the path`,
    )
  }
}
