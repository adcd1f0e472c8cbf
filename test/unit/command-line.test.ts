import { expect, test } from 'vitest'
import { parseCommandLine } from '../../worker/operations/args.js'

test("a command's own flag given to another command is refused, naming where it belongs, instead of being ignored", () => {
  expect(() => parseCommandLine(['--inbox'])).toThrow('--inbox applies to outbox-worker init, not to run')
  expect(() => parseCommandLine(['status', '--since', '2026-01-01'])).toThrow(
    '--since applies to outbox-worker republish, not to status',
  )
  expect(() => parseCommandLine(['republish', '--json'])).toThrow(
    '--json applies to outbox-worker status and outbox-worker tail, not to republish',
  )
  expect(parseCommandLine(['init', '--inbox']).values.inbox).toBe(true)
  expect(parseCommandLine(['status', '--json']).values.json).toBe(true)
  // --help shows the help whatever else is on the line.
  expect(parseCommandLine(['--inbox', '--help']).values.help).toBe(true)
})
