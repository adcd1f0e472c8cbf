import { createServer } from 'node:net'

/**
 * Ports handed out lie below Linux's ephemeral range (32768–60999 by default), where the kernel
 * picks the local port of every outgoing connection: a port of ours released for a moment (a
 * broker restarting) cannot be taken by someone's connection there. Two processes may still pick
 * the same one, so whatever binds it retries on "Address already in use" (ManagedProcess.startUntil).
 */
const LOWEST = 20_000
const HIGHEST = 32_000

/** A TCP port on 127.0.0.1 below the ephemeral range that was free a moment ago. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST))
    if (await bindable(port)) return port
  }
  throw new Error(`no free port found between ${LOWEST} and ${HIGHEST} in 100 tries`)
}

async function bindable(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Polls `check` until it resolves true or `timeoutMs` passes; the last error explains a timeout. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      lastError = error
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  const reason = lastError instanceof Error ? `: ${lastError.message}` : ''
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`)
}
