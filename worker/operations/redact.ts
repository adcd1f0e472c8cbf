/** Secrets shorter than this are left to the patterns: replacing a 1–3 character value everywhere would garble every line. */
const MIN_LITERAL = 4

/** The secret values of every configuration resolved in this process (see rememberSecrets). */
const known = new Set<string>()

/**
 * Remembers the secrets of a configuration, so that redact() replaces them wherever they appear,
 * not only where a pattern (a URL, `password=`) frames them: a driver or Kafka client may quote a
 * password bare. Each is remembered as written, percent-encoded (as in a URL) and JSON-escaped
 * (as in a log line). Process-wide, so that every printer (error messages, the CLI's logger, an
 * injected one) knows them without being handed the configuration.
 */
export function rememberSecrets(config: { databaseUrl?: string; kafkaSaslPassword?: string }): void {
  const values = [config.kafkaSaslPassword]
  try {
    const url = new URL(config.databaseUrl ?? '')
    values.push(decodeURIComponent(url.password))
    for (const [key, value] of url.searchParams) if (SECRET_KEY.test(key)) values.push(value)
  } catch {
    // not a URL: resolveConfig says so; the patterns still apply
  }
  for (const value of values) {
    if (!value || value.length < MIN_LITERAL) continue
    for (const form of [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)]) known.add(form)
  }
}

/** Names of fields and parameters whose value is a secret (a SASL password, an sslpassword, a key passphrase). */
export const SECRET_KEY = /pass(word|wd|phrase)|secret/i

/**
 * Removes secrets from anything that may be printed:
 * - the secrets of the configuration (rememberSecrets), wherever they appear;
 * - a URL's password: `postgres://user:secret@host` becomes `postgres://user:***@host`. The
 *   userinfo runs to the last '@' before the host (a raw '@' in a password, or in a user name,
 *   stays hidden); the placeholder `<password>` of our own hints is left alone;
 * - `password=secret` (a key/value connection string), `"password":"secret"` (JSON) and
 *   `password: 'secret'` (util.inspect): the value becomes `***`, its quotes kept so JSON stays JSON.
 * Applied to every log line and error message the worker writes.
 */
export function redact(text: string): string {
  let out = text
  // Longest first, so that a secret containing another is replaced whole.
  for (const secret of [...known].sort((a, b) => b.length - a.length)) out = out.split(secret).join('***')
  return out
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s"'`]*)@/gi, (match, scheme: string, userinfo: string) => {
      // The password follows the first ':' (a user name may hold an '@', a password anything).
      const start = userinfo.indexOf(':')
      if (start < 0 || userinfo.slice(start + 1) === '<password>') return match
      return `${scheme}${userinfo.slice(0, start)}:***@`
    })
    .replace(
      /(password["']?\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s&,}]+)/gi,
      (_, key: string, value: string) => `${key}${/^["']/.test(value) ? `${value[0]}***${value[0]}` : '***'}`,
    )
}

/**
 * A copy of `error` with its texts redacted (message, stack, any string field, its cause), of the
 * same class and with its other fields (a `code` to branch on), so that an error this package
 * throws carries no secret in its cause either.
 */
export function redactError(error: unknown, depth = 0): unknown {
  if (typeof error === 'string') return redact(error)
  if (!(error instanceof Error) || depth > 8) return error
  const copy = Object.create(Object.getPrototypeOf(error)) as Error
  for (const key of Object.getOwnPropertyNames(error)) {
    const field = Object.getOwnPropertyDescriptor(error, key) as PropertyDescriptor
    if ('value' in field)
      field.value =
        typeof field.value === 'string'
          ? redact(field.value)
          : key === 'cause'
            ? redactError(field.value, depth + 1)
            : field.value
    Object.defineProperty(copy, key, field)
  }
  return copy
}
