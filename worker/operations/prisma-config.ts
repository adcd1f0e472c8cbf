import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { OutboxConfigError } from './errors.js'

/**
 * Where Prisma 7's CLI looks for its config file, in its order (findPrismaConfigFile in
 * @prisma/config): `prisma7.config.*` and `.config/prisma7.*` first, then `prisma.config.*`,
 * `.config/prisma.*` and `.config/prisma.config.*`, each also as a folder with an `index.*`.
 * Paths in the file are relative to the file's own folder.
 */
const EXTENSIONS = ['.js', '.ts', '.mjs', '.cjs', '.mts', '.cts']
const CANDIDATES = [
  ...EXTENSIONS.map((ext) => `prisma7.config${ext}`),
  ...EXTENSIONS.map((ext) => join('.config', `prisma7${ext}`)),
  ...['prisma.config', join('.config', 'prisma'), join('.config', 'prisma.config')].flatMap((base) => [
    ...EXTENSIONS.map((ext) => `${base}${ext}`),
    ...EXTENSIONS.map((ext) => join(base, `index${ext}`)),
  ]),
]

/** The app's Prisma config file, found as Prisma's CLI finds it; undefined when there is none. */
export function findPrismaConfig(cwd: string): string | undefined {
  return CANDIDATES.map((name) => join(cwd, name)).find((file) => statSync(file, { throwIfNoEntry: false })?.isFile())
}

export interface PrismaConfigPaths {
  /** The config file, relative to cwd, for messages. */
  file: string
  /** Absolute paths, when the file sets them. */
  schema?: string
  migrations?: string
}

/**
 * Reads `schema` and `migrations.path` from the app's Prisma config file without running it
 * (running it would run the app's code, `import 'dotenv/config'` included). Values written as
 * string literals, or as `path.join(...)`/`path.resolve(...)` of literals and `__dirname` /
 * `import.meta.dirname`, are understood; anything else is an error asking for --schema or
 * --migrations instead of a guess.
 */
export function readPrismaConfig(cwd: string, explicit?: string): PrismaConfigPaths | undefined {
  if (explicit !== undefined && !existsSync(resolve(cwd, explicit)))
    throw new OutboxConfigError(`--config ${explicit}: no such file; give the path of your Prisma config file`)
  const found = explicit !== undefined ? resolve(cwd, explicit) : findPrismaConfig(cwd)
  if (!found) return undefined
  const file = relative(cwd, found)
  const { code, inString } = scan(readFileSync(found, 'utf8'))
  const base = dirname(found)
  /** The path after the first `key:` in `within` (which starts at `offset` in the code). */
  const pathAfter = (key: RegExp, name: string, flag: string, within = code, offset = 0) => {
    for (const match of within.matchAll(key)) {
      const at = offset + (match.index ?? 0)
      if (inString(at)) continue
      const value = readPath(code.slice(at + match[0].length), base)
      if (value !== undefined) return value
      throw new OutboxConfigError(
        `${file} sets ${name} with an expression init cannot read without running the file: pass ${flag}`,
      )
    }
    return undefined
  }
  const result: PrismaConfigPaths = { file }
  const schema = pathAfter(/\bschema\s*:\s*/g, 'schema', '--schema <file or folder>')
  if (schema !== undefined) result.schema = schema
  const block = /\bmigrations\s*:\s*\{/g.exec(code)
  if (block && !inString(block.index)) {
    const start = block.index + block[0].length
    const within = code.slice(start, closingBrace(code, start))
    const migrations = pathAfter(/\bpath\s*:\s*/g, 'migrations.path', '--migrations <dir>', within, start)
    if (migrations !== undefined) result.migrations = migrations
  }
  return result
}

/** The text with comments blanked out, and which offsets fall inside string literals. */
function scan(text: string): { code: string; inString: (offset: number) => boolean } {
  let code = ''
  const spans: [number, number][] = []
  for (let i = 0; i < text.length; ) {
    const two = text.slice(i, i + 2)
    if (two === '//' || two === '/*') {
      const end = two === '//' ? text.indexOf('\n', i) : text.indexOf('*/', i + 2) + 2
      const stop = end <= 1 ? text.length : end
      code += text.slice(i, stop).replace(/[^\n]/g, ' ')
      i = stop
    } else if (text[i] === '"' || text[i] === "'" || text[i] === '`') {
      let j = i + 1
      while (j < text.length && text[j] !== text[i]) j += text[j] === '\\' ? 2 : 1
      spans.push([i, j])
      code += text.slice(i, j + 1)
      i = j + 1
    } else {
      code += text[i]
      i++
    }
  }
  return { code, inString: (offset) => spans.some(([from, to]) => offset > from && offset <= to) }
}

function closingBrace(code: string, start: number): number {
  let depth = 1
  for (let i = start; i < code.length; i++) {
    if (code[i] === '{') depth++
    if (code[i] === '}' && --depth === 0) return i
  }
  return code.length
}

const LITERAL = /^\s*(?:'([^'\\\n]*)'|"([^"\\\n]*)"|`([^`\\$]*)`)/
const DIRNAME = /^\s*(?:__dirname|import\.meta\.dirname)\b/

/** A path expression at the start of `rest`, resolved against `base`; undefined when it is not a plain one. */
function readPath(rest: string, base: string): string | undefined {
  const literal = LITERAL.exec(rest)
  if (literal) return resolve(base, literal[1] ?? literal[2] ?? literal[3] ?? '')
  const call = /^\s*(?:path\.)?(join|resolve)\s*\(/.exec(rest)
  if (!call) return undefined
  const parts: string[] = []
  let args = rest.slice(call[0].length)
  for (;;) {
    const part = LITERAL.exec(args) ?? DIRNAME.exec(args)
    if (!part) return undefined
    parts.push(DIRNAME.test(part[0]) ? base : (part[1] ?? part[2] ?? part[3] ?? ''))
    args = args.slice(part[0].length)
    const separator = /^\s*([,)])/.exec(args)
    if (!separator) return undefined
    args = args.slice(separator[0].length)
    if (separator[1] === ')') break
  }
  // Prisma runs the file from its own folder, so relative results are relative to `base`.
  return call[1] === 'join' ? resolve(base, join(...parts)) : resolve(base, ...parts)
}
