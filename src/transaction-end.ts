/**
 * What a statement sent inside a transaction does to the transaction, read from its SQL text as
 * PostgreSQL reads it, for withOutbox: the events it holds must go with the statement that
 * commits, and be dropped with the one that rolls back.
 *
 * - `commit`: exactly one statement, COMMIT or END [WORK | TRANSACTION] [AND NO CHAIN], in any
 *   case, with any whitespace, comments and semicolons around it. The session is then outside any
 *   transaction, and PostgreSQL commits each later statement on its own.
 * - `commit and chain`: the same with AND CHAIN, which starts a new transaction at once.
 * - `rollback`, `rollback and chain`: the same with ROLLBACK or ABORT.
 * - `prepare`: exactly one statement, PREPARE TRANSACTION.
 * - `unclear`: any other text in which a statement begins with COMMIT, END, ROLLBACK, ABORT or
 *   PREPARE: several statements, ROLLBACK TO SAVEPOINT, COMMIT PREPARED, a comment between the
 *   words… It may end the transaction (or part of it) in a way withOutbox cannot follow.
 * - `undefined`: no statement begins with one of those words, so the text cannot end the
 *   transaction (COMMIT inside a DO block, a procedure or a function is refused by PostgreSQL
 *   within a transaction block).
 *
 * Errors in reading fall on the side of `unclear`. Backslashes are where readings part: an E''
 * string escapes with them, and so does a plain '' string in a session with
 * standard_conforming_strings off, which the text alone does not tell. So text with an ending word
 * and a backslash inside any string is `unclear`, however it splits (see `statementsOf`).
 */
export type TransactionEnd = 'commit' | 'commit and chain' | 'rollback' | 'rollback and chain' | 'prepare' | 'unclear'

export function transactionEnd(sql: string): TransactionEnd | undefined {
  // Most statements hold none of the words: no need to read them through.
  if (!ANY_ENDING_WORD.test(sql)) return undefined
  const { statements, backslashInString } = statementsOf(sql)
  if (backslashInString) return 'unclear'
  const ending = statements.filter((s) => ENDING_WORD.test(s))
  if (ending.length === 0) return undefined
  const only = statements.length === 1 ? statements[0] : undefined
  if (only !== undefined) {
    const commit = exactly(COMMIT, only)
    if (commit) return commit.groups?.chain ? 'commit and chain' : 'commit'
    const rollback = exactly(ROLLBACK, only)
    if (rollback) return rollback.groups?.chain ? 'rollback and chain' : 'rollback'
    if (PREPARE.test(only)) return 'prepare'
  }
  return 'unclear'
}

const ENDING_WORD = /^(?:commit|end|rollback|abort|prepare)\b/i
const ANY_ENDING_WORD = /\b(?:commit|end|rollback|abort|prepare)\b/i
// `chain` is set for AND CHAIN, not for AND NO CHAIN: read from the match, never from a comment.
const COMMIT = /(?:commit|end)(?:\s+(?:work|transaction))?(?:\s+and\s+(?:no\s+chain|(?<chain>chain)))?/iy
const ROLLBACK = /(?:rollback|abort)(?:\s+(?:work|transaction))?(?:\s+and\s+(?:no\s+chain|(?<chain>chain)))?/iy
const PREPARE = /^prepare\s+transaction\b/i

/** The match of `pattern` when `statement` is it followed by nothing but whitespace and comments. */
function exactly(pattern: RegExp, statement: string): RegExpExecArray | undefined {
  pattern.lastIndex = 0
  const match = pattern.exec(statement)
  return match && skipBlank(statement, pattern.lastIndex) === statement.length ? match : undefined
}

/**
 * The statements of `sql`, each from its first word (past leading whitespace and comments) to the
 * semicolon that ends it; empty statements left out. Semicolons inside quotes, dollar quotes and
 * comments do not end a statement.
 *
 * `backslashInString`: a string literal holds a backslash. Plain strings are read here with
 * standard_conforming_strings on; with it off, PostgreSQL reads them as E'' strings. The two
 * readings differ only at a backslash inside a string, so up to the first one the split is right
 * whatever the setting, and past it the caller must not trust it.
 */
