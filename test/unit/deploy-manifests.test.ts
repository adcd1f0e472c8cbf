/**
 * The deployment files agree with the worker: the Kubernetes manifests probe the paths and port
 * the worker serves, give it longer than its longest graceful stop, keep a standby through
 * rollouts and evictions; the Dockerfile runs node on the CLI itself, as a non-root user.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { DEFAULTS, type Key, OPTIONS, SHUTDOWN_WATCHDOG_EXTRA_MS } from '../../worker/operations/config.js'
import { finalStage, imageNodeArgs, nodeCommand } from '../helpers/dockerfile.js'

const root = join(import.meta.dirname, '../..')
/**
 * Node sizes V8's young generation from a container's memory limit (1 MB semi-spaces at 512 MiB),
 * where the worker drains at about half its rate: the image and manifests set it (deploying.md#memory).
 */
const SEMI_SPACE_FLAG = '--max-semi-space-size=16'
const manifestsDir = join(root, 'deploy/kubernetes')
/** What the grace period must leave beyond the worker's longest graceful stop. */
const GRACE_MARGIN_MS = 5_000

interface EnvVar {
  name: string
  value?: string
  valueFrom?: { secretKeyRef?: { name: string; key: string } }
}
interface Probe {
  httpGet?: { path?: string; port?: number | string }
}
interface Container {
  name: string
  command?: string[]
  env?: EnvVar[]
  ports?: { name?: string; containerPort: number }[]
  startupProbe?: Probe
  livenessProbe?: Probe
  readinessProbe?: Probe
  lifecycle?: unknown
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean }
}
interface Deployment {
  kind: 'Deployment'
  metadata: { name: string }
  spec: {
    replicas?: number
    selector: { matchLabels: Record<string, string> }
    strategy?: { type?: string; rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } }
    template: {
      metadata: { labels: Record<string, string> }
      spec: {
        terminationGracePeriodSeconds?: number
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number }
        containers: Container[]
      }
    }
  }
}
interface PodDisruptionBudget {
  kind: 'PodDisruptionBudget'
  spec: { selector: { matchLabels: Record<string, string> } }
}

