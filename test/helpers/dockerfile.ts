import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '../..')

/** The Dockerfile's instructions, line continuations joined and comments dropped. */
export function dockerfile(): { instruction: string; args: string }[] {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8')
  return text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [, instruction = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
      return { instruction: instruction.toUpperCase(), args }
    })
}

/** The final stage's instructions: what the image is. */
export function finalStage(): { instruction: string; args: string }[] {
  const all = dockerfile()
  return all.slice(all.map((i) => i.instruction).lastIndexOf('FROM'))
}

/** The options the image gives node before the CLI (its ENTRYPOINT's, e.g. V8's heap sizes). */
export function imageNodeArgs(): string[] {
  const entrypoint = finalStage()
    .filter((i) => i.instruction === 'ENTRYPOINT')
    .at(-1)
  return nodeCommand(JSON.parse(entrypoint?.args ?? '[]') as string[]).options
}

/**
 * A `node …` command's parts: the options node itself takes, then the script; what follows the
 * script is the script's own.
 */
export function nodeCommand(argv: readonly string[]): { options: string[]; script: string | undefined } {
  const at = argv.findIndex((arg, i) => i > 0 && !arg.startsWith('-'))
  return { options: argv.slice(1, at < 0 ? argv.length : at), script: at < 0 ? undefined : argv[at] }
}
