import { OutboxConfigError } from './errors.js'

/**
 * `--env-file <path>`: the app's `.env` (where Prisma 7 apps keep DATABASE_URL) read into the
 * environment, as `node --env-file` would. Only when asked: a `.env` found by chance could point a
 * worker at the wrong database. Variables already set win over the file's.
 */
export function loadEnvFile(path: string): void {
  try {
    process.loadEnvFile(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new OutboxConfigError(
      code === 'ENOENT'
        ? `--env-file ${path}: no such file; give the path of the file holding DATABASE_URL (usually .env)`
        : `--env-file ${path} cannot be read (${code ?? (error as Error).message}): check the path and its permissions`,
    )
  }
}
