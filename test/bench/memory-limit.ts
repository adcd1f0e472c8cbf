import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A node executable whose processes run under a memory limit, as in a container. */
export interface LimitedNode {
  /** Run this instead of node: it joins the memory cgroup, then execs node with its arguments. */
  node: string
  dispose(): void
}

/**
 * A cgroup with `mb` MiB of memory, as Kubernetes gives a container with that memory limit, and a
 * wrapper that starts node inside it. Node sizes its heap (and V8's young generation) from that
 * limit, which is what the figure measures. Needs write access to the cgroup hierarchy (root);
 * otherwise the reason it cannot, for the bench to print instead of the figure.
 */
export function memoryLimitedNode(mb: number): LimitedNode | { skipped: string } {
  const bytes = String(mb * 1024 * 1024)
  const name = `prisma-outbox-bench-${process.pid}`
  let group: string | undefined
  let procs: string
  try {
    if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
      // cgroup v2: a child of the root, with the memory controller enabled for children.
      if (!readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').includes('memory'))
        return { skipped: 'the cgroup v2 hierarchy has no memory controller' }
      writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+memory')
      group = join('/sys/fs/cgroup', name)
      mkdirSync(group)
      writeFileSync(join(group, 'memory.max'), bytes)
    } else if (existsSync('/sys/fs/cgroup/memory')) {
      group = join('/sys/fs/cgroup/memory', name)
      mkdirSync(group)
      writeFileSync(join(group, 'memory.limit_in_bytes'), bytes)
    } else {
      return { skipped: 'no cgroup memory controller is mounted at /sys/fs/cgroup' }
    }
    procs = join(group, 'cgroup.procs')
  } catch (error) {
    if (group) removeGroup(group)
    return {
      skipped: `cannot create a memory cgroup (${(error as Error).message}): it needs root and a writable cgroup hierarchy`,
    }
  }
  const made = group
  const dir = mkdtempSync(join(tmpdir(), 'prisma-outbox-bench-'))
  const node = join(dir, 'node')
  // set -e: a process that could not join the group must not run (and be measured) without the limit.
  writeFileSync(node, `#!/bin/sh\nset -e\necho $$ > '${procs}'\nexec '${process.execPath}' "$@"\n`)
  chmodSync(node, 0o755)
  return {
    node,
    dispose() {
      rmSync(dir, { recursive: true, force: true })
      removeGroup(made)
    },
  }
}

function removeGroup(group: string): void {
  try {
    rmdirSync(group)
  } catch {
    // A process of it still exiting: the empty group is left behind, harmless.
  }
}
