import { spawn } from 'node:child_process'

/**
 * Starts a detached shell that waits for this Node process to end, however it ends (Ctrl-C,
 * kill -9, a crash), then kills the process group whose leader's pid is in `pidFile` and removes
 * `dir`. Exit hooks alone cannot do that: a SIGKILLed test runner runs no hooks. The pid is read
 * from a file so a service that a fault test restarts stays guarded.
 * Returns a function that disarms the guardian once the caller has cleaned up itself.
 */
export function guardServiceDir(pidFile: string, dir: string): () => void {
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    `pid=$(cat '${pidFile}' 2>/dev/null)`,
    `if [ -n "$pid" ]; then kill -INT -"$pid" 2>/dev/null; sleep 5; kill -KILL -"$pid" 2>/dev/null; fi`,
    `rm -rf '${dir}'`,
  ].join('; ')
  const guardian = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
  guardian.unref()
  return () => {
    try {
      if (guardian.pid) process.kill(guardian.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}
