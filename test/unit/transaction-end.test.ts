/** transactionEnd: which statements withOutbox must send held events with, drop them for, or refuse. */
import { describe, expect, test } from 'vitest'
import { transactionEnd } from '../../src/transaction-end.js'

describe('transactionEnd', () => {
  test.each([
    'COMMIT',
    'commit',
    'COMMIT;',
    'commit ;;',
    '  \n\tCommit\n',
    'END',
    'end;',
    'COMMIT WORK',
    'COMMIT TRANSACTION',
    'END TRANSACTION',
    'commit work and no chain',
    '/* traced */ COMMIT /* traced */',
    '/* outer /* nested */ still a comment */ COMMIT',
    'COMMIT /* and chain */',
    'COMMIT -- done',
    ';COMMIT',
  ])('%j commits', (sql) => {
    expect(transactionEnd(sql)).toBe('commit')
  })

  test.each([
    'ROLLBACK',
    'rollback;',
    'ABORT',
    'abort work',
    'ROLLBACK TRANSACTION',
    'rollback and no chain',
  ])('%j rolls back', (sql) => {
    expect(transactionEnd(sql)).toBe('rollback')
  })

  test.each(['COMMIT AND CHAIN', 'end work and\n chain;'])('%j commits and chains', (sql) => {
    expect(transactionEnd(sql)).toBe('commit and chain')
  })

  test.each([' Rollback And Chain ;', 'ABORT TRANSACTION AND CHAIN'])('%j rolls back and chains', (sql) => {
    expect(transactionEnd(sql)).toBe('rollback and chain')
  })

  test.each(["PREPARE TRANSACTION 'p1'", "prepare transaction 'p;1';"])('%j prepares', (sql) => {
    expect(transactionEnd(sql)).toBe('prepare')
  })

  test.each([
    'SELECT 1; COMMIT',
    'COMMIT; SELECT 1',
    'COMMIT; COMMIT',
    "UPDATE t SET a = 'x'; ROLLBACK",
    'ROLLBACK TO SAVEPOINT s1',
    'rollback to s1',
    "COMMIT PREPARED 'p1'",
    "ROLLBACK PREPARED 'p1'",
    'COMMIT /* a comment between the words */ WORK',
    'COMMIT WORKS',
    'PREPARE q AS SELECT 1',
    'SELECT 1; /* ; */ -- ;\n END',
    'SELECT 1;\r-- a comment ended by a carriage return\rCOMMIT',
    // A backslash escapes the quote in an E'' string: the semicolon after it is outside.
    "SELECT E'\\''; COMMIT",
    // An identifier ending in $x$ starts no dollar quote.
    'SELECT a$x$ FROM t; COMMIT; SELECT $x$',
    // E'a''\'' is one literal (a doubled quote, then an escaped one): the COMMIT after it is real.
    "SELECT E'a''\\''; COMMIT; SELECT ''",
    // With standard_conforming_strings off, '\'' is one literal and the COMMIT after it is real.
    "SELECT '\\''; COMMIT; SELECT ''",
    // Read as PostgreSQL does with the setting on, nothing here commits; the session's setting is
    // not known, so any backslash in a string near an ending word leaves the text unclear.
    "UPDATE t SET note = 'C:\\dir; commit'",
  ])('%j is unclear', (sql) => {
    expect(transactionEnd(sql)).toBe('unclear')
  })

  test.each([
    'SELECT 1',
    'INSERT INTO "Commit" ("end") VALUES ($1)',
    "UPDATE t SET note = 'paid; commit' WHERE id = $1",
    'UPDATE t SET note = "x;commit"',
    'SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t',
    'SELECT 1 /* ; COMMIT */',
    'SELECT 1 -- ; COMMIT',
    'DO $$ BEGIN PERFORM 1; END $$',
    'DO $body$ BEGIN PERFORM 1; COMMIT; END $body$',
    'SAVEPOINT s1',
    'RELEASE SAVEPOINT s1',
    'commit_log',
    "SELECT E'a''b\\n', 'C:\\dir'",
    '',
  ])('%j ends nothing', (sql) => {
    expect(transactionEnd(sql)).toBeUndefined()
  })
})
