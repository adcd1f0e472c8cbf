import { readFileSync } from 'node:fs'
import { spawnWorker, type WorkerProcess } from '../helpers/worker.js'
import { waitUntil } from '../services/ports.js'

/**
 * Keeps `count` worker processes running, as an orchestrator would: a worker that exits is
 * replaced after a short delay. Records how each exited and samples peak resident memory.
 */
export class WorkerSupervisor {
  readonly live: WorkerProcess[] = []
  readonly exits: { code: number | null; expected: boolean }[] = []
  peakRssBytes = 0
  private stopping = false
  private readonly expectedExits = new WeakSet<WorkerProcess>()
  private readonly sampler: NodeJS.Timeout

  /** `env` may differ per worker (e.g. the first one's connection crosses a fault proxy). */
  constructor(
    private readonly env: (index: number) => Record<string, string>,
    private readonly count = 1,
  ) {
    this.sampler = setInterval(() => this.sample(), 200)
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.count; i++) await this.spawnOne(i)
  }

  /** The worker with this index, if it is running. */
  worker(index: number): WorkerProcess | undefined {
    return this.live.find((w) => this.indexes.get(w) === index)
  }

  /** The worker currently streaming (its /status says role "active"), or undefined. */
  async active(): Promise<WorkerProcess | undefined> {
    for (const worker of this.live) if (await worker.active().catch(() => false)) return worker
    return undefined
  }

  /** Each running worker's /status role ('active', 'standby', ...), undefined if it does not answer. */
  async roles(): Promise<Map<WorkerProcess, string | undefined>> {
    const roles = new Map<WorkerProcess, string | undefined>()
    for (const worker of this.live) roles.set(worker, (await worker.status().catch(() => undefined))?.role)
    return roles
  }

  /**
   * Sends `signal` to the worker that streams (its /status says it holds the slot), waiting up to
   * `timeoutMs` for one; fails when none does, so the fault cannot silently hit a worker that held
   * nothing. Returns the worker and how it exited.
   */
  async killActive(
    signal: NodeJS.Signals,
    timeoutMs = 30_000,
  ): Promise<{ worker: WorkerProcess; code: number | null }> {
    let target: WorkerProcess | undefined
    await waitUntil(
      'a worker holding the slot, to kill',
      async () => {
        target = await this.active()
        return target !== undefined
      },
      timeoutMs,
      100,
    )
    const worker = target as WorkerProcess
    this.expectedExits.add(worker)
    return { worker, code: await worker.kill(signal) }
  }

  /** Exits nobody asked for (a crash or a non-zero exit): must stay 0. */
  get unexpectedExits(): number {
    return this.exits.filter((e) => !e.expected).length
  }

  /** The last lines each running worker wrote: what a stalled scenario prints to be diagnosed. */
  recentOutput(lines: number): string {
    return this.live
      .map(
        (w) =>
          `worker ${this.indexes.get(w)} (pid ${w.child.pid}), last ${lines} lines:\n${w.output.slice(-lines).join('\n')}`,
      )
      .join('\n')
  }

  async stop(): Promise<void> {
    this.stopping = true
    clearInterval(this.sampler)
    await Promise.all(this.live.map((w) => w.kill('SIGTERM')))
  }

  private readonly indexes = new WeakMap<WorkerProcess, number>()

  private async spawnOne(index: number): Promise<void> {
    const worker = await spawnWorker(this.env(index))
    this.indexes.set(worker, index)
    this.live.push(worker)
    void worker.exited.then((code) => {
      this.live.splice(this.live.indexOf(worker), 1)
      const expected = this.stopping || this.expectedExits.has(worker)
      this.exits.push({ code, expected: expected && (code === null || code === 0) })
      if (!expected)
        process.stderr.write(`worker exited unexpectedly (${code}):\n${worker.output.slice(-15).join('\n')}\n`)
      if (!this.stopping) setTimeout(() => void this.spawnOne(index), 200)
    })
  }

  private sample(): void {
    for (const worker of this.live) {
      try {
        const status = readFileSync(`/proc/${worker.child.pid}/status`, 'utf8')
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
        this.peakRssBytes = Math.max(this.peakRssBytes, kb * 1024)
      } catch {
        // the process just exited
      }
    }
  }
}
