import { createRequire } from 'node:module'
import { pino } from 'pino'
import type PinoPretty from 'pino-pretty'
import { redact, SECRET_KEY } from './redact.js'

/**
 * The logging surface the worker uses. Any logger with these methods can be injected (pino,
 * a test spy); `child` adds bound fields such as the component name.
 */
export interface Logger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
  child(fields: object): Logger
}

/**
 * The CLI's logger: JSON lines on stdout, or readable lines when stdout is a terminal (or
 * LOG_FORMAT=pretty). Every line passes through redact(), so a password inside an error
 * message from a driver never reaches the log.
 */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty'): Logger {
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true)
  const destination = usePretty
    ? prettyStream()({
        colorize: process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
        sync: true,
      })
    : pino.destination({ dest: 1, sync: true })
  const redacting = {
    write(line: string) {
      destination.write(redact(line))
    },
  }
  // Fields redacted before pino serializes them (a secret-named field, a URL object), and its
  // lines again after (what pino adds itself, such as an error's stack).
  return redactingLogger(
    pino({ level, base: { name: 'outbox-worker' }, timestamp: pino.stdTimeFunctions.isoTime }, redacting),
  )
}

/**
 * pino-pretty, loaded only for readable output: a JSON log (a container's) never needs it. Loaded
 * with require, synchronously, so createLogger stays synchronous; pino-pretty is CommonJS.
 */
function prettyStream(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty
}

/**
 * Sends Node's process warnings through `logger` instead of Node's own printer, which writes
 * free text to stderr and would break the one-JSON-object-per-line stream the CLI promises.
 * Node's printer is an ordinary 'warning' listener, so removing the listeners replaces it.
 */
export function logProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning')
  process.on('warning', (warning) => {
    const fields = { warning: warning.name, code: (warning as { code?: unknown }).code }
    // kafkajs 2.2.4 arms a timer with a negative delay on every connection (tulios/kafkajs#1751).
    // Node has always run such timers after 1 ms; Node 24 only started saying so. Nothing for an
    // operator to act on, so it is kept out of the default level.
    if (warning.name === 'TimeoutNegativeWarning') logger.debug(fields, warning.message)
    else logger.warn(fields, warning.message)
  })
}

/** Serializes an error for a log line: message, code, and its cause chain, without stack noise. */
export function errorFields(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { error: String(error) }
  const fields: Record<string, unknown> = { error: error.message, errorName: error.name }
  const code = (error as { code?: unknown }).code
  if (code !== undefined) fields.code = code
  const cause = (error as { cause?: unknown }).cause
  if (cause instanceof Error && cause.message !== error.message) fields.cause = cause.message
  return fields
}

/**
 * `logger`, with every message and every text inside its fields passed through redact(). The
 * worker wraps whatever logger it is given in this, once, so the rule holds for any logger: a
 * driver's message (an error's text, its cause) can quote a connection string with its password.
 */
export function redactingLogger(logger: Logger): Logger {
  const wrap = (level: 'debug' | 'info' | 'warn' | 'error') => (fields: object, message: string) =>
    logger[level](redactFields(fields) as object, redact(String(message)))
  return {
    debug: wrap('debug'),
    info: wrap('info'),
    warn: wrap('warn'),
    error: wrap('error'),
    child: (fields) => redactingLogger(logger.child(redactFields(fields) as object)),
  }
}

/** Beyond this depth a field is printed as redacted text rather than walked. */
const MAX_DEPTH = 8

/**
 * `value` with nothing secret left, as a logger will print it: texts redacted, in plain objects
 * and arrays; a field named like a secret (SECRET_KEY) masked; an Error becomes its redacted
 * fields; anything else (a URL, a Buffer, a class instance, a field nested too deep) becomes
 * redacted text, since a logger would print it its own way, unredacted.
 */
function redactFields(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redact(value)
  if (value === null || typeof value !== 'object') return value
  if (value instanceof Error) return redactFields(errorFields(value), depth)
  const proto = Object.getPrototypeOf(value)
  const plain = Array.isArray(value) || proto === Object.prototype || proto === null
  if (!plain || depth > MAX_DEPTH) return redact(asText(value))
  if (Array.isArray(value)) return value.map((item) => redactFields(item, depth + 1))
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      redact(key),
      SECRET_KEY.test(key) ? '***' : redactFields(item, depth + 1),
    ]),
  )
}

/** An object as text: its JSON (a URL's href, a Date's ISO form), bytes as UTF-8. */
function asText(value: object): string {
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8')
  try {
    const json = JSON.stringify(value, (_, item) =>
      ArrayBuffer.isView(item) || (item as { type?: unknown })?.type === 'Buffer' ? '[bytes]' : item,
    )
    if (json !== undefined && json !== '{}') return json.startsWith('"') ? (JSON.parse(json) as string) : json
  } catch {
    // a cycle, a BigInt: its own text will do
  }
  return String(value)
}

/** A logger that drops everything: the default for the programmatic API when none is given. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger
  },
}
