#!/usr/bin/env node
/**
 * `outbox-worker`: run the relay (default), `init` an app, or print `status`.
 * Flags win over environment variables; `--help` lists both with their defaults.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { OutboxError } from '../src/errors.js'
import { configFrom, parseCommandLine } from './operations/args.js'
import { packageRoot } from './operations/assets.js'
import { SHUTDOWN_WATCHDOG_EXTRA_MS, type WorkerConfig } from './operations/config.js'
import { loadEnvFile } from './operations/env-file.js'
import { EXIT, OutboxConfigError, OutboxPoisonEventError, OutboxSetupError } from './operations/errors.js'
import { exitCodesLine, helpRows } from './operations/help-text.js'
import { redact } from './operations/redact.js'

// Each command imports what it needs when it runs: the relay's modules (the Kafka clients, pg,
// pino) cost most of a second of CPU and tens of MB, which --help, init and status do not need.

function helpText(): string {
  return [
    'Usage: outbox-worker [run|init|status|republish|tail] [options]',
    '',
    'Commands:',
    '  run (default)   stream the outbox from the replication slot to Kafka',
    '  init            add the Outbox model and migration to a Prisma app: --schema <file|dir> --migrations <dir> --config <prisma config file>;',
    '                  --inbox adds the Inbox model and migration instead (consumers: prisma-outbox/inbox)',
    '  status          slot, lag, publication and confirmed LSN; --json for JSON; exit 3 when broken',
    '  republish       publish outbox rows again, in id order: --since <time|id> (after a lost slot)',
    '  tail <topic>    print what arrives on a Kafka topic: --from-beginning, --json (one JSON object a line)',
    '',
    'Options (flag, environment variable; flags win):',
    ...helpRows(),
    '  --env-file <path>            read variables from this file first (your .env); variables already set win',
    '  --help, -h                   this text',
    '  --version                    the package version',
    '',
    exitCodesLine(),
    '',
  ].join('\n')
}

function fail(message: string, code: number): never {
  process.stderr.write(`outbox-worker: ${redact(message)}\n`)
  process.exit(code)
}

async function run(config: WorkerConfig): Promise<never> {
  const [{ createLogger, logProcessWarnings }, { createWorker }] = await Promise.all([
    import('./operations/logger.js'),
    import('./worker.js'),
  ])
  const logger = createLogger(config.logLevel, config.logFormat)
  logProcessWarnings(logger)
  const worker = createWorker({ ...config, logger })
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting at once')
      process.exit(EXIT.failure)
    }
    logger.info({ signal }, 'stopping: flushing in-flight events, then confirming')
    // The watchdog must never keep the process alive by itself.
    setTimeout(() => {
      logger.error({}, 'shutdown took too long: exiting')
      process.exit(EXIT.failure)
    }, config.shutdownTimeoutMs + SHUTDOWN_WATCHDOG_EXTRA_MS).unref()
    void worker.stop()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    await worker.start()
    await worker.done
    process.exit(EXIT.ok)
  } catch (error) {
    const code =
      error instanceof OutboxPoisonEventError
        ? EXIT.poison
        : error instanceof OutboxSetupError
          ? EXIT.setup
          : error instanceof OutboxConfigError
            ? EXIT.config
            : EXIT.failure
    fail((error as Error).message, code)
  }
}

async function runTail(values: ReturnType<typeof parseCommandLine>['values'], topic: string): Promise<never> {
  // tail reads Kafka only: the database URL is neither needed nor checked.
  const config = configFrom(values, { ...process.env, DATABASE_URL: 'postgresql://unused/unused' }, true)
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  const { tail } = await import('./operations/tail.js')
  await tail(config, {
    topic,
    fromBeginning: values['from-beginning'] === true,
    json: values.json === true,
    write: (line) => process.stdout.write(line),
    note: (line) => process.stderr.write(`outbox-worker: ${line}\n`),
    signal: stop.signal,
  })
  process.exit(EXIT.ok)
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseCommandLine>
  try {
    parsed = parseCommandLine(process.argv.slice(2))
  } catch (error) {
    fail((error as Error).message, EXIT.config)
  }
  const { command, values } = parsed
  if (values.help || command === 'help') {
    process.stdout.write(helpText())
    return
  }
  if (values.version) {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8'))
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  try {
    if (typeof values['env-file'] === 'string') loadEnvFile(values['env-file'])
    if (command === 'init') {
      const { initApp } = await import('./operations/init.js')
      const result = initApp({
        schema: values.schema as string | undefined,
        migrations: values.migrations as string | undefined,
        config: values.config as string | undefined,
        inbox: values.inbox === true,
      })
      process.stdout.write(`${result.messages.join('\n')}\n`)
      return
    }
    if (command === 'tail') await runTail(values, parsed.topic as string)
    const config = configFrom(values, process.env, command !== 'status')
    if (command === 'status') {
      const { formatStatus, readStatus } = await import('./slot/status.js')
      const report = await readStatus(config).catch((error: Error) => {
        throw new OutboxSetupError(`cannot read status from PostgreSQL: ${error.message}`, {
          code: 'OUTBOX_UNREACHABLE',
        })
      })
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report))
      process.exit(report.healthy ? EXIT.ok : EXIT.setup)
    }
    if (command === 'republish') {
      const [{ createLogger }, { republish }] = await Promise.all([
        import('./operations/logger.js'),
        import('./slot/republish.js'),
      ])
      const logger = createLogger(config.logLevel, config.logFormat)
      await republish(config, values.since as string | undefined, logger)
      process.exit(EXIT.ok)
    }
    await run(config)
  } catch (error) {
    if (error instanceof OutboxConfigError) fail(error.message, EXIT.config)
    if (error instanceof OutboxSetupError) fail(error.message, EXIT.setup)
    if (error instanceof OutboxError) fail(error.message, EXIT.failure)
    fail((error as Error).message ?? String(error), EXIT.failure)
  }
}

await main()