function statementsOf(sql: string): { statements: string[]; backslashInString: boolean } {
  const statements: string[] = []
  let backslashInString = false
  let start = skipBlank(sql, 0)
  let i = start
  while (i < sql.length) {
    const char = sql[i] as string
    if (char === ';') {
      if (i > start) statements.push(sql.slice(start, i))
      i = skipBlank(sql, i + 1)
      start = i
    } else if (char === "'") {
      const end = stringEnd(sql, i)
      if (sql.slice(i, end).includes('\\')) backslashInString = true
      i = end
    } else if (char === '"') {
      i = closingEnd(sql, i + 1, '"')
    } else if (char === '$' && !isIdentChar(sql[i - 1])) {
      DOLLAR_QUOTE.lastIndex = i
      const delimiter = DOLLAR_QUOTE.exec(sql)?.[0]
      i = delimiter ? closingEnd(sql, i + delimiter.length, delimiter) : i + 1
    } else if (char === '-' || char === '/') {
      // A comment, whose semicolons end nothing; or just an operator.
      const blankEnd = skipBlank(sql, i)
      i = blankEnd > i ? blankEnd : i + 1
    } else {
      i++
    }
  }
  if (i > start) statements.push(sql.slice(start, i))
  return { statements, backslashInString }
}

// $$ or $tag$; `$1` is a parameter, and a `$` inside an identifier (`a$b$`) starts nothing.
const DOLLAR_QUOTE = /\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y

function isIdentChar(char: string | undefined): boolean {
  return char !== undefined && /[\w$\u0080-\uffff]/.test(char)
}

/**
 * Past the string literal opening at `sql[quote]`. In a plain literal a doubled quote reads as two
 * adjacent literals, which splits nothing differently. In an E'' literal it does not: the doubled
 * quote is still inside, where the next backslash escapes (E'a''\'' is one literal), so both are
 * read as PostgreSQL reads them.
 */
function stringEnd(sql: string, quote: number): number {
  const escapes = /[eE]/.test(sql[quote - 1] ?? '') && !isIdentChar(sql[quote - 2])
  if (!escapes) return closingEnd(sql, quote + 1, "'")
  let i = quote + 1
  while (i < sql.length) {
    if (sql[i] === '\\') i += 2
    else if (sql[i] !== "'") i++
    else if (sql[i + 1] === "'") i += 2
    else return i + 1
  }
  return sql.length
}

/** Past the first `closing` at or after `from` (the end of `sql` when there is none). */
function closingEnd(sql: string, from: number, closing: string): number {
  const at = sql.indexOf(closing, from)
  return at < 0 ? sql.length : at + closing.length
}

/** Past the whitespace, `--` comments and (nested) block comments starting at `from`. */
function skipBlank(sql: string, from: number): number {
  let i = from
  for (;;) {
    if (/\s/.test(sql[i] ?? '')) i++
    else if (sql.startsWith('--', i)) i = lineCommentEnd(sql, i)
    else if (sql.startsWith('/*', i)) i = blockCommentEnd(sql, i)
    else return i
  }
}

// PostgreSQL ends a `--` comment at a carriage return as well as at a newline.
function lineCommentEnd(sql: string, from: number): number {
  const at = sql.slice(from).search(/[\r\n]/)
  return at < 0 ? sql.length : from + at + 1
}

function blockCommentEnd(sql: string, from: number): number {
  let depth = 0
  let i = from
  while (i < sql.length) {
    if (sql.startsWith('/*', i)) {
      depth++
      i += 2
    } else if (sql.startsWith('*/', i)) {
      depth--
      i += 2
      if (depth === 0) return i
    } else i++
  }
  return sql.length
}
