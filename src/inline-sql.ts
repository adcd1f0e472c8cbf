/**
 * Parameters written into the SQL text as literals, for withOutbox: a statement sent in one
 * simple-query message together with COMMIT cannot have bind parameters.
 */

/**
 * A SQL string literal, read back as exactly `value` whatever `standard_conforming_strings` is:
 * quotes are doubled, and a value with a backslash becomes an E'' literal with backslashes
 * doubled. Validation has already refused U+0000, which no literal can carry.
 */
export function sqlLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('a SQL literal cannot contain U+0000')
  const quoted = value.replaceAll("'", "''")
  return value.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`
}

function literal(value: unknown): string {
  if (value === null || value === undefined) return 'NULL'
  if (typeof value === 'string') return sqlLiteral(value)
  // ARRAY[...] takes the element type from the cast that follows the placeholder ($1::uuid[]).
  if (Array.isArray(value))
    return `ARRAY[${value.map((item) => (Array.isArray(item) ? nested() : literal(item))).join(',')}]`
  throw new Error(`cannot write a ${typeof value} parameter as a SQL literal`)
}

function nested(): never {
  throw new Error('cannot write a nested array parameter as a SQL literal')
}

// A double-quoted identifier, a single-quoted string (E'' too: its backslashes never end it
// early, since a quote inside is always doubled), or a $n placeholder.
const TOKENS = /"(?:[^"]|"")*"|'(?:[^']|'')*'|\$(\d+)/g

/**
 * `sql` with every `$n` outside quotes replaced by `args[n - 1]` as a literal. Strings, null and
 * arrays of them are all `emit` ever passes; anything else throws.
 */
export function inlineParams(sql: string, args: readonly unknown[]): string {
  return sql.replace(TOKENS, (token, index: string | undefined) => {
    if (index === undefined) return token
    const position = Number(index) - 1
    if (position >= args.length) throw new Error(`the statement has no parameter $${index}`)
    return literal(args[position])
  })
}
