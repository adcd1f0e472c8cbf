import { spawn } from 'node:child_process'
import { join } from 'node:path'

const root = join(import.meta.dirname, '../..')

/** Where test/setup/build.ts compiles the package for a test run. */
export const builtDir = join(root, 'node_modules/.cache/prisma-outbox-test/build')

/** `outbox-worker` as node arguments: the compiled bin of this test run (test/setup/build.ts). */
export const workerCli = join(builtDir, 'worker/cli.js')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout then stderr. */
  all: string
}

/**
 * Runs `outbox-worker <args>` to its exit with exactly `env` (plus PATH), without blocking the test
 * process, so independent CLI tests can run side by side.
 */
export function runCli(
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runNode([workerCli, ...args], env, options)
}

/** Runs `node <args>` to its exit, its output piped (no terminal), with exactly `env` plus PATH. */
export function runNode(
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd ?? root,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 60_000,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr, all: stdout + stderr }))
  })
}
