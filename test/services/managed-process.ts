import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'

export interface ManagedProcessOptions {
  /** Shown in errors. */
  name: string
  command: string
  args: string[]
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Run as this user (PostgreSQL refuses to run as root). */
  uid?: number
  gid?: number
  /** stdout and stderr are appended here, so a failed start can be explained. */
  logFile: string
  /** The current pid is written here for the guardian (see guardian.ts). */
  pidFile: string
  /** The signal for a graceful stop: SIGINT is PostgreSQL's fast shutdown, SIGTERM Kafka's controlled one. */
  stopSignal: NodeJS.Signals
}

/**
 * A long-running service process in its own process group, so stopping it also stops whatever it
 * forked, and so it can be stopped and started again (fault tests restart brokers and databases).
 */
export class ManagedProcess {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()

  constructor(private readonly options: ManagedProcessOptions) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  start(): void {
    if (this.running) return
    const { command, args, cwd, env, uid, gid, logFile, pidFile } = this.options
    const log = openSync(logFile, 'a')
    const child = spawn(command, args, { cwd, env, uid, gid, detached: true, stdio: ['ignore', log, log] })
    closeSync(log)
    this.child = child
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
    if (child.pid === undefined) throw new Error(`${this.options.name}: could not start ${command}`)
    writeFileSync(pidFile, String(child.pid))
  }

  /**
   * Starts the process and resolves once `ready` says so. A port of ours can be taken between
   * its choice and the bind (ports.ts): when the process exits and `portTaken` says that was why
   * ("Address already in use" in its log), it is started again, until `timeoutMs`; any other exit
   * fails at once.
   */
  async startUntil(ready: () => Promise<boolean>, portTaken: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let conflicts = 0
    this.start()
    let lastError: unknown
    while (Date.now() < deadline) {
      try {
        if (await ready()) return
      } catch (error) {
        lastError = error
      }
      if (!this.running) {
        await this.exited
        if (!portTaken()) throw new Error(`${this.options.name} exited while starting\n${this.logTail()}`)
        conflicts++
        await new Promise((r) => setTimeout(r, 500))
        this.start()
        continue
      }
      await new Promise((r) => setTimeout(r, 250))
    }
    const reason = lastError instanceof Error ? `: ${lastError.message}` : ''
    const ports = conflicts > 0 ? ` (its port was taken ${conflicts} times)` : ''
    throw new Error(`${this.options.name} did not start within ${timeoutMs} ms${ports}${reason}\n${this.logTail()}`)
  }

  /** Graceful stop; after `timeoutMs` the whole group is killed. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!this.running) return
    this.signalGroup(this.options.stopSignal)
    const timer = setTimeout(() => this.signalGroup('SIGKILL'), timeoutMs)
    await this.exited
    clearTimeout(timer)
  }

  /** The process's id while it runs. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined
  }

  /** A process that hangs without closing its sockets (SIGSTOP), and its return (SIGCONT). */
  pause(): void {
    this.signalGroup('SIGSTOP')
  }

  resume(): void {
    this.signalGroup('SIGCONT')
  }

  /** What a crash looks like: SIGKILL, no shutdown work. */
  async kill(): Promise<void> {
    if (!this.running) return
    this.signalGroup('SIGKILL')
    await this.exited
  }

  /** The last lines of the log, for error messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.options.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid
    if (pid === undefined) return
    try {
      process.kill(-pid, signal)
    } catch {
      // the group is already gone
    }
  }
}
