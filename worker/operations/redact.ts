/**
 * Removes passwords from anything that may be printed: `postgres://user:secret@host` becomes
 * `postgres://user:***@host`, and `password=secret` in a key/value connection string becomes
 * `password=***`. The placeholder `<password>` of our own hints (`postgresql://<user>:<password>@<host>`)
 * is left alone, so the hint stays readable. Applied to every log line and error message the worker writes.
 */
export function redact(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)(?!<password>@)[^@\s]*@/gi, '$1***@')
    .replace(/(password\s*=\s*)('[^']*'|"[^"]*"|[^\s&]+)/gi, '$1***')
}