function manifests(): { file: string; doc: { kind?: string } }[] {
  const files = readdirSync(manifestsDir).filter((f) => /\.ya?ml$/.test(f))
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(manifestsDir, file), 'utf8')).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`)
      return { file, doc: doc.toJS() as { kind?: string } }
    }),
  )
}

const ofKind = <T>(kind: string): T[] =>
  manifests()
    .filter(({ doc }) => doc?.kind === kind)
    .map(({ doc }) => doc as T)

const option = (key: Key) => OPTIONS.find((o) => o.key === key) as (typeof OPTIONS)[number]

/** An option as the container sets it through its environment, else the worker's default. */
function effective(container: Container, key: 'healthPort' | 'shutdownTimeoutMs'): number {
  const spec = option(key)
  const set = container.env?.find((e) => e.name === spec.env)?.value
  return set === undefined ? DEFAULTS[key] : (spec.parse(set, spec.env) as number)
}

/** The probe's port as a number: given as one, or named after one of the container's ports. */
function probePort(container: Container, probe: Probe): number | undefined {
  const port = probe.httpGet?.port
  if (typeof port === 'number') return port
  return container.ports?.find((p) => p.name === port)?.containerPort
}

const subsetOf = (labels: Record<string, string>, of: Record<string, string>) =>
  Object.entries(labels).every(([k, v]) => of[k] === v)

describe('Kubernetes manifests', () => {
  test('every YAML document in deploy/kubernetes parses', () => {
    const all = manifests()
    expect(all.length).toBeGreaterThan(0)
    for (const { file, doc } of all) expect(doc?.kind, file).toBeTypeOf('string')
  })

  const deployments = ofKind<Deployment>('Deployment')
  test('there is a worker Deployment', () => {
    expect(deployments.length).toBeGreaterThan(0)
  })

  for (const deployment of deployments) {
    const pod = deployment.spec.template.spec
    describe(`Deployment ${deployment.metadata.name}`, () => {
      test('runs two or more replicas, and a rollout never goes below them', () => {
        expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2)
        expect(deployment.spec.strategy?.type ?? 'RollingUpdate').toBe('RollingUpdate')
        expect(deployment.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0)
        expect(deployment.spec.strategy?.rollingUpdate?.maxSurge).toBe(1)
        expect(subsetOf(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true)
      })

      for (const container of pod.containers) {
        test(`${container.name}: probes the worker's paths on its health port`, () => {
          const http = readFileSync(join(root, 'worker/operations/http.ts'), 'utf8')
          const healthPort = effective(container, 'healthPort')
          const probes = [
            [container.livenessProbe, '/healthz'],
            [container.readinessProbe, '/readyz'],
          ] as const
          for (const [probe, path] of probes) {
            expect(probe?.httpGet?.path).toBe(path)
            expect(http).toContain(`'${path}'`)
            expect(probePort(container, probe as Probe)).toBe(healthPort)
          }
          if (container.startupProbe) {
            expect(['/healthz', '/readyz']).toContain(container.startupProbe.httpGet?.path)
            expect(probePort(container, container.startupProbe)).toBe(healthPort)
          }
        })

        test(`${container.name}: the grace period outlasts the longest graceful stop`, () => {
          const longestStopMs = effective(container, 'shutdownTimeoutMs') + SHUTDOWN_WATCHDOG_EXTRA_MS
          expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(
            longestStopMs + GRACE_MARGIN_MS,
          )
        })

        test(`${container.name}: DATABASE_URL and KAFKA_BROKERS come from a Secret`, () => {
          for (const key of ['databaseUrl', 'kafkaBrokers'] as const) {
            const variable = container.env?.find((e) => e.name === option(key).env)
            expect(variable?.value).toBeUndefined()
            expect(variable?.valueFrom?.secretKeyRef?.name).toBeTruthy()
          }
        })

        test(`${container.name}: runs node directly, as non-root, on a read-only root filesystem`, () => {
          if (container.command) {
            expect(container.command[0]).toBe('node')
            expect(nodeCommand(container.command).options).toContain(SEMI_SPACE_FLAG)
          }
          expect(pod.securityContext?.runAsNonRoot).toBe(true)
          expect(pod.securityContext?.runAsUser).not.toBe(0)
          expect(container.securityContext?.readOnlyRootFilesystem).toBe(true)
          expect(container.securityContext?.allowPrivilegeEscalation).toBe(false)
        })
      }

      test('a PodDisruptionBudget selects its pods', () => {
        const budgets = ofKind<PodDisruptionBudget>('PodDisruptionBudget')
        const labels = deployment.spec.template.metadata.labels
        expect(budgets.some((b) => subsetOf(b.spec.selector.matchLabels, labels))).toBe(true)
      })
    })
  }
})

describe('Dockerfile', () => {
  const image = finalStage()

  test('the final stage starts node on the built CLI, in exec form', () => {
    const entrypoint = image.filter((i) => i.instruction === 'ENTRYPOINT').at(-1)
    const start = entrypoint ?? image.filter((i) => i.instruction === 'CMD').at(-1)
    expect(start, 'an ENTRYPOINT or CMD').toBeDefined()
    expect(start?.args.startsWith('['), 'exec form: a JSON array').toBe(true)
    const argv = JSON.parse(start?.args ?? '[]') as string[]
    expect(argv[0]).toBe('node')
    expect(argv.some((a) => /\b(npm|npx|sh|bash)\b/.test(a))).toBe(false)
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }
    expect(nodeCommand(argv).script).toBe(pkg.bin['outbox-worker']?.replace(/^\.\//, ''))
  })

  test("node's young generation is sized for the worker, not from the container's memory limit", () => {
    expect(imageNodeArgs()).toContain(SEMI_SPACE_FLAG)
  })

  test('the image runs as a non-root user', () => {
    const user = image
      .filter((i) => i.instruction === 'USER')
      .at(-1)
      ?.args.split(':')[0]
    expect(user, 'a USER in the final stage').toBeDefined()
    expect(['root', '0']).not.toContain(user)
  })
})
