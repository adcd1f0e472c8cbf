import { describe, expect, test } from 'vitest'
import { inlineParams, sqlLiteral } from '../../src/inline-sql.js'
import { emitStatements } from '../../src/sql.js'

describe('writing parameters into SQL as literals (withOutbox)', () => {
  test('quotes are doubled; a backslash makes an E literal with backslashes doubled', () => {
    expect(sqlLiteral("it's")).toBe("'it''s'")
    expect(sqlLiteral('a\\b')).toBe("E'a\\\\b'")
    expect(sqlLiteral("\\'")).toBe("E'\\\\'''")
  })

  test('null, strings and arrays of them; placeholders inside quoted identifiers and strings stay', () => {
    const sql = `INSERT INTO "out$1" ("a") SELECT $1::text, $2, $10, '$2', E'\\n', $3::uuid[]`
    const args = ['x', null, ['a', null], 4, 5, 6, 7, 8, 9, 'ten']
    expect(inlineParams(sql, args)).toBe(
      `INSERT INTO "out$1" ("a") SELECT 'x'::text, NULL, 'ten', '$2', E'\\n', ARRAY['a',NULL]::uuid[]`,
    )
  })

  test('an empty array stays typed by the cast that follows it', () => {
    expect(inlineParams('SELECT $1::uuid[]', [[]])).toBe('SELECT ARRAY[]::uuid[]')
  })

  test('a table name with $ in it is left alone in the statements emit sends', () => {
    const { sql, params } = emitStatements('out$1', 'table').one({
      id: 'i',
      aggregateType: 'a',
      aggregateId: 'b',
      type: 't',
      payloadJson: '{}',
      headersJson: null,
      topic: null,
    })
    expect(inlineParams(sql, params)).toContain('INSERT INTO "out$1" ')
  })

  test('what it cannot write faithfully, it refuses', () => {
    expect(() => inlineParams('SELECT $1', [1])).toThrow(/number/)
    expect(() => inlineParams('SELECT $1', [[['nested']]])).toThrow(/nested/)
    expect(() => inlineParams('SELECT $2', ['only one'])).toThrow(/no parameter \$2/)
    expect(() => sqlLiteral('nul\u0000')).toThrow(/U\+0000/)
  })
})
